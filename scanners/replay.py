"""The reader's replay cache: ``app.codes.replay.ReplayStore`` on the reader's SQLite file.

A code used at this reader stays used after a restart or a power cut: the first-use record is
committed in the same transaction as the scan's journal record (``LocalDB.transaction`` joins the
scan's open transaction), never in memory only.
"""
from __future__ import annotations

import sqlite3
from typing import Callable

from app.codes.errors import ReplayUnavailable
from app.codes.replay import DEFAULT_MARGIN_SECONDS, record_until
from scanners.local import LocalDB


class SqliteReplayStore:
    """First use of ``(iss, jti)``, kept until a little past the code's end (then it is free
    again, as the code itself no longer verifies). ``clock`` must be the verifier's clock."""

    def __init__(self, db: LocalDB, clock: Callable[[], float], *,
                 margin_seconds: int = DEFAULT_MARGIN_SECONDS) -> None:
        self.db = db
        self.clock = clock
        self.margin_seconds = margin_seconds

    def claim(self, iss: str, jti: str, expires_at: float, sub: str = "") -> bool:
        """True the first time; False while an unexpired record exists. Raises
        ``ReplayUnavailable`` when the file cannot be written (the verifier turns that into a
        ``degraded`` deny, never an accept). ``sub`` (the ``ReplayStore`` protocol's cluster slot
        hint) is not needed here: one reader, one file."""
        until = record_until(expires_at, self.margin_seconds)
        try:
            with self.db.transaction() as conn:
                cursor = conn.execute(
                    "INSERT INTO replay (iss, jti, until) VALUES (?, ?, ?) ON CONFLICT (iss, jti) "
                    "DO UPDATE SET until = excluded.until WHERE replay.until < ?",
                    (iss, jti, until, self.clock()))
                return cursor.rowcount == 1
        except sqlite3.Error as exc:
            raise ReplayUnavailable(f"reader replay cache unavailable: {type(exc).__name__}") from exc

    def seen(self, iss: str, jti: str) -> bool:
        """Whether an unexpired first-use record exists (a read, for status and tests)."""
        rows = self.db.query("SELECT 1 FROM replay WHERE iss = ? AND jti = ? AND until >= ?",
                             (iss, jti, self.clock()))
        return bool(rows)

    def prune(self) -> int:
        """Drop records past their end; returns how many."""
        with self.db.transaction() as conn:
            return conn.execute("DELETE FROM replay WHERE until < ?", (self.clock(),)).rowcount

    def __len__(self) -> int:
        return int(self.db.query("SELECT count(*) FROM replay")[0][0])
