"""Appending to and checking the hash-chained audit log.

Each entry's ``hash`` is SHA-256 over a canonical JSON encoding of its sequence number, time,
actor, action, subject, site, purpose, reason, details and the previous entry's hash, so editing,
deleting or reordering any row breaks the chain from that row on. Appends serialize on the single
``audit_head`` row: ``UPDATE audit_head SET seq = seq + 1`` is the first statement, which takes
the row lock (PostgreSQL) or the database write lock (SQLite) until the caller's transaction ends,
so workers and threads can neither skip a number nor fork the chain, and a rolled-back append
leaves no trace.

Callers must never pass personal data: subjects are pseudonyms, details name credential types and
ids, decisions and reasons, never names, ID numbers or credential numbers.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any, Mapping

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from app.audit.models import AuditEntry, AuditHead

GENESIS_HASH = "0" * 64
HEAD_ID = 1
ACTOR_KINDS = frozenset({"terminal", "citizen", "admin", "issuer", "system"})
_HASH_DOMAIN = "citycode.audit.v1"
_FIELDS = ("seq", "at", "actor_kind", "actor_id", "action", "subject", "site", "purpose",
           "reason", "details", "prev_hash")


class AuditError(Exception):
    """The audit log cannot be appended to (e.g. the head row is missing: run migrations)."""


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 text, no NaN: one encoding per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def _plain(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What the database will hand back for ``value`` (a JSON round trip), so the hash computed
    now equals the one recomputed later."""
    return None if value is None else json.loads(canonical_json(dict(value)))  # type: ignore[no-any-return]


def utc(moment: datetime) -> datetime:
    """Aware UTC; SQLite hands back naive datetimes, which were stored as UTC."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def timestamp(moment: datetime) -> str:
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(values: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical encoding of an entry's fields (see ``_FIELDS``)."""
    encoded = [_HASH_DOMAIN] + [timestamp(values["at"]) if name == "at" else values[name]
                                for name in _FIELDS]
    return hashlib.sha256(canonical_json(encoded).encode("utf-8")).hexdigest()


def append(session: Session, *, actor_kind: str, actor_id: str, action: str,
           subject: str | None = None, site: Mapping[str, Any] | None = None,
           purpose: str | None = None, reason: str | None = None,
           details: Mapping[str, Any] | None = None) -> AuditEntry:
    """Append one entry inside the caller's transaction; it is durable when the caller commits.

    The head row stays locked until then, so keep the rest of the transaction short.
    """
    if actor_kind not in ACTOR_KINDS:
        raise ValueError(f"unknown actor kind {actor_kind!r}")
    if not action or len(action) > 32 or (purpose is not None and len(purpose) > 200):
        raise ValueError("action must be 1..32 characters, purpose at most 200")
    site_plain, details_plain = _plain(site), _plain(details) or {}
    # Core statements, not the ORM unit of work: this runs once per scan, on the hot path.
    head, table = AuditHead.__table__, AuditEntry.__table__
    locked = session.execute(update(head).where(head.c.id == HEAD_ID).values(seq=head.c.seq + 1)
                             .returning(head.c.seq, head.c.hash)).one_or_none()
    if locked is None:
        raise AuditError("audit_head row is missing; run the database migrations")
    seq, prev_hash = locked
    values: dict[str, Any] = {
        "seq": seq, "at": datetime.now(timezone.utc), "actor_kind": actor_kind,
        "actor_id": actor_id, "action": action, "subject": subject, "site": site_plain,
        "purpose": purpose, "reason": reason, "details": details_plain, "prev_hash": prev_hash}
    digest = entry_hash(values)
    session.execute(insert(table).values(**values, hash=digest))
    session.execute(update(head).where(head.c.id == HEAD_ID).values(hash=digest))
    return AuditEntry(**values, hash=digest)


def verify_chain(session: Session, batch_size: int = 1000) -> tuple[bool, int | None]:
    """Recompute every hash in order. ``(True, None)`` when intact, else ``(False, seq)`` with the
    first sequence number that is wrong: an edited or reordered row, or a missing one (a gap, or
    rows cut off the end, which the head still counts)."""
    table = AuditEntry.__table__
    rows = session.execute(select(*table.c).order_by(table.c.seq)
                           .execution_options(yield_per=batch_size))
    expected, prev_hash = 1, GENESIS_HASH
    try:  # rows stream from a server-side cursor (PostgreSQL): close it on an early return
        for row in rows:
            values = row._mapping
            if values["seq"] != expected:
                return False, min(expected, values["seq"])
            if values["prev_hash"] != prev_hash or entry_hash(values) != values["hash"]:
                return False, expected
            expected, prev_hash = expected + 1, values["hash"]
    finally:
        rows.close()
    head = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == HEAD_ID)).one_or_none()
    if head is None or head.seq != expected - 1 or head.hash != prev_hash:
        return False, expected
    return True, None


def entries_for(session: Session, subject: str, *, limit: int, before: int | None = None) -> list[AuditEntry]:
    """The entries about one citizen (by pseudonym), newest first, ``seq < before`` if given."""
    query = select(AuditEntry).where(AuditEntry.subject == subject)
    if before is not None:
        query = query.where(AuditEntry.seq < before)
    return list(session.scalars(query.order_by(AuditEntry.seq.desc()).limit(limit)))
