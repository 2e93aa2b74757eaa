"""audit log as a Merkle tree: leaves (contiguous seq ranges), the node store, signed tree heads
and the archive of every key that ever signed a head (app.audit.leaves, app.audit.tree_store)

Revision ID: 0008
Revises: 0007
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_leaves",
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("first_seq", sa.BigInteger, nullable=False, unique=True),
        sa.Column("last_seq", sa.BigInteger, nullable=False, unique=True),
        sa.Column("rows_root", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("first_seq <= last_seq", name="ck_audit_leaves_range"),
    )
    op.create_table(
        "audit_nodes",
        sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_tree_heads",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("tree_size", sa.BigInteger, nullable=False),
        sa.Column("root_hash", sa.String(64), nullable=False),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
    )
    op.create_index("ix_audit_tree_heads_size", "audit_tree_heads", ["tree_size"])
    op.create_table(
        "audit_head_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("jwk", sa.JSON, nullable=False),
        sa.Column("first_used_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_head_keys")
    op.drop_index("ix_audit_tree_heads_size", "audit_tree_heads")
    op.drop_table("audit_tree_heads")
    op.drop_table("audit_nodes")
    op.drop_table("audit_leaves")
