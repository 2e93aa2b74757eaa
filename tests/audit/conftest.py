"""Fixtures for the audit tests: a migrated database on a SQLite file and on a throw-away
PostgreSQL server (skipped, saying why, only when no PostgreSQL binaries are installed)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from app.db import Database, migrate
from tests.pg_support import postgres_server, postgres_url  # noqa: F401  (fixtures)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
        migrate(url)
    else:
        url = request.getfixturevalue("postgres_url")  # fresh and migrated
    database = Database(url)
    yield database
    database.dispose()
