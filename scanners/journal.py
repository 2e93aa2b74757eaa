"""The reader's journal: every decision, as a tap record of the POST /v1/taps contract, under the
next per-reader ``seq``.

``append`` runs inside the scan's transaction, so a decision and its record commit together or not
at all. The last ``seq`` handed out is kept in ``meta`` and only ever grows, so a ``seq`` is never
reused — not after acknowledged rows are pruned, not after a crash (a rolled-back transaction
rolls the counter back with the row it would have numbered). The server stores each
``(terminal, seq)`` once, so sending a row twice is harmless; losing one is not, hence rows are
marked acknowledged only after the server's 200.
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from scanners.local import LocalDB

_LAST_SEQ = "journal.last_seq"


class Journal:
    """Append, read pending, acknowledge."""

    def __init__(self, db: LocalDB) -> None:
        self.db = db

    def append(self, record: Mapping[str, Any]) -> int:
        """Give ``record`` the next ``seq`` and store it; returns the ``seq``. Joins the caller's
        transaction (the scan's), else commits on its own."""
        with self.db.transaction() as conn:
            row = conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT (key) DO UPDATE "
                "SET value = CAST(value AS INTEGER) + 1 RETURNING CAST(value AS INTEGER)",
                (_LAST_SEQ,)).fetchone()
            seq = int(row[0])
            conn.execute("INSERT INTO journal (seq, record) VALUES (?, ?)",
                         (seq, json.dumps({**record, "seq": seq}, ensure_ascii=False,
                                          separators=(",", ":"))))
        return seq

    def pending_batch(self, limit: int) -> list[dict[str, Any]]:
        """The oldest ``limit`` unacknowledged records, in ``seq`` order."""
        rows = self.db.query("SELECT record FROM journal WHERE acked = 0 ORDER BY seq LIMIT ?",
                             (limit,))
        return [json.loads(record) for (record,) in rows]

    def acknowledge(self, seqs: Iterable[int]) -> int:
        """Mark rows acknowledged (after the server's 200 for the batch holding them)."""
        chosen = sorted(set(seqs))
        if not chosen:
            return 0
        with self.db.transaction() as conn:
            return conn.executemany("UPDATE journal SET acked = 1 WHERE seq = ? AND acked = 0",
                                    [(seq,) for seq in chosen]).rowcount

    def pending(self) -> int:
        return int(self.db.query("SELECT count(*) FROM journal WHERE acked = 0")[0][0])

    def last_seq(self) -> int:
        return int(self.db.get(_LAST_SEQ, 0))

    def record(self, seq: int) -> dict[str, Any] | None:
        rows = self.db.query("SELECT record FROM journal WHERE seq = ?", (seq,))
        return json.loads(rows[0][0]) if rows else None

    def seqs(self) -> list[int]:
        """Every ``seq`` held, in order (for checks that nothing was lost or doubled)."""
        return [int(seq) for (seq,) in self.db.query("SELECT seq FROM journal ORDER BY seq")]

    def prune_acknowledged(self, keep_last: int = 100_000) -> int:
        """Drop acknowledged rows but the newest ``keep_last`` of them; pending rows always stay
        (and the ``seq`` counter keeps its value)."""
        with self.db.transaction() as conn:
            if keep_last <= 0:
                return conn.execute("DELETE FROM journal WHERE acked = 1").rowcount
            return conn.execute(
                "DELETE FROM journal WHERE acked = 1 AND seq < (SELECT seq FROM journal "
                "WHERE acked = 1 ORDER BY seq DESC LIMIT 1 OFFSET ?)", (keep_last - 1,)).rowcount
