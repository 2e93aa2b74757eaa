"""taps.superseded: an offline accept its own terminal had already decided online (the reply of
POST /v1/verify was lost or late, the reader fell back offline with the same request_id) is
kept but flagged, and left out of settlement (app.taps.supersede)

Revision ID: 0009
Revises: 0008
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Offline accepts that tried online first and are not (yet) superseded: the few rows a late
# online scan (written to the audit log after the upload) can still supersede.
_FALLBACK = ("request_id IS NOT NULL AND mode = 'offline' AND decision = 'accept' "
             "AND superseded = false")


def upgrade() -> None:
    op.add_column("taps", sa.Column("superseded", sa.Boolean, nullable=False,
                                    server_default=sa.false()))
    op.create_index("ix_taps_fallback_received", "taps", ["received_at"],
                    sqlite_where=sa.text(_FALLBACK), postgresql_where=sa.text(_FALLBACK))


def downgrade() -> None:
    op.drop_index("ix_taps_fallback_received", table_name="taps")
    with op.batch_alter_table("taps") as batch:
        batch.drop_column("superseded")
