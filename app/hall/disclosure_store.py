"""Where disclosure requests live: one Redis hash per request, with a TTL, and a per-citizen index.

A request holds no personal data: the citizen's pseudonym, the requesting terminal and site, the
credential types, the fields asked for (names such as ``id_card.holder.name``) and the purpose.
Every change of state is one Lua step (``_STEP``) that also checks who is asking (the citizen the
request is about, or the terminal that made it) and notices expiry, so two readers can never both
read, an expired request can never be approved, and a withdrawn one (its citizen suspended) never
read.
The rules of who may ask for what are the desk's (``app.hall.disclosure``).
"""
from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import redis

from app.errors import Unavailable
from app.registry.credential_types import default_fields
from app.store.redis import is_cluster

log = logging.getLogger(__name__)

RETENTION_SECONDS = 3600  # how long a decided or expired request is remembered after it expires
PENDING, APPROVED, DENIED, EXPIRED, READ = "pending", "approved", "denied", "expired", "read"
WITHDRAWN = "withdrawn"  # the citizen was suspended before the request was read
MOVED, MISSING = "moved", "missing"  # step outcomes, besides EXPIRED (just now) and "unchanged"
KEY_PREFIX, INDEX_PREFIX = "cc:disclosure:", "cc:disclosures:by-subject:"
MAX_ID_LENGTH = 64

# KEYS[1] request; ARGV: now, expected status (or several, "pending|approved"), new status, owner
# field, owner value.
# Returns {outcome, field, value, ...}: outcome is missing | expired (just now) | moved | unchanged.
_STEP = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status or redis.call('HGET', KEYS[1], ARGV[4]) ~= ARGV[5] then return {'missing'} end
local outcome = 'unchanged'
if (status == 'pending' or status == 'approved')
    and tonumber(ARGV[1]) >= tonumber(redis.call('HGET', KEYS[1], 'expires_at')) then
  redis.call('HSET', KEYS[1], 'status', 'expired')
  outcome = 'expired'
elseif string.find('|' .. ARGV[2] .. '|', '|' .. status .. '|', 1, true) then
  redis.call('HSET', KEYS[1], 'status', ARGV[3])
  outcome = 'moved'
end
local fields = redis.call('HGETALL', KEYS[1])
table.insert(fields, 1, outcome)
return fields
"""


@dataclass(frozen=True)
class Disclosure:
    id: str
    subject: str  # the citizen's pseudonym
    terminal_id: str
    site: Mapping[str, Any]
    credential_types: tuple[str, ...]
    purpose: str
    created_at: float
    expires_at: float
    status: str
    fields: tuple[str, ...] = ()  # qualified field names, e.g. "id_card.number"

    def stored(self) -> dict[str, str]:
        return {"id": self.id, "subject": self.subject, "terminal_id": self.terminal_id,
                "site": json.dumps(dict(self.site), ensure_ascii=False),
                "credential_types": json.dumps(list(self.credential_types)), "purpose": self.purpose,
                "created_at": repr(self.created_at), "expires_at": repr(self.expires_at),
                "status": self.status, "fields": json.dumps(list(self.fields))}

    @classmethod
    def from_fields(cls, raw: Mapping[bytes, bytes]) -> "Disclosure":
        f = {k.decode(): v.decode() for k, v in raw.items()}
        types = tuple(json.loads(f["credential_types"]))
        # A request stored before fields were named asked for each type's default fields.
        fields = (tuple(json.loads(f["fields"])) if "fields" in f
                  else tuple(name for t in types for name in default_fields(t)))
        return cls(f["id"], f["subject"], f["terminal_id"], json.loads(f["site"]), types, f["purpose"],
                   float(f["created_at"]), float(f["expires_at"]), f["status"], fields)

    def audit_details(self) -> dict[str, Any]:
        return {"disclosure_id": self.id, "terminal_id": self.terminal_id,
                "credential_types": list(self.credential_types), "fields": list(self.fields)}


@contextmanager
def _unavailable_on_redis_error() -> Iterator[None]:
    """Turn a Redis failure into ``Unavailable``: the views answer 503, an officer's scan a
    ``degraded`` deny."""
    try:
        yield
    except (redis.RedisError, OSError) as exc:
        log.warning("disclosure store unavailable", extra={"error": type(exc).__name__})
        raise Unavailable("Disclosure requests are unavailable right now; try again.") from None


class DisclosureStore:
    """Create, step and list requests over one Redis client."""

    def __init__(self, client: "redis.Redis[bytes]", *, retention_seconds: int = RETENTION_SECONDS) -> None:
        self.client = client
        self.retention_seconds = retention_seconds
        self._script = client.register_script(_STEP)

    def create(self, disclosure: Disclosure, ttl_seconds: int) -> None:
        """Store a new request and index it under its citizen."""
        keep = int(ttl_seconds + self.retention_seconds)
        index = INDEX_PREFIX + disclosure.subject
        # One MULTI on a single Redis. In a cluster the request and the index are in different
        # slots: one pipeline, the request first; a failure between leaves a request nobody lists
        # (it expires) — an index entry without its request is dropped by ``about``.
        pipe = self.client.pipeline(transaction=not is_cluster(self.client))
        pipe.hset(KEY_PREFIX + disclosure.id, mapping=disclosure.stored())  # type: ignore[arg-type]
        pipe.expire(KEY_PREFIX + disclosure.id, keep)
        pipe.zadd(index, {disclosure.id: disclosure.expires_at})
        pipe.expire(index, keep)
        with _unavailable_on_redis_error():
            pipe.execute()

    def forget(self, disclosure: Disclosure) -> None:
        """Best effort: withdraw a request that must not stand (its audit entry failed)."""
        try:
            self.client.delete(KEY_PREFIX + disclosure.id)
            self.client.zrem(INDEX_PREFIX + disclosure.subject, disclosure.id)
        except (redis.RedisError, OSError):
            log.warning("could not withdraw an unaudited disclosure request")

    def step(self, disclosure_id: str, now: float, expect: str, new_status: str, owner_field: str,
             owner: str) -> tuple[str, Disclosure | None]:
        """Move ``expect`` → ``new_status`` if ``owner_field`` is ``owner`` and the request has not
        expired (noticing expiry if it has). The outcome and the request as it is now; ``None``
        when there is no such request for this owner."""
        if not 0 < len(disclosure_id) <= MAX_ID_LENGTH:
            return MISSING, None
        with _unavailable_on_redis_error():
            raw = self._script(keys=[KEY_PREFIX + disclosure_id],
                               args=[repr(now), expect, new_status, owner_field, owner])
        outcome = raw[0].decode()
        if outcome == MISSING:
            return outcome, None
        return outcome, Disclosure.from_fields(dict(zip(raw[1::2], raw[2::2])))

    def undo(self, disclosure_id: str, now: float, status: str, back_to: str, owner_field: str,
             owner: str) -> None:
        """Best effort: put a step back when its audit entry could not be written."""
        try:
            self.step(disclosure_id, now, status, back_to, owner_field, owner)
        except Unavailable:
            log.warning("could not undo an unaudited disclosure step", extra={"disclosure": disclosure_id})

    def about(self, subject: str, now: float) -> Iterator[tuple[str, Disclosure]]:
        """Every remembered request about ``subject`` with the outcome of a no-op step (which
        notices expiry); requests gone from Redis leave the index."""
        index = INDEX_PREFIX + subject
        with _unavailable_on_redis_error():
            self.client.zremrangebyscore(index, "-inf", now - self.retention_seconds)
            for raw_id in self.client.zrange(index, 0, -1):
                outcome, disclosure = self.step(raw_id.decode(), now, "", "", "subject", subject)
                if disclosure is None:
                    self.client.zrem(index, raw_id)
                else:
                    yield outcome, disclosure

    def withdraw_all(self, subject: str, now: float) -> list[tuple[str, Disclosure]]:
        """Move every pending or approved (not yet read) request about ``subject`` to withdrawn,
        each in one step; the outcome and request of each one that moved or just expired."""
        index = INDEX_PREFIX + subject
        changed: list[tuple[str, Disclosure]] = []
        with _unavailable_on_redis_error():
            for raw_id in self.client.zrange(index, 0, -1):
                outcome, disclosure = self.step(raw_id.decode(), now, f"{PENDING}|{APPROVED}", WITHDRAWN,
                                                "subject", subject)
                if disclosure is not None and outcome in (MOVED, EXPIRED):
                    changed.append((outcome, disclosure))
        return changed
