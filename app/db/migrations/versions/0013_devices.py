"""devices and device_certificates: citizens' phone keys certified for offline minting (device-bound
codes, ``CC2:``); each certificate id is what the revocation feed names when a device is removed

Revision ID: 0013
Revises: 0012
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("citizen_id", sa.String(32), sa.ForeignKey("citizens.id"), nullable=False, index=True),
        sa.Column("public_key", sa.LargeBinary(65), nullable=False, unique=True),
        sa.Column("label", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "device_certificates",
        sa.Column("cert_id", sa.String(16), primary_key=True),
        sa.Column("device_id", sa.String(32), sa.ForeignKey("devices.id"), nullable=False, index=True),
        sa.Column("issued_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("device_certificates")
    op.drop_table("devices")
