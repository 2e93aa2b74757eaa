"""Revocation feed times as 64-bit integers.

``revocation_events.at`` is epoch seconds; a 32-bit INTEGER on PostgreSQL overflows in 2038 (and
already refuses the test vectors' year-2100 clock). SQLite integers are 64-bit anyway, so only
PostgreSQL's column type changes.

Revision ID: 0006
Revises: 0005
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("revocation_events", "at", type_=sa.BigInteger, existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("revocation_events", "at", type_=sa.Integer, existing_nullable=False)
