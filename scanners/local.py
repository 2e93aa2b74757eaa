"""The reader's own SQLite file (``<data_dir>/reader.sqlite3``): one connection, one lock, the schema.

Everything a reader must not lose lives here — the journal, the replay cache, trip and tap state,
the trust material and its version — so one transaction can change several of them at once (a
scan claims the code, changes trip state and appends its journal record together). WAL with
``synchronous=FULL``: a committed transaction survives a power cut, not just a killed process.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

FILENAME = "reader.sqlite3"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY, record TEXT NOT NULL, acked INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS journal_pending ON journal (seq) WHERE acked = 0;
CREATE TABLE IF NOT EXISTS replay (
    iss TEXT NOT NULL, jti TEXT NOT NULL, until REAL NOT NULL, PRIMARY KEY (iss, jti)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS feed (
    version INTEGER PRIMARY KEY, kind TEXT NOT NULL, id TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS bus_taps (sub TEXT PRIMARY KEY, charged_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS metro_trips (
    sub TEXT PRIMARY KEY, station TEXT NOT NULL, entered_at REAL NOT NULL, jti TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scenic_admitted (
    spot TEXT NOT NULL, day TEXT NOT NULL, sub TEXT NOT NULL, PRIMARY KEY (spot, day, sub))
    WITHOUT ROWID;
"""


class LocalDB:
    """The reader's database. ``transaction()`` is the only way to write; it holds the lock, so a
    scan and an upload's acknowledgement in two threads never interleave."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fresh = not path.exists()
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        if fresh:
            os.chmod(path, 0o600)  # it holds the terminal token
        self.lock = threading.RLock()
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        with self.transaction():
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self.conn.execute(statement)

    @classmethod
    def in_dir(cls, data_dir: Path) -> LocalDB:
        return cls(Path(data_dir) / FILENAME)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on any exception). Nested use joins the
        outer transaction, so a store called inside a scan's transaction commits with it."""
        with self.lock:
            if self.conn.in_transaction:
                yield self.conn
                return
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    # -- meta: small JSON values by name ------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def put(self, key: str, value: Any) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                         "SET value = excluded.value", (key, json.dumps(value, ensure_ascii=False)))

    def close(self) -> None:
        with self.lock:
            self.conn.close()
