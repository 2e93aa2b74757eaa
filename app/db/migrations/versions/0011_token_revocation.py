"""token lifecycle: api_tokens.label (the device a citizen's app token is on) and
api_tokens.revoke_reason; terminals.revoked_at (a deregistered terminal, whose tokens are
revoked with it and which gets no new one)

Revision ID: 0011
Revises: 0009
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("label", sa.String(64), nullable=True))
        batch.add_column(sa.Column("revoke_reason", sa.String(200), nullable=True))
    with op.batch_alter_table("terminals") as batch:
        batch.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("terminals") as batch:
        batch.drop_column("revoked_at")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("revoke_reason")
        batch.drop_column("label")
