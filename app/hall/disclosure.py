"""Consent-based disclosure (扫码亮证): an officer's scan asks, the citizen approves, the officer
reads once.

Only hall terminals ask, for known credential types and a stated purpose; only the citizen the
request is about answers; only the terminal that asked reads, once. Requests live in Redis
(``app.hall.disclosure_store``) without personal data; credential data is decrypted only at the one
read, and only what is still valid then. Requests, answers, reads and expiries are audited; a step
is undone when its audit entry cannot be written, so nothing is disclosed unaudited.
"""
from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Sequence

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.audit import log as audit
from app.audit.scans import where
from app.codes.decision import Decision
from app.errors import Conflict, Gone, InvalidInput, NotFound, PermissionDenied, Unavailable
from app.hall.disclosure_store import (APPROVED, DENIED, EXPIRED, MOVED, PENDING, READ, Disclosure,
                                       DisclosureStore)
from app.registry import citizens, credentials
from app.registry.credential_types import CREDENTIAL_TYPES
from app.scenes.base import ScanContext

if TYPE_CHECKING:
    from app.registry.terminals import TerminalInfo
    from app.runtime import Runtime

log = logging.getLogger(__name__)

MAX_TYPES, MAX_PURPOSE = 5, 200


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


def _audit(session: Session, disclosure: Disclosure, actor_kind: str, actor_id: str, action: str,
           details: dict[str, Any] | None = None, reason: str | None = None) -> None:
    audit.append(session, actor_kind=actor_kind, actor_id=actor_id, action=action,
                 subject=disclosure.subject, site=disclosure.site, purpose=disclosure.purpose,
                 reason=reason, details=disclosure.audit_details() if details is None else details)


class DisclosureDesk:
    """Requests, answers and the one read. One per runtime (``rt.disclosures``); ``clock`` is
    injectable."""

    def __init__(self, rt: "Runtime", *, ttl_seconds: int, clock: Callable[[], float] = time.time) -> None:
        self.rt = rt
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self.store = DisclosureStore(rt.redis)

    # -- the officer's scan ------------------------------------------------------------------
    def request(self, terminal: "TerminalInfo", code: str, credential_types: Sequence[str],
                purpose: str) -> Requested:
        """Verify and consume the code; on accept, open a pending request for the citizen."""
        if terminal.kind != "hall":
            raise PermissionDenied("Only service-hall terminals may request a disclosure.")
        types, purpose = check_request(credential_types, purpose)
        now = self.clock()
        ctx = ScanContext(terminal.id, terminal.kind, terminal.site, None, now)
        # A deny is recorded as a scan (its script or one XADD); an accept's record is the
        # synchronous `disclosure_requested` audit entry below, written before anything is shown.
        decision = self.rt.scans.fresh(ctx, code, self.rt.verifier.check(code), self._claim(ctx))
        if not decision.accepted or decision.claims is None:
            return Requested(decision)
        disclosure = Disclosure("dsc_" + secrets.token_urlsafe(16), decision.claims.sub, terminal.id,
                                where(terminal.kind, terminal.site), types, purpose, now,
                                now + self.ttl_seconds, PENDING)
        try:
            self.store.create(disclosure, self.ttl_seconds)
        except Unavailable:
            denied = Decision.deny("degraded", decision.claims, detail="disclosure store unavailable")
            self.rt.records.deny(ctx, denied)  # Redis just failed: counted if it cannot record
            self.rt.scans.observe(ctx, denied)
            return Requested(denied)
        try:
            with self.rt.db.session() as session:
                _audit(session, disclosure, "terminal", terminal.id, "disclosure_requested",
                       {**disclosure.audit_details(), "decision": decision.decision,
                        "jti": decision.claims.jti}, reason=decision.reason)
        except (SQLAlchemyError, audit.AuditError):
            log.exception("disclosure request not audited; withdrawn")
            self.store.forget(disclosure)
            return Requested(Decision.deny("degraded", decision.claims, detail="audit log unavailable"))
        return Requested(decision, disclosure)

    def _claim(self, ctx: ScanContext) -> Callable[[Decision], Decision]:
        records = self.rt.records

        def claim(checked: Decision) -> Decision:
            if not checked.accepted:
                return records.deny(ctx, checked)
            return records.claim(checked, ctx, record_accept=False)
        return claim

    # -- the citizen ---------------------------------------------------------------------------
    def pending_for(self, citizen_id: str) -> list[Disclosure]:
        """This citizen's requests still waiting for an answer, oldest first."""
        found = []
        for outcome, disclosure in self.store.about(self._subject(citizen_id), self.clock()):
            if outcome == EXPIRED:
                self._audit_expired(disclosure)
            elif disclosure.status == PENDING:
                found.append(disclosure)
        return sorted(found, key=lambda d: d.created_at)

    def answer(self, citizen_id: str, disclosure_id: str, approve: bool) -> Disclosure:
        """Approve or deny; only the citizen the request is about (anyone else: not found)."""
        subject, now = self._subject(citizen_id), self.clock()
        new_status = APPROVED if approve else DENIED
        moved, disclosure = self._step(disclosure_id, now, PENDING, new_status, "subject", subject)
        if not moved:
            raise Conflict(f"This disclosure request is {disclosure.status}; it can no longer be answered.")
        try:
            with self.rt.db.session() as session:
                _audit(session, disclosure, "citizen", citizen_id, f"disclosure_{new_status}")
        except BaseException:
            self.store.undo(disclosure_id, now, new_status, PENDING, "subject", subject)
            raise
        return disclosure

    # -- the requesting terminal -----------------------------------------------------------------
    def read(self, terminal_id: str, disclosure_id: str) -> Release:
        """The request's state; an approved one is released once, with data decrypted now."""
        now = self.clock()
        moved, disclosure = self._step(disclosure_id, now, APPROVED, READ, "terminal_id", terminal_id)
        if not moved:
            if disclosure.status == READ:
                raise Gone("This disclosure was already read; it can be read only once.")
            return Release(disclosure)
        try:
            with self.rt.db.session() as session:
                released = credentials.disclose(session, self.rt.vault, disclosure.subject,
                                                disclosure.credential_types,
                                                datetime.fromtimestamp(now, timezone.utc))
                _audit(session, disclosure, "terminal", terminal_id, "disclosure_read",
                       _read_details(disclosure, released))
        except BaseException:
            self.store.undo(disclosure_id, now, READ, APPROVED, "terminal_id", terminal_id)
            raise
        return Release(replace(disclosure, status=APPROVED), released)

    # -- internals -----------------------------------------------------------------------------
    def _step(self, disclosure_id: str, now: float, expect: str, new_status: str, owner_field: str,
              owner: str) -> tuple[bool, Disclosure]:
        """One store step: whether it moved, and the request; ``NotFound`` for anyone but its owner."""
        outcome, disclosure = self.store.step(disclosure_id, now, expect, new_status, owner_field, owner)
        if disclosure is None:
            raise NotFound("No such disclosure request.")
        if outcome == EXPIRED:
            self._audit_expired(disclosure)
        return outcome == MOVED, disclosure

    def _audit_expired(self, disclosure: Disclosure) -> None:
        try:
            with self.rt.db.session() as session:
                _audit(session, disclosure, "system", "disclosures", "disclosure_expired")
        except (SQLAlchemyError, audit.AuditError):
            log.exception("disclosure expiry not audited", extra={"disclosure": disclosure.id})

    def _subject(self, citizen_id: str) -> str:
        with self.rt.db.session() as session:
            return citizens.get(session, citizen_id).pseudonym
