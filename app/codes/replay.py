"""First-use records for codes, keyed on ``(iss, jti)`` — never on the token bytes.

ES256 signatures are malleable (``s`` and ``n - s`` both verify), so two different strings can
carry the same signed claims; keying on the signed ``jti`` makes such variants one code.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Callable, Protocol

import redis

from app.codes.errors import ReplayUnavailable
from app.codes.shards import rider_tag


class ReplayStore(Protocol):
    def claim(self, iss: str, jti: str, expires_at: float, sub: str = "") -> bool:
        """Atomically record first use; True the first time, False ever after (until
        ``expires_at``, when the code itself no longer verifies). ``sub`` (signed in the code)
        picks the key's cluster slot (``app.store.slots``). Raises ``ReplayUnavailable``
        when the store cannot answer."""
        ...


def replay_key(prefix: str, iss: str, jti: str, sub: str = "") -> str:
    """``<prefix>{rNN}:<len(iss)>:<iss>:<jti>`` — the length prefix keeps distinct pairs distinct
    whatever characters ``iss`` holds; ``{rNN}`` is the rider shard of ``sub`` (the code's signed
    pseudonym), so the key is in the slot of the rider's scene state in a Redis Cluster
    (``app.store.slots``). A device-bound code's key is the same with ``jti`` = certificate id +
    nonce and ``sub`` the certificate's pseudonym."""
    return f"{prefix}{rider_tag(sub)}:{len(iss)}:{iss}:{jti}"


DEFAULT_PREFIX = "cc:replay:"
DEFAULT_MARGIN_SECONDS = 30


def record_until(expires_at: float, margin_seconds: int = DEFAULT_MARGIN_SECONDS) -> int:
    """The absolute Unix time a replay record is kept until: a little past the code's end."""
    return math.ceil(expires_at) + margin_seconds


class RedisReplayStore:
    """``SET key 1 NX EXAT t``: one round trip, atomic across workers and servers.

    ``margin_seconds`` keeps each record a little past the code's end, so a Redis clock running
    ahead of ours cannot drop a record while we would still accept the code.
    """

    def __init__(self, client: "redis.Redis[bytes]", prefix: str = DEFAULT_PREFIX, *,
                 margin_seconds: int = DEFAULT_MARGIN_SECONDS) -> None:
        self.client = client
        self.prefix = prefix
        self.margin_seconds = margin_seconds

    def key(self, iss: str, jti: str, sub: str = "") -> str:
        """The Redis key for ``(iss, jti)`` of ``sub``'s code (scenes' Lua scripts claim the same key)."""
        return replay_key(self.prefix, iss, jti, sub)

    def expire_at(self, expires_at: float) -> int:
        """The absolute Unix time the record is kept until."""
        return record_until(expires_at, self.margin_seconds)

    def claim(self, iss: str, jti: str, expires_at: float, sub: str = "") -> bool:
        try:
            stored = self.client.set(self.key(iss, jti, sub), b"1", nx=True,
                                     exat=self.expire_at(expires_at))
        except (redis.RedisError, OSError) as exc:
            raise ReplayUnavailable(f"replay store unavailable: {type(exc).__name__}") from exc
        return bool(stored)


class MemoryReplayStore:
    """A thread-safe in-process store for offline readers and unit tests.

    Records are pruned lazily, in arrival order, on each claim. Codes' lifetimes are bounded
    (``max_ttl``), so arrival order is close to expiry order; a record pruned a little late only
    costs memory, because a record past its ``expires_at`` no longer counts. ``clock`` must be the
    verifier's clock.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        # iss → jti → expires_at: nested maps keep distinct pairs distinct and allocate no key
        # objects per claim (fewer objects for the garbage collector on a hot path).
        self._until: dict[str, dict[str, float]] = {}
        self._arrivals: deque[tuple[float, str, str]] = deque()

    def claim(self, iss: str, jti: str, expires_at: float, sub: str = "") -> bool:
        with self._lock:
            now = self._clock()
            arrivals = self._arrivals
            if arrivals and arrivals[0][0] < now:
                self._prune(now)
            records = self._until.get(iss)
            if records is None:
                records = self._until[iss] = {}
            until = records.get(jti)
            if until is not None and until >= now:
                return False
            records[jti] = expires_at
            arrivals.append((expires_at, iss, jti))
            return True

    def _prune(self, now: float) -> None:
        arrivals, until = self._arrivals, self._until
        while arrivals and arrivals[0][0] < now:
            expires_at, iss, jti = arrivals.popleft()
            records = until[iss]
            if records.get(jti) == expires_at:
                del records[jti]
                if not records:
                    del until[iss]

    def __len__(self) -> int:
        return sum(len(records) for records in self._until.values())
