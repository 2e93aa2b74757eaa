"""Fixtures for the audit tests: a migrated database on a SQLite file and on a throw-away
PostgreSQL server (``tests.pg_support.database``)."""
from __future__ import annotations

from tests.pg_support import database, postgres_server, postgres_url  # noqa: F401  (fixtures)
