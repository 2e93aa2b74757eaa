"""Appending to and checking the hash-chained audit log.

Each entry's ``hash`` is SHA-256 over a canonical JSON encoding of its sequence number, time,
actor, action, subject, site, purpose, reason, details and the previous entry's hash, so editing,
deleting or reordering any row breaks the chain from that row on. Appends serialize on the single
``audit_head`` row: ``UPDATE audit_head SET seq = seq + 1`` is the first statement, which takes
the row lock (PostgreSQL) or the database write lock (SQLite) until the caller's transaction ends,
so workers and threads can neither skip a number nor fork the chain, and a rolled-back append
leaves no trace.

Scans arrive in batches from the scan-record writer (``app.records.writer``): ``append_batch``
locks the head once per batch, so one batch = one transaction = one contiguous ``seq`` range.
Such entries carry the record's id (``record_id``, unique, also hashed), so a record drained twice
is stored once.

Callers must never pass personal data: subjects are pseudonyms, details name credential types and
ids, decisions and reasons, never names, ID numbers or credential numbers.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from sqlalchemy import JSON, Column, MetaData, Table, TypeDecorator, insert, select, update
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
    """SHA-256 (hex) of the canonical encoding of an entry's fields (see ``_FIELDS``), and of its
    ``record_id`` when it has one (entries without one hash as they always did)."""
    encoded = [_HASH_DOMAIN] + [timestamp(values["at"]) if name == "at" else values[name]
                                for name in _FIELDS]
    record_id = values.get("record_id")
    if record_id is not None:
        encoded.append(["record_id", record_id])
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


class _Encoded(TypeDecorator[str]):
    """A JSON column bound from text already encoded (canonically, by ``append_batch``), so each
    value is encoded once, for its hash and its row alike."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Any) -> Any:
        if dialect.name == "postgresql":
            from psycopg.types.json import Json

            return lambda text: None if text is None else Json(text, dumps=lambda encoded: encoded)
        return None  # SQLite keeps JSON as text


_BATCH_ROWS = Table("audit_log", MetaData(), *(
    Column(column.name, _Encoded() if column.name in ("site", "details") else column.type)
    for column in AuditEntry.__table__.c))
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           allow_nan=False).encode


def append_batch(session: Session, entries: Sequence[Mapping[str, Any]]) -> tuple[int, int] | None:
    """Append entries that each carry a ``record_id`` (plus ``at``, actor, action … as ``append``
    takes them; ``site`` and ``details`` plain JSON values), skipping ids already stored, in the
    caller's transaction: the head is locked once, so the batch takes one contiguous ``seq``
    range. Returns ``(first, last)`` seq, or None when every record was stored before.

    Each entry's fields are encoded once: the canonical JSON that is hashed is also what is
    stored, so the hash recomputed from the row (``verify_chain``) is the same.
    """
    head, table = AuditHead.__table__, AuditEntry.__table__
    locked = session.execute(update(head).where(head.c.id == HEAD_ID).values(seq=head.c.seq)
                             .returning(head.c.seq, head.c.hash)).one_or_none()
    if locked is None:
        raise AuditError("audit_head row is missing; run the database migrations")
    last, prev_hash = locked
    wanted = {str(entry["record_id"]): entry for entry in entries}  # a repeat within the batch too
    stored = set(session.scalars(select(table.c.record_id).where(table.c.record_id.in_(list(wanted)))))
    rows: list[dict[str, Any]] = []
    first = last + 1
    domain = _encode(_HASH_DOMAIN)
    for record_id, entry in wanted.items():
        if record_id in stored:
            continue
        if entry["actor_kind"] not in ACTOR_KINDS:
            raise ValueError(f"unknown actor kind {entry['actor_kind']!r}")
        last += 1
        site, purpose = entry.get("site"), entry.get("purpose")
        site_json = None if site is None else _encode(site)
        details_json = _encode(entry.get("details") or {})
        values = {"seq": last, "at": entry["at"], "actor_kind": entry["actor_kind"],
                  "actor_id": entry["actor_id"], "action": entry["action"],
                  "subject": entry.get("subject"), "site": site_json, "purpose": purpose,
                  "reason": entry.get("reason"), "details": details_json, "prev_hash": prev_hash,
                  "record_id": record_id}
        # canonical_json([...]) of entry_hash, from the parts already encoded
        hashed = ",".join((domain, str(last), _encode(timestamp(entry["at"])), _encode(values["actor_kind"]),
                           _encode(values["actor_id"]), _encode(values["action"]), _encode(values["subject"]),
                           site_json or "null", _encode(purpose), _encode(values["reason"]), details_json,
                           _encode(prev_hash), '["record_id",' + _encode(record_id) + "]"))
        prev_hash = values["hash"] = hashlib.sha256(f"[{hashed}]".encode("utf-8")).hexdigest()
        rows.append(values)
    if not rows:
        return None
    session.execute(insert(_BATCH_ROWS), rows)
    session.execute(update(head).where(head.c.id == HEAD_ID).values(seq=last, hash=prev_hash))
    return first, last


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
