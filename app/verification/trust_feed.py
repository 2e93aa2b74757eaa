"""Keeps each worker's trust state in step with the revocation feed in the database.

Writers commit a feed entry, then ``announce`` a new random generation in Redis. A scan decides on
the worker's cached state (``cached``) and passes the generation that state was read at
(``seen``) to its recording script, which compares it with Redis's in the same round trip (no GET
of its own): when they differ the script changes nothing and returns Redis's generation, and the
worker reads only the new feed entries from the database (``catch_up``) and decides again.
Reading the new entries every ``max_age`` seconds anyway is the safety net for a lost
announcement. ``current`` (one GET, then the same comparison) is for callers without a script.

Redis Cluster. A script may only read keys of its own slot, so the generation is kept in
``GENERATION_KEY`` (read by ``current``) and copied to one key per rider shard,
``cc:trust:generation:{rNN}`` (``app.records.stream.generation_key``), each compared by the
scripts of that shard. ``announce`` sets all of them to the same value in one pipeline (one
``MULTI`` on a single Redis; one round trip per master in a cluster). A copy an announcement did
not reach (its master down then) keeps its older value: the worker remembers what each shard's
copy said when it caught up (``seen(shard)``), so a disagreeing copy costs one catch-up, not one
per scan, and the next announcement (or the ``max_age`` safety net) covers the rest.
"""
from __future__ import annotations

import logging
import secrets
import threading
import time

import redis

from app.codes.trust import StaticTrust
from app.db import Database
from app.records.stream import GENERATION_KEY, GENERATION_KEYS
from app.store.redis import is_cluster
from app.registry import revocations

log = logging.getLogger(__name__)

__all__ = ["GENERATION_KEY", "FeedTrust", "announce"]


def announce(client: "redis.Redis[bytes]") -> None:
    """Tell every worker the feed changed. A failure only delays them until the safety net."""
    generation = secrets.token_hex(8)
    try:
        pipe = client.pipeline(transaction=not is_cluster(client))
        for key in (GENERATION_KEY, *GENERATION_KEYS):
            pipe.set(key, generation)
        pipe.execute()
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
        self._shards: dict[int, str] = {}  # shard → its copy's generation when last caught up
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

    def cached(self) -> StaticTrust:
        """The state as of the generation last seen, without asking Redis; refreshed from the
        database when older than ``max_age``. Scans check their result against Redis's
        generation in their script (``seen``)."""
        if time.monotonic() - self._loaded_at > self.max_age:
            with self._lock:
                if time.monotonic() - self._loaded_at > self.max_age:
                    self._catch_up()
        return self._state

    def seen(self, shard: int = 0) -> str:
        """The generation ``cached`` was read at, as rider shard ``shard``'s copy said it (the
        last one seen anywhere for a shard not asked yet); '' before any (a script then says it
        moved)."""
        known = self._shards.get(shard)
        if known is not None:
            return known
        generation = self._generation
        return "" if generation is None else generation.decode()

    def catch_up(self, generation: bytes | str, shard: int | None = None) -> None:
        """A script saw ``generation`` in Redis (in ``shard``'s copy): read the feed's new
        entries and remember it. The generation was read before the entries, so the state is at
        least as new as it."""
        generation = generation.encode() if isinstance(generation, str) else generation
        with self._lock:
            if generation != self._generation:
                self._catch_up()
                self._generation = generation
            if shard is not None:
                self._shards[shard] = generation.decode()

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
