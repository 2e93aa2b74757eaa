"""audit_log: an index of online scans by code (``details.jti``), so the tap rules that look for
online uses of an uploaded code (``used_after_online``, superseded fallbacks: app.taps.online)
find them by jti instead of reading every scan of the rider and parsing its details

Revision ID: 0012
Revises: 0011
"""
from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# The expression must be written exactly so in queries for the planner to use the index
# (app.taps.online.SCAN_JTI).
_EXPRESSION = {"sqlite": "json_extract(details, '$.jti')", "postgresql": "(details ->> 'jti')"}


def upgrade() -> None:
    expression = _EXPRESSION[op.get_bind().dialect.name]
    op.execute(f"CREATE INDEX ix_audit_log_scan_jti ON audit_log ({expression}) WHERE action = 'scan'")


def downgrade() -> None:
    op.execute("DROP INDEX ix_audit_log_scan_jti")
