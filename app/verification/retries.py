"""Retried scans: a terminal that lost the reply to a scan sends it again with the same
``request_id`` and gets the first answer back, with nothing changed a second time.

Redis key (one per terminal and request id, a JSON string, living as long as the code can be
used, i.e. until the replay record of the code ends):

- ``cc:retry:<terminal_id>:<h>`` — ``h`` is a 128-bit BLAKE2b hash of the ``request_id``, so
  whatever a vendor puts in its ids never lands in a key. The value is ``{"f": fp, "o": owner}``
  while the first request is deciding (the reservation), then ``{"f": fp, "b": body}``.
  ``fp`` is a hash of the request (endpoint, code, direction or hall service), so the same
  ``request_id`` with another request is a ``Conflict`` (409), never the other request's answer.

How a request with a ``request_id`` runs (``RetryMemory.once``):

1. reserve: one Lua script either stores the reservation (this request decides) or returns what
   is stored — a body (a retry: answer it, change nothing), a reservation (the first request is
   still deciding: poll for up to ``wait_seconds`` — less than a reader's own online timeout,
   300 ms — then answer ``degraded``), or another ``fp``
   (``RequestIdReused``);
2. decide (the scene's Lua script claims the code, changes state and records the scan in the
   scan-record stream, ``app.records``);
3. settle: store the body in place of our reservation. A ``degraded`` answer changed nothing and
   is not kept: the reservation is dropped, so a retry decides anew once the store is back.

What remains: a worker dying between its scene script and the settle (or Redis failing just
then) leaves the reservation without a body until the code's replay record ends. Retries in that
time answer ``degraded`` (use the staffed lane / decide offline) — never ``replayed`` and never a
second charge; the scan's effect and audit entry are whatever the first request got to. Without
Redis nothing can be reserved (``Degraded`` is raised) and the caller answers as it does
without a ``request_id``. Memory of a request ends with its key: a retry after the code's
lifetime decides anew (and the code is then ``expired``).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable

import redis

from app.codes.decision import Decision
from app.codes.errors import Degraded
from app.codes.replay import record_until
from app.errors import Conflict

log = logging.getLogger(__name__)

KEY_PREFIX = "cc:retry:"
REQUEST_ID_PATTERN = "^[A-Za-z0-9._:-]{1,64}$"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
MIN_MEMORY_SECONDS = 30

Body = dict[str, Any]

# KEYS: retry key.  ARGV: reservation value, EXAT.  Returns false (reserved) or the stored value.
_RESERVE = """
local stored = redis.call('GET', KEYS[1])
if stored then return stored end
redis.call('SET', KEYS[1], ARGV[1], 'EXAT', ARGV[2])
return false
"""

# KEYS: retry key.  ARGV: our reservation value, final value ('' = drop), EXAT.
# Only the owner of the reservation settles it.
_SETTLE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'EXAT', ARGV[3]) end
return 1
"""


class RequestIdReused(Conflict):
    """The terminal sent this ``request_id`` before with a different request."""

    def __init__(self) -> None:
        super().__init__("This request_id was already used by this terminal for a different "
                         "request (another code, direction or service). Use a new request_id.")


def valid_request_id(value: str) -> bool:
    """1..64 characters of ``[A-Za-z0-9._:-]``."""
    return _REQUEST_ID.fullmatch(value) is not None


def fingerprint(*parts: str | None) -> str:
    """A short hash identifying a request (endpoint, code and whatever else picks the answer)."""
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        digest.update(b"\x01" if part is None else b"\x00" + part.encode("utf-8", "surrogatepass"))
        digest.update(b"\xff")
    return digest.hexdigest()


@dataclass(frozen=True)
class Attempt:
    """One terminal's request, as its retries will name it."""

    terminal_id: str
    request_id: str
    fingerprint: str

    @property
    def key(self) -> str:
        hashed = hashlib.blake2b(self.request_id.encode(), digest_size=16).hexdigest()
        return f"{KEY_PREFIX}{self.terminal_id}:{hashed}"


class RetryMemory:
    """Per-terminal memory of decided scans in Redis (see the module docstring)."""

    def __init__(self, client: "redis.Redis[bytes]", *, leeway: int, fallback_seconds: int,
                 wait_seconds: float = 0.25, poll_seconds: float = 0.01,
                 wall: Callable[[], float] = time.time, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.leeway = leeway
        self.fallback_seconds = fallback_seconds
        self.wait_seconds = wait_seconds
        self.poll_seconds = poll_seconds
        self.wall = wall  # Unix time, as codes are verified (keys expire on it)
        self.clock = clock  # for waiting only
        self.sleep = sleep
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)

    def until(self, checked: Decision) -> int:
        """Unix time the memory of a request about ``checked`` ends: with the code's replay record
        when the code was authentic, else ``fallback_seconds`` (a code lifetime) from now."""
        start = math.ceil(self.wall())
        if checked.claims is None:
            return start + self.fallback_seconds
        ends = record_until(checked.claims.exp + self.leeway)
        # Bounded both ways: an expired code is still remembered a little, and no authentic code
        # (``exp`` at most a lifetime past ``now`` while it verifies) keeps a key for longer.
        return min(max(ends, start + MIN_MEMORY_SECONDS), record_until(start + self.fallback_seconds))

    def once(self, attempt: Attempt, until: int, decide: Callable[[], Body]) -> Body:
        """``decide()``'s body for the first request of ``attempt``; the stored body for a retry.

        Raises ``RequestIdReused`` (409) for another request under the same id, and ``Degraded``
        when Redis cannot take the reservation (nothing was decided then).
        """
        owner = json.dumps({"f": attempt.fingerprint, "o": secrets.token_hex(8)})
        deadline = self.clock() + self.wait_seconds
        delay = self.poll_seconds
        while True:
            stored = self._call(self._reserve, attempt.key, [owner, until])
            if stored is None:
                return self._decide_and_settle(attempt, owner, until, decide)
            value = json.loads(stored)
            if value["f"] != attempt.fingerprint:
                raise RequestIdReused()
            if "b" in value:
                return value["b"]  # type: ignore[no-any-return]
            if self.clock() >= deadline:
                return Decision.deny("degraded", detail="request still being decided").to_dict()
            self.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _decide_and_settle(self, attempt: Attempt, owner: str, until: int,
                           decide: Callable[[], Body]) -> Body:
        # An exception out of decide() leaves the reservation: whether the scene changed state is
        # unknown, so retries answer `degraded` rather than decide the code a second time.
        body = decide()
        keep = "" if body.get("reason") == "degraded" else json.dumps(
            {"f": attempt.fingerprint, "b": body}, ensure_ascii=False, separators=(",", ":"))
        try:
            self._call(self._settle, attempt.key, [owner, keep, until])
        except Degraded:
            log.warning("retry memory: answer not stored", extra={"terminal": attempt.terminal_id})
        return body

    @staticmethod
    def _call(script: Any, key: str, args: list[Any]) -> bytes | None:
        try:
            return script(keys=[key], args=args)  # type: ignore[no-any-return]
        except (redis.RedisError, OSError) as exc:
            log.warning("retry memory unavailable", extra={"error": type(exc).__name__})
            raise Degraded("retry memory unavailable") from None
