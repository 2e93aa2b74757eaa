"""Consent-based disclosure (扫码亮证): an officer's scan asks, the citizen approves, the officer
reads once.

A request lives in Redis (a hash with a TTL) and holds no personal data: the citizen's pseudonym,
the requesting terminal and site, the credential types and the purpose. Every change of state is
one Lua step that also checks who is asking (the citizen the request is about, or the terminal
that made it) and notices expiry, so two readers can never both read and an expired request can
never be approved. Credential data is decrypted from the database only at the one read, and only
what is still valid then. Requests, answers, reads and expiries go into the audit log; a step is
undone when its audit entry cannot be written, so nothing is disclosed unaudited.
"""
from __future__ import annotations

import json
import logging
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import redis
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.audit import log as audit
from app.audit.scans import where
from app.codes.decision import Decision
from app.db.models import Citizen
from app.errors import Conflict, Gone, InvalidInput, NotFound, PermissionDenied, Unavailable
from app.registry import citizens, credentials
from app.registry.credential_types import CREDENTIAL_TYPES
from app.scenes.base import ScanContext

if TYPE_CHECKING:
    from app.registry.terminals import TerminalInfo
    from app.runtime import Runtime

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 300
RETENTION_SECONDS = 3600  # how long a decided or expired request is remembered after it expires
MAX_TYPES, MAX_PURPOSE = 5, 200
PENDING, APPROVED, DENIED, EXPIRED, READ = "pending", "approved", "denied", "expired", "read"
KEY_PREFIX, INDEX_PREFIX = "cc:disclosure:", "cc:disclosures:by-subject:"

# KEYS[1] request; ARGV: now, expected status, new status, owner field, owner value.
# Returns {outcome, field, value, ...}: outcome is missing | expired (just now) | moved | unchanged.
_STEP = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status or redis.call('HGET', KEYS[1], ARGV[4]) ~= ARGV[5] then return {'missing'} end
local outcome = 'unchanged'
if (status == 'pending' or status == 'approved')
    and tonumber(ARGV[1]) >= tonumber(redis.call('HGET', KEYS[1], 'expires_at')) then
  redis.call('HSET', KEYS[1], 'status', 'expired')
  outcome = 'expired'
elseif status == ARGV[2] then
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

    def fields(self) -> dict[str, str]:
        return {"id": self.id, "subject": self.subject, "terminal_id": self.terminal_id,
                "site": json.dumps(dict(self.site), ensure_ascii=False),
                "credential_types": json.dumps(list(self.credential_types)), "purpose": self.purpose,
                "created_at": repr(self.created_at), "expires_at": repr(self.expires_at),
                "status": self.status}

    @classmethod
    def from_fields(cls, raw: Mapping[bytes, bytes]) -> "Disclosure":
        f = {k.decode(): v.decode() for k, v in raw.items()}
        return cls(f["id"], f["subject"], f["terminal_id"], json.loads(f["site"]),
                   tuple(json.loads(f["credential_types"])), f["purpose"], float(f["created_at"]),
                   float(f["expires_at"]), f["status"])

    def audit_details(self) -> dict[str, Any]:
        return {"disclosure_id": self.id, "terminal_id": self.terminal_id,
                "credential_types": list(self.credential_types)}


@dataclass(frozen=True)
class Requested:
    """The answer to an officer's scan: a deny decision, or an accept and the pending request."""

    decision: Decision
    disclosure: Disclosure | None = None


@dataclass(frozen=True)
class Release:
    """What the requesting terminal sees; ``credentials`` only at the one read of an approval."""

    disclosure: Disclosure
    credentials: list[dict[str, Any]] | None = None


def check_request(credential_types: Sequence[str], purpose: str) -> tuple[tuple[str, ...], str]:
    """1–5 known credential types (duplicates dropped) and a purpose of 1–200 characters."""
    types = tuple(dict.fromkeys(credential_types))
    errors: dict[str, list[str]] = {}
    unknown = sorted(t for t in types if t not in CREDENTIAL_TYPES)
    if unknown or not 1 <= len(types) <= MAX_TYPES:
        errors["credential_types"] = ([f"unknown type: {t}" for t in unknown]
                                      or [f"name 1 to {MAX_TYPES} credential types"])
    purpose = purpose.strip()
    if not 1 <= len(purpose) <= MAX_PURPOSE:
        errors["purpose"] = [f"the purpose must be 1 to {MAX_PURPOSE} characters"]
    if errors:
        raise InvalidInput("The disclosure request is not valid.", errors)
    return types, purpose


def _read_details(disclosure: Disclosure, released: list[dict[str, Any]]) -> dict[str, Any]:
    """What was read, by credential id and type: never the numbers or the holder."""
    disclosed = {c["type"] for c in released}
    return {**disclosure.audit_details(),
            "disclosed": [{"type": c["type"], "credential_id": c["credential_id"]} for c in released],
            "withheld_types": [t for t in disclosure.credential_types if t not in disclosed]}


def _aware(moment: datetime | None) -> datetime | None:
    return None if moment is None else audit.utc(moment)


class DisclosureDesk:
    """Requests, answers and the one read. Share one per process; ``clock`` is injectable."""

    def __init__(self, rt: "Runtime", *, ttl_seconds: int = DEFAULT_TTL_SECONDS,
                 retention_seconds: int = RETENTION_SECONDS, clock: Callable[[], float] = time.time) -> None:
        self.rt = rt
        self.ttl_seconds = ttl_seconds
        self.retention_seconds = retention_seconds
        self.clock = clock

    # -- the officer's scan ------------------------------------------------------------------
    def request(self, terminal: "TerminalInfo", code: str, credential_types: Sequence[str],
                purpose: str) -> Requested:
        """Verify and consume the code; on accept, open a pending request for the citizen."""
        if terminal.kind != "hall":
            raise PermissionDenied("Only service-hall terminals may request a disclosure.")
        types, purpose = check_request(credential_types, purpose)
        now = self.clock()
        ctx = ScanContext(terminal.id, terminal.kind, terminal.site, None, now)
        decision = self.rt.verifier.core.claim(self.rt.verifier.check(code))
        if not decision.accepted or decision.claims is None:
            self.rt.scans.observe(ctx, decision)
            return Requested(decision)
        disclosure = Disclosure("dsc_" + secrets.token_urlsafe(16), decision.claims.sub, terminal.id,
                                where(terminal.kind, terminal.site), types, purpose, now,
                                now + self.ttl_seconds, PENDING)
        try:
            self._store(disclosure)
        except (redis.RedisError, OSError) as exc:
            log.warning("disclosure store unavailable", extra={"error": type(exc).__name__})
            denied = Decision.deny("degraded", decision.claims, detail="disclosure store unavailable")
            self.rt.scans.observe(ctx, denied)
            return Requested(denied)
        try:
            with self.rt.db.session() as session:
                audit.append(session, actor_kind="terminal", actor_id=terminal.id,
                             action="disclosure_requested", subject=disclosure.subject,
                             site=disclosure.site, purpose=purpose, reason=decision.reason,
                             details={**disclosure.audit_details(), "decision": decision.decision,
                                      "jti": decision.claims.jti})
        except (SQLAlchemyError, audit.AuditError):
            log.exception("disclosure request not audited; withdrawn")
            self._forget(disclosure)
            return Requested(Decision.deny("degraded", decision.claims, detail="audit log unavailable"))
        return Requested(decision, disclosure)

    # -- the citizen ---------------------------------------------------------------------------
    def pending_for(self, citizen_id: str) -> list[Disclosure]:
        """This citizen's requests still waiting for an answer, oldest first."""
        subject, now = self._subject(citizen_id), self.clock()
        index = INDEX_PREFIX + subject
        found = []
        with self._state():
            self._redis.zremrangebyscore(index, "-inf", now - self.retention_seconds)
            for raw_id in self._redis.zrange(index, 0, -1):
                outcome, disclosure = self._step(raw_id.decode(), now, "", "", "subject", subject)
                if disclosure is None:
                    self._redis.zrem(index, raw_id)
                elif outcome == EXPIRED:
                    self._audit_expired(disclosure)
                elif disclosure.status == PENDING:
                    found.append(disclosure)
        return sorted(found, key=lambda d: d.created_at)

    def answer(self, citizen_id: str, disclosure_id: str, approve: bool) -> Disclosure:
        """Approve or deny; only the citizen the request is about (anyone else: not found)."""
        subject, now = self._subject(citizen_id), self.clock()
        new_status = APPROVED if approve else DENIED
        outcome, disclosure = self._step(disclosure_id, now, PENDING, new_status, "subject", subject)
        if disclosure is None:
            raise NotFound("No such disclosure request.")
        if outcome == EXPIRED:
            self._audit_expired(disclosure)
        if outcome != "moved":
            raise Conflict(f"This disclosure request is {disclosure.status}; it can no longer be answered.")
        try:
            with self.rt.db.session() as session:
                audit.append(session, actor_kind="citizen", actor_id=citizen_id,
                             action=f"disclosure_{new_status}", subject=subject, site=disclosure.site,
                             purpose=disclosure.purpose, details=disclosure.audit_details())
        except BaseException:
            self._undo(disclosure_id, now, new_status, PENDING, "subject", subject)
            raise
        return disclosure

    # -- the requesting terminal -----------------------------------------------------------------
    def read(self, terminal_id: str, disclosure_id: str) -> Release:
        """The request's state; an approved one is released once, with data decrypted now."""
        now = self.clock()
        outcome, disclosure = self._step(disclosure_id, now, APPROVED, READ, "terminal_id", terminal_id)
        if disclosure is None:
            raise NotFound("No such disclosure request.")
        if outcome == EXPIRED:
            self._audit_expired(disclosure)
        if outcome != "moved":
            if disclosure.status == READ:
                raise Gone("This disclosure was already read; it can be read only once.")
            return Release(disclosure)
        try:
            with self.rt.db.session() as session:
                released = self._decrypt(session, disclosure, now)
                audit.append(session, actor_kind="terminal", actor_id=terminal_id,
                             action="disclosure_read", subject=disclosure.subject, site=disclosure.site,
                             purpose=disclosure.purpose, details=_read_details(disclosure, released))
        except BaseException:
            self._undo(disclosure_id, now, READ, APPROVED, "terminal_id", terminal_id)
            raise
        return Release(replace(disclosure, status=APPROVED), released)

    # -- internals -----------------------------------------------------------------------------
    @property
    def _redis(self) -> "redis.Redis[bytes]":
        return self.rt.redis

    @contextmanager
    def _state(self) -> Iterator[None]:
        try:
            yield
        except (redis.RedisError, OSError) as exc:
            log.warning("disclosure store unavailable", extra={"error": type(exc).__name__})
            raise Unavailable("Disclosure requests are unavailable right now; try again.") from None

    def _store(self, disclosure: Disclosure) -> None:
        keep = int(self.ttl_seconds + self.retention_seconds)
        index = INDEX_PREFIX + disclosure.subject
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(KEY_PREFIX + disclosure.id, mapping=disclosure.fields())  # type: ignore[arg-type]
        pipe.expire(KEY_PREFIX + disclosure.id, keep)
        pipe.zadd(index, {disclosure.id: disclosure.expires_at})
        pipe.expire(index, keep)
        pipe.execute()

    def _forget(self, disclosure: Disclosure) -> None:
        try:
            self._redis.delete(KEY_PREFIX + disclosure.id)
            self._redis.zrem(INDEX_PREFIX + disclosure.subject, disclosure.id)
        except (redis.RedisError, OSError):
            log.warning("could not withdraw an unaudited disclosure request")

    def _step(self, disclosure_id: str, now: float, expect: str, new_status: str, owner_field: str,
              owner: str) -> tuple[str, Disclosure | None]:
        if not 0 < len(disclosure_id) <= 64:
            return "missing", None
        with self._state():
            script = self._redis.register_script(_STEP)
            raw = script(keys=[KEY_PREFIX + disclosure_id],
                         args=[repr(now), expect, new_status, owner_field, owner])
        outcome = raw[0].decode()
        if outcome == "missing":
            return outcome, None
        return outcome, Disclosure.from_fields(dict(zip(raw[1::2], raw[2::2])))

    def _undo(self, disclosure_id: str, now: float, status: str, back_to: str, owner_field: str,
              owner: str) -> None:
        """Best effort: put a step back when its audit entry could not be written."""
        try:
            self._step(disclosure_id, now, status, back_to, owner_field, owner)
        except Unavailable:
            log.warning("could not undo an unaudited disclosure step", extra={"disclosure": disclosure_id})

    def _audit_expired(self, disclosure: Disclosure) -> None:
        try:
            with self.rt.db.session() as session:
                audit.append(session, actor_kind="system", actor_id="disclosures",
                             action="disclosure_expired", subject=disclosure.subject,
                             site=disclosure.site, purpose=disclosure.purpose,
                             details=disclosure.audit_details())
        except (SQLAlchemyError, audit.AuditError):
            log.exception("disclosure expiry not audited", extra={"disclosure": disclosure.id})

    def _subject(self, citizen_id: str) -> str:
        with self.rt.db.session() as session:
            return citizens.get(session, citizen_id).pseudonym

    def _decrypt(self, session: Session, disclosure: Disclosure, now: float) -> list[dict[str, Any]]:
        """The requested credentials still valid now, with the holder's name and ID number."""
        citizen = session.scalars(select(Citizen)
                                  .where(Citizen.pseudonym == disclosure.subject)).one_or_none()
        if citizen is None:
            return []
        vault = self.rt.vault
        valid = {c.id for c in credentials.valid_credentials(
            session, citizen.id, datetime.fromtimestamp(now, timezone.utc))}
        rows = [(c, issuer) for c, issuer in credentials.for_citizen(session, citizen.id) if c.id in valid]
        personal = citizens.personal_data(vault, citizen)
        holder = {"name": personal["name"], "id_number": personal["id_number"]}
        return [{"credential_id": c.id, "type": c.type, "number": credentials.reveal_number(vault, c),
                 "attributes": dict(c.attributes), "issuer": issuer,
                 "valid_until": _aware(c.valid_until), "holder": holder}
                for wanted in disclosure.credential_types for c, issuer in rows if c.type == wanted]
