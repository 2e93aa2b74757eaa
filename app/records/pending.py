"""Taking over stream entries a dead consumer left pending, for both streams the record writer
reads (``cc:scans`` and ``cc:taps``).

A writer that dies after reading entries and before acknowledging them leaves them pending in the
group. The next writer takes them over with ``XAUTOCLAIM``: all of them at its first look (no other
writer runs: the master supervises one), then — checked at most every ``idle_seconds`` — those idle
that long. Entries deleted while pending (Redis 6.2 still lists them) are only acknowledged.
Whatever is taken over is written again: both streams are idempotent (record ids, ``(terminal,
seq)``).
"""
from __future__ import annotations

import logging
import time
from typing import Callable

import redis

log = logging.getLogger("citycode.records")

Entry = tuple[bytes, dict[bytes, bytes]]


class Pending:
    """The pending entries of one stream's consumer group, taken over when due."""

    def __init__(self, client: "redis.Redis[bytes]", stream: str, group: str, *,
                 idle_seconds: float, ensure_group: Callable[[], None], what: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.idle_seconds = idle_seconds
        self.ensure_group = ensure_group
        self.what = what  # for the log line: "records", "tap uploads"
        self.clock = clock
        self.restart()

    def restart(self) -> None:
        """Take back everything pending at the next look (at start, and after a failure: what
        this writer had read and not acknowledged)."""
        self._next_look = 0.0
        self._idle_ms = 0

    def take(self, consumer: str, count: int) -> list[Entry]:
        """Up to ``count`` entries taken over by ``consumer``, or [] when none is due. While
        some were found, the next call looks again at once (same idle bound)."""
        now = self.clock()
        if now < self._next_look:
            return []
        try:
            reply = self.client.xautoclaim(self.stream, self.group, consumer, self._idle_ms,
                                           start_id="0-0", count=count)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ensure_group()
            return []
        claimed = [(entry_id, fields) for entry_id, fields in reply[1] if fields is not None]
        gone = [entry_id for entry_id, fields in reply[1] if fields is None]
        if gone:  # deleted but still pending: nothing left to write
            self.client.xack(self.stream, self.group, *gone)
        if claimed or gone:
            log.warning(f"record writer reclaimed pending {self.what}", extra={"count": len(claimed)})
            return claimed
        self._next_look = now + self.idle_seconds
        self._idle_ms = int(self.idle_seconds * 1000)
        return []
