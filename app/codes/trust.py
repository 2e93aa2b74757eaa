"""Trust state the verifier consults after the signature: suspensions and revocations.

``TrustState`` is what verification needs; the server backs it with its registry, offline readers
with ``StaticTrust`` filled from the revocation feed (``GET /v1/trust/revocations``).
"""
from __future__ import annotations

import math
import threading
from datetime import datetime
from typing import Any, Iterable, Mapping, Protocol

EMPTY: frozenset[str] = frozenset()
FEED_KINDS = ("citizen_suspended", "citizen_restored", "entitlement_revoked", "code_revoked")


class TrustState(Protocol):
    """Answers the three trust questions; each call must be cheap (it runs on every scan)."""

    def is_suspended(self, sub: str) -> bool: ...

    def revoked_entitlements(self, sub: str, issued_at: int) -> frozenset[str]:
        """Entitlements of ``sub`` revoked at or after ``issued_at`` (so a code issued before the
        revocation must no longer carry them)."""
        ...

    def is_code_revoked(self, iss: str, jti: str) -> bool: ...


class StaticTrust:
    """In-memory trust state for unit tests and offline readers.

    Readers never block on writers: the per-citizen entitlement maps are replaced, not mutated,
    and ``apply`` takes a lock only against other writers.
    """

    def __init__(self, *, suspended: Iterable[str] = (),
                 revoked_entitlements: Mapping[tuple[str, str], float] | None = None,
                 revoked_codes: Iterable[tuple[str, str]] = ()) -> None:
        self._lock = threading.Lock()
        self._suspended: set[str] = set(suspended)
        self._entitlements: dict[str, dict[str, float]] = {}
        self._codes: set[tuple[str, str]] = set(revoked_codes)
        for (sub, ent), at in (revoked_entitlements or {}).items():
            self.revoke_entitlement(sub, ent, at)

    # -- TrustState ----------------------------------------------------------------------------
    def is_suspended(self, sub: str) -> bool:
        return sub in self._suspended

    def revoked_entitlements(self, sub: str, issued_at: int) -> frozenset[str]:
        revoked = self._entitlements.get(sub)
        if not revoked:
            return EMPTY
        return frozenset(ent for ent, at in revoked.items() if at >= issued_at)

    def is_code_revoked(self, iss: str, jti: str) -> bool:
        return (iss, jti) in self._codes

    # -- changes -------------------------------------------------------------------------------
    def suspend(self, sub: str) -> None:
        self._suspended.add(sub)

    def restore(self, sub: str) -> None:
        self._suspended.discard(sub)

    def revoke_entitlement(self, sub: str, ent: str, at: float) -> None:
        """Record a revocation; the latest time wins (a re-granted, re-revoked entitlement)."""
        with self._lock:
            current = self._entitlements.get(sub, {})
            if at > current.get(ent, float("-inf")):
                self._entitlements[sub] = {**current, ent: at}

    def revoke_code(self, iss: str, jti: str) -> None:
        self._codes.add((iss, jti))

    def apply(self, entries: Iterable[Mapping[str, Any]]) -> int:
        """Apply revocation feed entries ``{kind, id, at}`` in order; return how many.

        Ids: ``citizen_*`` → ``<sub>``; ``entitlement_revoked`` → ``<sub>/<ent>``;
        ``code_revoked`` → ``<iss>/<jti>`` (split at the last ``/``: jti and entitlement codes
        never contain one). Every entry is validated before any is applied, and an unknown kind
        is an error, not skipped: a reader that cannot understand its feed must not trust it.
        """
        parsed = [_parse_entry(entry) for entry in entries]
        for kind, ident, at in parsed:
            if kind == "citizen_suspended":
                self.suspend(ident)
            elif kind == "citizen_restored":
                self.restore(ident)
            elif kind == "entitlement_revoked":
                sub, ent = ident.rsplit("/", 1)
                self.revoke_entitlement(sub, ent, at)
            else:
                iss, jti = ident.rsplit("/", 1)
                self.revoke_code(iss, jti)
        return len(parsed)


def _parse_entry(entry: Mapping[str, Any]) -> tuple[str, str, float]:
    if not isinstance(entry, Mapping):
        raise ValueError(f"feed entry must be an object, got {type(entry).__name__}")
    kind, ident, at = entry.get("kind"), entry.get("id"), entry.get("at")
    if kind not in FEED_KINDS:
        raise ValueError(f"unknown revocation feed kind {kind!r}")
    if not isinstance(ident, str) or not ident:
        raise ValueError(f"feed entry {kind} needs a non-empty string id")
    if kind in ("entitlement_revoked", "code_revoked"):
        head, _, tail = ident.rpartition("/")
        if not head or not tail:
            raise ValueError(f"feed entry {kind} id must look like 'a/b', got {ident!r}")
    return kind, ident, _parse_time(at)


def _parse_time(at: object) -> float:
    """Epoch seconds, or an RFC 3339 string with an offset."""
    if isinstance(at, (int, float)) and not isinstance(at, bool) and math.isfinite(at):
        return float(at)
    if isinstance(at, str):
        try:
            moment = datetime.fromisoformat(at)
        except ValueError:
            raise ValueError(f"feed time {at!r} is not RFC 3339") from None
        if moment.tzinfo is None:
            raise ValueError(f"feed time {at!r} has no UTC offset")
        return moment.timestamp()
    raise ValueError(f"feed time must be epoch seconds or RFC 3339, got {at!r}")
