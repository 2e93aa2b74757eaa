"""Online verification for terminals: the pure core, with Redis replay and the database trust feed.

Redis being unreachable never becomes a stack trace or a silent accept: authenticity is still
checked (a forged code is still ``bad_signature``), and a genuine code gets ``degraded``.
"""
from __future__ import annotations

import contextvars
import logging

import redis

from app.codes.decision import Decision
from app.codes.errors import Degraded
from app.codes.replay import ReplayStore
from app.codes.trust import StaticTrust
from app.codes.verify import Verifier
from app.signing.keyring import KeyRingCache
from app.verification.issuing import ISSUER
from app.verification.trust_feed import FeedTrust

log = logging.getLogger(__name__)

_snapshot: contextvars.ContextVar[StaticTrust | None] = contextvars.ContextVar("trust_snapshot", default=None)


class _RequestTrust:
    """The ``TrustState`` the core sees: the feed's cached state (no Redis round trip), taken
    lazily (only after the signature checked out) and once per verification. Whoever claims the
    code checks in the same script that the state is still current (``app.records``)."""

    def __init__(self, feed: FeedTrust) -> None:
        self.feed = feed

    def _state(self) -> StaticTrust:
        state = _snapshot.get()
        if state is None:
            try:
                state = self.feed.cached()
            except (redis.RedisError, OSError) as exc:
                log.warning("trust state unavailable", extra={"error": type(exc).__name__})
                raise Degraded("trust state unavailable") from None
            _snapshot.set(state)
        return state

    def is_suspended(self, sub: str) -> bool:
        return self._state().is_suspended(sub)

    def revoked_entitlements(self, sub: str, issued_at: int) -> frozenset[str]:
        return self._state().revoked_entitlements(sub, issued_at)

    def is_code_revoked(self, iss: str, jti: str) -> bool:
        return self._state().is_code_revoked(iss, jti)


class OnlineVerifier:
    """One per process: shares the core's header cache and the feed across threads. ``keys`` is
    the current key ring, ``feed`` the trust state, ``replay`` where first use is claimed."""

    def __init__(self, keys: KeyRingCache, feed: FeedTrust, replay: ReplayStore, *, max_ttl: int,
                 leeway: int) -> None:
        self.feed = feed
        self.core = Verifier(lambda: keys.get().verification_keys, _RequestTrust(feed), replay, ISSUER,
                             max_ttl=max_ttl, leeway=leeway)

    def check(self, code: str) -> Decision:
        """Authenticity, time and trust, without claiming first use."""
        token = _snapshot.set(None)
        try:
            return self.core.check(code)
        finally:
            _snapshot.reset(token)

    def verify(self, code: str) -> Decision:
        """``check`` and, for an accept, claim first use of ``(iss, jti)`` (unrecorded: scans go
        through ``ScanService``, which records them)."""
        return self.core.claim(self.check(code))
