"""Redis Lua scripts for scenes: first use and state change in one atomic step.

A Redis failure becomes ``Degraded`` (a ``degraded`` deny), never a stack trace or an accept.
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

import redis

from app.codes.decision import CodeClaims
from app.codes.errors import Degraded
from app.codes.replay import DEFAULT_PREFIX, record_until, replay_key

log = logging.getLogger(__name__)


class AtomicScript:
    def __init__(self, client: "redis.Redis[bytes]", source: str, name: str) -> None:
        self.name = name
        self._script = client.register_script(source)

    def __call__(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return self._script(keys=list(keys), args=list(args))
        except (redis.RedisError, OSError) as exc:
            log.warning("scene state unavailable", extra={"script": self.name, "error": type(exc).__name__})
            raise Degraded(f"{self.name}: state store unavailable") from None


def replay_key_for(claims: CodeClaims) -> str:
    """The same key ``RedisReplayStore`` claims, so scenes and plain verification agree."""
    return replay_key(DEFAULT_PREFIX, claims.iss, claims.jti)


def replay_expiry(claims: CodeClaims, leeway: int) -> int:
    """Unix time at which the replay record may go (EXAT argument), as ``RedisReplayStore`` keeps it."""
    return record_until(claims.exp + leeway)
