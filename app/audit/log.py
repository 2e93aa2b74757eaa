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
from typing import Any, Mapping, NamedTuple, Sequence

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


_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           allow_nan=False).encode
_encode_str = json.encoder.encode_basestring  # what ``_encode`` does with a str (ensure_ascii off)


def _unencodable(value: Any) -> Any:
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


def _fast_encoder() -> Any:
    """``_encode`` without its per-call set-up: CPython's C encoder built once, with the same
    arguments ``JSONEncoder.iterencode`` passes it (no circular-reference markers: the values are
    parsed JSON and fresh dicts, never cyclic). ``_encode`` where there is no C encoder."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _encode
    try:
        encoder = make(None, _unencodable, _encode_str, None, ":", ",", True, False, False)
    except TypeError:  # another signature than CPython 3.6-3.13's: keep the reference encoder
        return _encode
    join = "".join
    return lambda value: join(encoder(value, 0))


_encode_fast = _fast_encoder()
_COLUMNS = ("seq", "at", "actor_kind", "actor_id", "action", "subject", "site", "purpose", "reason",
            "details", "prev_hash", "hash", "record_id")
_INSERT = "INSERT INTO audit_log ({}) VALUES ({{}})".format(", ".join(_COLUMNS))
_INSERT_SQL = {"sqlite": _INSERT.format(", ".join("?" * len(_COLUMNS))),
               "postgresql": _INSERT.format(", ".join(["%s"] * len(_COLUMNS)))}
_STORED_CHUNK = 5000  # record ids per lookup (SQLite binds at most 32,766 variables)


def _scalar(value: Any) -> str:
    """``_encode(value)`` for the text columns, without the encoder's per-call overhead."""
    if value is None:
        return "null"
    return _encode_str(value) if type(value) is str else _encode_fast(value)


_SECONDS: dict[int, str] = {}  # epoch second -> "YYYY-MM-DDTHH:MM:SS" (moment_of)
_CACHED_YEARS = range(1970, 2200)  # int(timestamp()) is that second exactly for these years


def moment_of(at: datetime) -> tuple[datetime, str]:
    """``(at in UTC, timestamp(at))``. The text is built from the second's (cached) and the
    microseconds (``isoformat``, for years outside ``_CACHED_YEARS``), the same as ``timestamp``'s
    ``strftime`` — a test compares them — in a third of its time: this runs once per record."""
    moment = at if at.tzinfo is timezone.utc else utc(at)
    if moment.year not in _CACHED_YEARS:
        if moment.year < 1000:  # strftime's %Y does not pad such years everywhere
            return moment, timestamp(moment)
        return moment, moment.isoformat(timespec="microseconds")[:26] + "Z"
    second = int(moment.timestamp())
    prefix = _SECONDS.get(second)
    if prefix is None:
        if len(_SECONDS) >= 4096:
            _SECONDS.clear()
        prefix = _SECONDS[second] = moment.isoformat(timespec="seconds")[:19]
    return moment, "%s.%06dZ" % (prefix, moment.microsecond)


class Encoded(NamedTuple):
    """One entry for ``append_encoded``: its fields as ``append_batch`` takes them, with ``at`` in
    UTC and its ``timestamp`` text (``moment_of``), and ``site``/``details`` already canonical JSON
    text (``canonical``) — the text that is hashed and stored."""

    record_id: str
    at: datetime
    stamp: str
    actor_kind: str
    actor_id: str
    action: str
    subject: str | None
    site: str | None
    purpose: str | None
    reason: str | None
    details: str


def canonical(value: Any) -> str:
    """``canonical_json(value)``, faster (``_encode_fast``): for ``Encoded.site``/``details``."""
    return _encode_fast(value)  # type: ignore[no-any-return]


def encode_entry(entry: Mapping[str, Any]) -> Encoded:
    """An ``append_batch`` entry (a mapping) as ``Encoded``."""
    moment, stamp = moment_of(entry["at"])
    site = entry.get("site")
    return Encoded(str(entry["record_id"]), moment, stamp, entry["actor_kind"], entry["actor_id"],
                   entry["action"], entry.get("subject"), None if site is None else _encode_fast(site),
                   entry.get("purpose"), entry.get("reason"), _encode_fast(entry.get("details") or {}))


def _stored_ids(cursor: Any, dialect: str, record_ids: list[str]) -> set[str]:
    """Those of ``record_ids`` already in ``audit_log`` (unique index ``ux_audit_log_record_id``)."""
    stored: set[str] = set()
    for start in range(0, len(record_ids), _STORED_CHUNK):
        chunk = record_ids[start:start + _STORED_CHUNK]
        if dialect == "sqlite":
            cursor.execute("SELECT record_id FROM audit_log WHERE record_id IN ({})"
                           .format(",".join("?" * len(chunk))), chunk)
        else:
            cursor.execute("SELECT record_id FROM audit_log WHERE record_id = ANY(%s)", (chunk,))
        stored.update(row[0] for row in cursor.fetchall())
    return stored


def append_batch(session: Session, entries: Sequence[Mapping[str, Any]],
                 hashes: list[str] | None = None) -> tuple[int, int] | None:
    """Append entries that each carry a ``record_id`` (plus ``at``, actor, action … as ``append``
    takes them; ``site`` and ``details`` plain JSON values), skipping ids already stored, in the
    caller's transaction: the head is locked once, so the batch takes one contiguous ``seq``
    range. Returns ``(first, last)`` seq, or None when every record was stored before. Given
    ``hashes``, the new rows' entry hashes are appended to it in seq order (the record writer
    closes a leaf over them without reading them back). See ``append_encoded``."""
    return append_encoded(session, [encode_entry(entry) for entry in entries], hashes)


def append_encoded(session: Session, entries: Sequence[Encoded],
                   hashes: list[str] | None = None) -> tuple[int, int] | None:
    """``append_batch`` of entries already encoded (the record writer builds them so).

    Each entry's fields are encoded once: the canonical JSON that is hashed is also what is
    stored, so the hash recomputed from the row (``verify_chain``) is the same.

    The rows go through the driver's own cursor (``executemany`` of one prepared INSERT, in the
    session's transaction), not SQLAlchemy's statement machinery: this is the record writer's
    inner loop, and binding 1,000 rows through SQLAlchemy cost more than SQLite storing them.
    Values are bound as the ORM would bind them: ``at`` in UTC (SQLite: SQLAlchemy's DATETIME text
    ``YYYY-MM-DD HH:MM:SS.ffffff``), ``site``/``details`` as their canonical JSON text.
    """
    head = AuditHead.__table__
    locked = session.execute(update(head).where(head.c.id == HEAD_ID).values(seq=head.c.seq)
                             .returning(head.c.seq, head.c.hash)).one_or_none()
    if locked is None:
        raise AuditError("audit_head row is missing; run the database migrations")
    last, prev_hash = locked
    connection = session.connection()
    dialect = connection.dialect.name
    if dialect not in _INSERT_SQL:
        raise AuditError(f"append_batch supports SQLite and PostgreSQL, not {dialect}")
    sqlite = dialect == "sqlite"
    if not sqlite:
        from psycopg.types.json import Json

        def as_json(text: str | None) -> Any:
            return None if text is None else Json(text, dumps=_verbatim)
    wanted = {entry.record_id: entry for entry in entries}  # a repeat within the batch too
    cursor = connection.connection.cursor()
    try:
        stored = _stored_ids(cursor, dialect, list(wanted))
        rows: list[tuple[Any, ...]] = []
        first = last + 1
        domain = _encode(_HASH_DOMAIN)
        kinds, sha256, scalar, text = ACTOR_KINDS, hashlib.sha256, _scalar, _encode_str
        for record_id, entry in wanted.items():
            if record_id in stored:
                continue
            (_, moment, stamp, actor_kind, actor_id, action, subject, site, purpose, reason,
             details) = entry
            if actor_kind not in kinds:
                raise ValueError(f"unknown actor kind {actor_kind!r}")
            last += 1
            # canonical_json([...]) of entry_hash, from the parts already encoded
            hashed = ",".join((domain, str(last), '"' + stamp + '"', scalar(actor_kind), scalar(actor_id),
                               scalar(action), scalar(subject), site or "null", scalar(purpose),
                               scalar(reason), details, '"' + prev_hash + '"',
                               '["record_id",' + text(record_id) + "]"))
            digest = sha256(f"[{hashed}]".encode("utf-8")).hexdigest()
            if sqlite:  # SQLAlchemy's DATETIME storage format for SQLite, UTC wall time
                rows.append((last, stamp[:10] + " " + stamp[11:26], actor_kind, actor_id, action, subject,
                             site, purpose, reason, details, prev_hash, digest, record_id))
            else:
                rows.append((last, moment, actor_kind, actor_id, action, subject, as_json(site),
                             purpose, reason, as_json(details), prev_hash, digest, record_id))
            prev_hash = digest
        if not rows:
            return None
        cursor.executemany(_INSERT_SQL[dialect], rows)
        if hashes is not None:
            hashes.extend(row[11] for row in rows)
    finally:
        cursor.close()
    session.execute(update(head).where(head.c.id == HEAD_ID).values(seq=last, hash=prev_hash))
    return first, last


def _verbatim(text: str) -> str:
    return text


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
