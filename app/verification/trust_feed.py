"""Keeps each worker's trust state in step with the revocation feed in the database.

Writers commit a feed entry, then ``announce`` a new random generation in Redis. Before each
verification a worker compares that generation with the one it last saw (one GET) and, when it
differs or is missing, reads only the new feed entries from the database. Reading the new entries
every ``max_age`` seconds anyway is the safety net for a lost announcement.
"""
from __future__ import annotations

import logging
import secrets
import threading
import time

import redis

from app.codes.trust import StaticTrust
from app.db import Database
from app.registry import revocations

log = logging.getLogger(__name__)

GENERATION_KEY = "cc:trust:generation"


def announce(client: "redis.Redis[bytes]") -> None:
    """Tell every worker the feed changed. A failure only delays them until the safety net."""
    try:
        client.set(GENERATION_KEY, secrets.token_hex(8))
    except (redis.RedisError, OSError) as exc:
        log.warning("could not announce a trust change", extra={"error": type(exc).__name__})


class FeedTrust:
    """A ``StaticTrust`` fed from the database feed, refreshed when Redis says it changed."""

    def __init__(self, db: Database, client: "redis.Redis[bytes]", *, max_age: float = 5.0) -> None:
        self.db = db
        self.redis = client
        self.max_age = max_age
        self._lock = threading.Lock()
        self._state = StaticTrust()
        self._version = 0
        self._generation: bytes | None = None
        self._loaded_at = 0.0

    def current(self) -> StaticTrust:
        """The up-to-date trust state. Raises ``redis.RedisError`` when Redis cannot be asked."""
        generation = self.redis.get(GENERATION_KEY)
        if generation is None:
            self.redis.set(GENERATION_KEY, secrets.token_hex(8), nx=True)
            generation = self.redis.get(GENERATION_KEY)
        stale = time.monotonic() - self._loaded_at > self.max_age
        if generation != self._generation or stale:
            with self._lock:
                if generation != self._generation or time.monotonic() - self._loaded_at > self.max_age:
                    self._catch_up()
                    self._generation = generation
        return self._state

    def _catch_up(self) -> None:
        with self.db.session() as session:
            page = revocations.since(session, self._version, limit=10**9)
        if page.full:  # first load, or the database's feed is not the one we followed
            state = StaticTrust()
            state.apply(page.entries)
            self._state = state
        else:
            self._state.apply(page.entries)
        self._version = page.version
        self._loaded_at = time.monotonic()
