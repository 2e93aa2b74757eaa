"""A throw-away PostgreSQL server for tests that must run on PostgreSQL too.

``postgres_server`` (session scope) runs ``initdb`` into a temporary folder and starts the
server on a free 127.0.0.1 port (socket in the same folder), stopped at the end of the session.
``postgres_url`` (per test) gives a fresh database, migrated to head, dropped afterwards.

The server binaries are looked up in ``CITYCODE_PG_BINDIR``, ``/usr/lib/postgresql/*/bin`` and
``PATH`` (Debian: ``apt-get install -y postgresql``). With none, the tests using these fixtures
are skipped with a message saying so. As root the server runs as the ``postgres`` user (or
``nobody``): PostgreSQL refuses to run as root.

Use: ``from tests.pg_support import postgres_server, postgres_url  # noqa: F401`` in a test
module, or in a ``conftest.py``.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import psycopg
import pytest

from app import db

BINARIES = ("initdb", "pg_ctl")


def find_bindir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, newest version first; None if not installed."""
    candidates = [os.environ.get("CITYCODE_PG_BINDIR", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    on_path = shutil.which("initdb")
    candidates.append(str(Path(on_path).parent) if on_path else "")
    for folder in filter(None, candidates):
        if all((Path(folder) / name).is_file() for name in BINARIES):
            return Path(folder)
    return None


def _version(folder: str) -> int:
    part = Path(folder).parent.name
    return int(part) if part.isdigit() else 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_as() -> dict[str, Any]:
    """``subprocess`` arguments running the server as a non-root user when we are root."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return {"user": entry.pw_uid, "group": entry.pw_gid}
    pytest.skip("PostgreSQL refuses to run as root and there is no postgres/nobody user")


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def admin(self, statement: str) -> None:
        """Run one statement on the maintenance database, outside a transaction."""
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(statement)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: install them "
                    "(apt-get install -y postgresql) or set CITYCODE_PG_BINDIR")
    run_as = _run_as()
    folder = Path(tempfile.mkdtemp(prefix="cc-pg-", dir="/tmp"))
    data = folder / "data"
    if run_as:
        os.chown(folder, run_as["user"], run_as["group"])
    port = _free_port()
    log = folder / "server.log"
    try:
        subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", "citycode", "-A", "trust",
                        "-E", "UTF8", "--no-sync", "--no-instructions"],
                       check=True, capture_output=True, cwd=folder, **run_as)
        options = f"-p {port} -k {folder} -h 127.0.0.1 -c fsync=off -c full_page_writes=off"
        subprocess.run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options,
                        "-w", "-t", "60", "start"], check=True, capture_output=True, cwd=folder,
                       **run_as)
    except subprocess.CalledProcessError as failed:
        shutil.rmtree(folder, ignore_errors=True)
        details = (failed.stderr or b"").decode(errors="replace")[-2000:]
        raise RuntimeError(f"could not start PostgreSQL from {bindir}: {details}") from None
    try:
        yield PostgresServer("127.0.0.1", port, "citycode")
    finally:
        subprocess.run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, cwd=folder, **run_as)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, migrated database on the session's server."""
    name = f"cc_{uuid.uuid4().hex[:12]}"
    postgres_server.admin(f'CREATE DATABASE "{name}"')
    url = postgres_server.url(name)
    db.migrate(url)
    try:
        yield url
    finally:
        postgres_server.admin(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[db.Database]:
    """A migrated database, once on a SQLite file and once on the session's PostgreSQL server
    (that variant skips, saying why, only when no PostgreSQL binaries are installed)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.sqlite3'}"
        db.migrate(url)
    else:
        url = request.getfixturevalue("postgres_url")  # fresh and migrated
    database = db.Database(url)
    yield database
    database.dispose()
