"""audit_log.record_id: the scan record's id, unique, so a record drained twice is stored once

Scans are recorded in a Redis stream by the script that decides them and drained into the audit
log in batches (app.records); the writer may see a record again after a crash or a Redis restart.

Revision ID: 0007
Revises: 0006
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("record_id", sa.String(32), nullable=True))
    op.create_index("ux_audit_log_record_id", "audit_log", ["record_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_audit_log_record_id", "audit_log")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("record_id")
