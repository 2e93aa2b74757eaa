"""Minting a code for a citizen: current entitlements, the current key, a short lifetime.

The entitlements are those held at the minting moment, which is also the code's ``iat``: a code
minted on city day D carries the scenic reservations for D (and no other day), and a turnstile
reads D back from ``iat`` (``app.scenes.scenic.admits``).

A phone asks for a code every ~40 s, so what minting needs from the database — the citizen's
pseudonym, that it is active, its entitlements — is cached per citizen (``MintingFacts``) for at
most ``Settings.mint_cache_seconds`` (default 60), and never past the next city midnight or the
next ``valid_from``/``valid_until`` of any of the citizen's active credentials: an entry is
only ever used on the city day, and inside the validity windows, it was read in. Taking away is
immediate on every worker: each mint reads the trust feed's current state (one Redis GET,
``FeedTrust.current``, the generation every suspension and revocation announces; minting keeps
its own copy of the feed, so it never moves the scan path's), so a
suspended citizen gets no code and a revoked entitlement is dropped at once. Only what is
*added* (a newly issued credential) waits for the bound. Without Redis the cache is bypassed
and the database answers.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, time as day_time, timedelta, timezone

import redis
from sqlalchemy import select

from app.city import CITY_TZ
from app.codes.mint import mint
from app.codes.trust import StaticTrust
from app.db import Database
from app.db.models import Credential
from app.errors import PermissionDenied
from app.registry import citizens, credentials
from app.signing.keyring import KeyRingCache
from app.verification.trust_feed import FeedTrust

ISSUER = "cc"  # the `iss` of every code; short, because every byte grows the QR
MAX_CACHED_CITIZENS = 200_000  # ~200 bytes each; cleared wholesale when full


@dataclass(frozen=True)
class FreshCode:
    code: str
    expires_at: datetime
    refresh_after: datetime


@dataclass(frozen=True, slots=True)
class Facts:
    """What minting needs of an active citizen, read at ``read_at``, usable until ``until``."""

    pseudonym: str
    entitlements: tuple[str, ...]
    read_at: float
    until: float


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)  # SQLite drops offsets


def usable_until(now: float, bound: float, windows: list[tuple[datetime | None, datetime | None]]) -> float:
    """When facts read at ``now`` stop being safe to use: ``now + bound``, the next city midnight,
    or the next start or end of a credential's validity window, whichever comes first."""
    moment = datetime.fromtimestamp(now, timezone.utc)
    midnight = datetime.combine(moment.astimezone(CITY_TZ).date() + timedelta(days=1), day_time(0),
                                tzinfo=CITY_TZ)
    edges = [now + bound, midnight.timestamp()]
    for valid_from, valid_until in windows:
        edges.extend(_utc(edge).timestamp() for edge in (valid_from, valid_until)
                     if edge is not None and _utc(edge) > moment)
    return min(edges)


class MintingFacts:
    """Per-process cache of ``Facts`` by citizen id (thread-safe: one dict, whole-value swaps),
    read from ``db``, checked against ``feed`` (minting's own), kept at most ``bound_seconds``."""

    def __init__(self, db: Database, feed: FeedTrust, *, bound_seconds: float) -> None:
        self.db = db
        self.bound = float(bound_seconds)
        self.feed = feed
        self._entries: dict[str, Facts] = {}
        self._lock = threading.Lock()

    def _read(self, citizen_id: str, now: float) -> Facts:
        """From the database; 403 for a suspended citizen."""
        with self.db.session() as session:
            citizen = citizens.get(session, citizen_id)
            if citizen.status != citizens.ACTIVE:
                raise PermissionDenied("This citizen is suspended; no code can be issued.")
            # At the minting moment: its city day is the day of the code's iat (= floor(now); city
            # midnights fall on whole seconds), so the reservations carried are iat's day's.
            held = credentials.current_entitlements(session, citizen.id,
                                                    datetime.fromtimestamp(now, timezone.utc))
            windows = [(row.valid_from, row.valid_until) for row in session.execute(
                select(Credential.valid_from, Credential.valid_until).where(
                    Credential.citizen_id == citizen.id, Credential.status == credentials.ACTIVE))]
            return Facts(citizen.pseudonym, held, now, usable_until(now, self.bound, windows))

    def get(self, citizen_id: str, now: float) -> tuple[str, tuple[str, ...]]:
        """Pseudonym and entitlements at ``now``; ``PermissionDenied`` for a suspended citizen."""
        if self.bound <= 0:
            facts = self._read(citizen_id, now)
            return facts.pseudonym, facts.entitlements
        try:
            trust: StaticTrust | None = self.feed.current()
        except (redis.RedisError, OSError):
            trust = None  # cannot learn of a suspension announced elsewhere: ask the database
        facts = self._entries.get(citizen_id) if trust is not None else None
        if facts is None or not facts.read_at <= now < facts.until:
            facts = self._read(citizen_id, now)
            if trust is not None:
                with self._lock:
                    if len(self._entries) >= MAX_CACHED_CITIZENS:
                        self._entries.clear()
                    self._entries[citizen_id] = facts
        if trust is None:
            return facts.pseudonym, facts.entitlements
        if trust.is_suspended(facts.pseudonym):
            self._entries.pop(citizen_id, None)
            raise PermissionDenied("This citizen is suspended; no code can be issued.")
        revoked = trust.revoked_entitlements(facts.pseudonym, math.floor(facts.read_at))
        held = tuple(e for e in facts.entitlements if e not in revoked) if revoked else facts.entitlements
        return facts.pseudonym, held


class Minter:
    """Mints citizens' codes: ``facts`` for who they are and what they hold, the current key of
    ``keys``, a lifetime of ``ttl_seconds``."""

    def __init__(self, facts: MintingFacts, keys: KeyRingCache, *, ttl_seconds: int) -> None:
        self.facts = facts
        self.keys = keys
        self.ttl_seconds = ttl_seconds

    def code_for(self, citizen_id: str, now: float | None = None) -> FreshCode:
        """Mint a code for an active citizen. Suspended citizens get no code (403)."""
        now = time.time() if now is None else now
        pseudonym, entitlements = self.facts.get(citizen_id, now)
        ttl = self.ttl_seconds
        minted = mint(self.keys.get(), issuer=ISSUER, subject=pseudonym, entitlements=entitlements,
                      ttl_seconds=ttl, now=now)
        # Refresh well before expiry so a code shown at a gate is never seconds from expiring.
        refresh = minted.issued_at + max(5, ttl * 2 // 3)
        return FreshCode(minted.code, datetime.fromtimestamp(minted.expires_at, timezone.utc),
                         datetime.fromtimestamp(refresh, timezone.utc))
