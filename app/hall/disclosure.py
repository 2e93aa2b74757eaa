"""Consent-based disclosure (扫码亮证): an officer's scan asks, the citizen approves, the officer
reads once.

Only hall terminals ask, for known credential types, the fields of them they need (named, so the
citizen approves exactly what will leave: the holder's name and ID number only when asked for) and
a stated purpose; only the citizen the request is about answers; only the terminal that asked
reads, once, and receives exactly the approved fields. Suspending the citizen withdraws what is
pending or approved but unread. Requests live in Redis
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
from app.hall.disclosure_store import (APPROVED, DENIED, EXPIRED, MOVED, PENDING, READ, WITHDRAWN,
                                       Disclosure, DisclosureStore)
from app.registry import citizens, credentials
from app.registry.credential_types import CREDENTIAL_TYPES, check_fields
from app.scenes.base import ScanContext

if TYPE_CHECKING:
    from app.db import Database
    from app.records.sink import ScanRecords
    from app.registry.pii import PiiVault
    from app.registry.terminals import TerminalInfo
    from app.scenes.service import ScanService
    from app.verification.online import OnlineVerifier

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


def check_request(credential_types: Sequence[str], purpose: str, fields: Sequence[str] | None = None
                  ) -> tuple[tuple[str, ...], str, tuple[str, ...]]:
    """1–5 known credential types (duplicates dropped), a purpose of 1–200 characters, and the
    fields asked for (``app.registry.credential_types.check_fields``: without ``fields``, each
    type's default fields; with them, known fields of the requested types only, each type named)."""
    types = tuple(dict.fromkeys(credential_types))
    errors: dict[str, list[str]] = {}
    unknown = sorted(t for t in types if t not in CREDENTIAL_TYPES)
    if unknown or not 1 <= len(types) <= MAX_TYPES:
        errors["credential_types"] = ([f"unknown type: {t}" for t in unknown]
                                      or [f"name 1 to {MAX_TYPES} credential types"])
    purpose = purpose.strip()
    if not 1 <= len(purpose) <= MAX_PURPOSE:
        errors["purpose"] = [f"the purpose must be 1 to {MAX_PURPOSE} characters"]
    wanted: tuple[str, ...] = ()
    if "credential_types" not in errors:
        wanted, problems = check_fields(types, fields)
        if problems:
            errors["fields"] = problems
    if errors:
        raise InvalidInput("The disclosure request is not valid.", errors)
    return types, purpose, wanted


def _read_details(disclosure: Disclosure, released: list[dict[str, Any]]) -> dict[str, Any]:
    """What was read, by credential id, type and the names of the fields that left (the holder's as
    ``holder.name`` / ``holder.id_number``): never the values."""
    disclosed = {c["type"] for c in released}
    return {**disclosure.audit_details(),
            "disclosed": [{"type": c["type"], "credential_id": c["credential_id"],
                           "fields": _released_fields(c)} for c in released],
            "withheld_types": [t for t in disclosure.credential_types if t not in disclosed]}


def _released_fields(item: dict[str, Any]) -> list[str]:
    names = [name for name in item if name not in ("credential_id", "type", "holder")]
    names += [f"holder.{name}" for name in item.get("holder", {})]
    return names


def _audit(session: Session, disclosure: Disclosure, actor_kind: str, actor_id: str, action: str,
           details: dict[str, Any] | None = None, reason: str | None = None) -> None:
    audit.append(session, actor_kind=actor_kind, actor_id=actor_id, action=action,
                 subject=disclosure.subject, site=disclosure.site, purpose=disclosure.purpose,
                 reason=reason, details=disclosure.audit_details() if details is None else details)


class DisclosureDesk:
    """Requests, answers and the one read; one per process (``app.compose``). The officer's scan
    goes through ``scans`` (``verifier`` checks, ``records`` records a deny); requests live in
    ``store`` for ``ttl_seconds``; ``db`` holds the audit log and credentials, ``vault`` decrypts
    them. ``clock`` is injectable."""

    def __init__(self, scans: "ScanService", verifier: "OnlineVerifier", records: "ScanRecords",
                 store: DisclosureStore, db: "Database", vault: "PiiVault", *, ttl_seconds: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.scans, self.verifier, self.records = scans, verifier, records
        self.store, self.db, self.vault = store, db, vault
        self.ttl_seconds, self.clock = ttl_seconds, clock

    # -- the officer's scan ------------------------------------------------------------------
    def request(self, terminal: "TerminalInfo", code: str, credential_types: Sequence[str],
                purpose: str, fields: Sequence[str] | None = None) -> Requested:
        """Verify and consume the code; on accept, open a pending request for the citizen for
        ``fields`` of ``credential_types`` (see ``check_request``)."""
        if terminal.kind != "hall":
            raise PermissionDenied("Only service-hall terminals may request a disclosure.")
        types, purpose, wanted = check_request(credential_types, purpose, fields)
        now = self.clock()
        ctx = ScanContext(terminal.id, terminal.kind, terminal.site, None, now)
        # A deny is recorded as a scan (its script or one XADD); an accept's record is the
        # synchronous `disclosure_requested` audit entry below, written before anything is shown.
        decision = self.scans.fresh(ctx, code, self.verifier.check(code), self._claim(ctx))
        if not decision.accepted or decision.claims is None:
            return Requested(decision)
        disclosure = Disclosure("dsc_" + secrets.token_urlsafe(16), decision.claims.sub, terminal.id,
                                where(terminal.kind, terminal.site), types, purpose, now,
                                now + self.ttl_seconds, PENDING, wanted)
        try:
            self.store.create(disclosure, self.ttl_seconds)
        except Unavailable:
            denied = Decision.deny("degraded", decision.claims, detail="disclosure store unavailable")
            self.records.deny(ctx, denied)  # Redis just failed: counted if it cannot record
            self.scans.observe(ctx, denied)
            return Requested(denied)
        try:
            with self.db.session() as session:
                _audit(session, disclosure, "terminal", terminal.id, "disclosure_requested",
                       {**disclosure.audit_details(), "decision": decision.decision,
                        "jti": decision.claims.jti}, reason=decision.reason)
        except (SQLAlchemyError, audit.AuditError):
            log.exception("disclosure request not audited; withdrawn")
            self.store.forget(disclosure)
            return Requested(Decision.deny("degraded", decision.claims, detail="audit log unavailable"))
        return Requested(decision, disclosure)

    def _claim(self, ctx: ScanContext) -> Callable[[Decision], Decision]:
        records = self.records

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
            with self.db.session() as session:
                _audit(session, disclosure, "citizen", citizen_id, f"disclosure_{new_status}")
        except BaseException:
            self.store.undo(disclosure_id, now, new_status, PENDING, "subject", subject)
            raise
        return disclosure

    # -- the requesting terminal -----------------------------------------------------------------
    def read(self, terminal_id: str, disclosure_id: str) -> Release:
        """The request's state; an approved one is released once, with data decrypted now: exactly
        the fields the citizen approved. If the citizen was suspended since, the request is
        withdrawn instead and nothing leaves."""
        now = self.clock()
        moved, disclosure = self._step(disclosure_id, now, APPROVED, READ, "terminal_id", terminal_id)
        if not moved:
            if disclosure.status == READ:
                raise Gone("This disclosure was already read; it can be read only once.")
            return Release(disclosure)
        try:
            with self.db.session() as session:
                released = credentials.disclose(session, self.vault, disclosure.subject,
                                                disclosure.fields, datetime.fromtimestamp(now, timezone.utc))
                if released is None:
                    _audit(session, disclosure, "system", "disclosures", "disclosure_withdrawn",
                           reason="citizen_suspended")
                else:
                    _audit(session, disclosure, "terminal", terminal_id, "disclosure_read",
                           _read_details(disclosure, released))
        except BaseException:
            self.store.undo(disclosure_id, now, READ, APPROVED, "terminal_id", terminal_id)
            raise
        if released is None:  # best effort: if this step fails the request stays read (410), unreleased
            self.store.undo(disclosure_id, now, READ, WITHDRAWN, "terminal_id", terminal_id)
            return Release(replace(disclosure, status=WITHDRAWN))
        return Release(replace(disclosure, status=APPROVED), released)

    # -- suspension ------------------------------------------------------------------------------
    def withdraw_for(self, citizen_id: str, *, actor_kind: str, actor_id: str) -> int:
        """Withdraw the citizen's pending and approved-but-unread requests (on suspension), each
        audited as ``actor_kind``/``actor_id``'s act; how many were withdrawn. Never raises for
        Redis or the audit log: a withdrawal releases nothing, and a read re-checks the citizen
        and releases nothing while they are suspended, whatever this managed to do."""
        subject, now = self._subject(citizen_id), self.clock()
        try:
            changed = self.store.withdraw_all(subject, now)
        except Unavailable:
            log.warning("disclosure requests not withdrawn now; reads will refuse them")
            return 0
        withdrawn = [disclosure for outcome, disclosure in changed if outcome == MOVED]
        for outcome, disclosure in changed:
            if outcome == EXPIRED:
                self._audit_expired(disclosure)
        if withdrawn:
            try:
                with self.db.session() as session:
                    for disclosure in withdrawn:
                        _audit(session, disclosure, actor_kind, actor_id, "disclosure_withdrawn",
                               reason="citizen_suspended")
            except (SQLAlchemyError, audit.AuditError):
                log.exception("disclosure withdrawals not audited (they stand)")
        return len(withdrawn)

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
            with self.db.session() as session:
                _audit(session, disclosure, "system", "disclosures", "disclosure_expired")
        except (SQLAlchemyError, audit.AuditError):
            log.exception("disclosure expiry not audited", extra={"disclosure": disclosure.id})

    def _subject(self, citizen_id: str) -> str:
        with self.db.session() as session:
            return citizens.get(session, citizen_id).pseudonym
