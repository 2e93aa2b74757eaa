"""tap records from readers, anomalies found in them, settled metro trips

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "taps",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("terminal_id", sa.String(32), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("site", sa.JSON, nullable=False),
        sa.Column("iss", sa.String(64), nullable=False),
        sa.Column("jti", sa.String(128), nullable=True),
        sa.Column("sub", sa.String(64), nullable=True),
        sa.Column("scanned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("server_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("direction", sa.String(8), nullable=True),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("ent", sa.JSON, nullable=True),
        sa.Column("trust_version", sa.BigInteger, nullable=True),
        sa.Column("trust_age_s", sa.Float, nullable=True),
        sa.Column("clock_offset_s", sa.Float, nullable=True),
        sa.Column("lat", sa.Float, nullable=True),
        sa.Column("lon", sa.Float, nullable=True),
        sa.Column("stale", sa.Boolean, nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("pending_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("terminal_id", "seq", name="uq_taps_terminal_seq"),
    )
    op.create_index("ix_taps_jti", "taps", ["jti"])
    op.create_index("ix_taps_sub_server_at", "taps", ["sub", "server_at"])
    op.create_index("ix_taps_pending_since", "taps", ["pending_since"])

    op.create_table(
        "tap_anomalies",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("iss", sa.String(64), nullable=True),
        sa.Column("jti", sa.String(128), nullable=True),
        sa.Column("sub", sa.String(64), nullable=True),
        sa.Column("terminal_id", sa.String(32), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("detail", sa.String(500), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("key", name="uq_tap_anomalies_key"),
    )
    op.create_index("ix_tap_anomalies_kind", "tap_anomalies", ["kind"])
    op.create_index("ix_tap_anomalies_found_at", "tap_anomalies", ["found_at"])

    op.create_table(
        "settled_trips",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(120), nullable=False),
        sa.Column("sub", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("anchor_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("entry_tap_id", sa.BigInteger, nullable=True),
        sa.Column("entry_audit_seq", sa.BigInteger, nullable=True),
        sa.Column("entry_terminal_id", sa.String(64), nullable=True),
        sa.Column("entry_seq", sa.BigInteger, nullable=True),
        sa.Column("entry_station", sa.String(64), nullable=True),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exit_tap_id", sa.BigInteger, nullable=True),
        sa.Column("exit_audit_seq", sa.BigInteger, nullable=True),
        sa.Column("exit_terminal_id", sa.String(64), nullable=True),
        sa.Column("exit_seq", sa.BigInteger, nullable=True),
        sa.Column("exit_station", sa.String(64), nullable=True),
        sa.Column("exited_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("amount_cents", sa.Integer, nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("priced_by", sa.String(16), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("key", name="uq_settled_trips_key"),
    )
    op.create_index("ix_settled_trips_sub_anchor", "settled_trips", ["sub", "anchor_at"])
    op.create_index("ix_settled_trips_entry_tap_id", "settled_trips", ["entry_tap_id"])
    op.create_index("ix_settled_trips_exit_tap_id", "settled_trips", ["exit_tap_id"])


def downgrade() -> None:
    op.drop_table("settled_trips")
    op.drop_table("tap_anomalies")
    op.drop_table("taps")
