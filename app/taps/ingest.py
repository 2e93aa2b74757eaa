"""Storing an uploaded batch: each ``(terminal_id, seq)`` once, whatever the order, split or
number of resends.

One multi-row ``INSERT … ON CONFLICT (terminal_id, seq) DO NOTHING RETURNING id, seq`` per 500
records, sent through the driver with every value prepared once (JSON text, SQLite's datetime
text), stores the new records and names them; the others are duplicates.
A duplicate whose content differs from the stored record (another ``digest``; rows stored
before digest format 2 are compared in their own format, ``TapRecord.same_content``) is still a
duplicate — the first version stays — and is reported as a ``seq_conflict`` anomaly.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping, Sequence

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.registry.terminals import TerminalInfo
from app.taps.models import Tap
from app.taps.record import TapRecord

_CHUNK = 500  # rows per statement: well under SQLite's bound-parameter limit


@dataclass(frozen=True)
class StoredTap:
    """A record this upload stored, with the id the database gave it."""

    id: int
    terminal_id: str
    kind: str
    site: Mapping[str, Any]
    record: TapRecord


@dataclass(frozen=True)
class Conflict:
    """A resent seq whose content differs from what is stored."""

    terminal_id: str
    record: TapRecord


@dataclass
class Stored:
    new: list[StoredTap]
    duplicates: int
    conflicts: list[Conflict]


def check_for_terminal(terminal: TerminalInfo, records: Sequence[TapRecord]) -> None:
    """The rules that depend on the uploading terminal's kind: a metro gate's accepts say which
    way it faces; only metro gates send a direction. Raises ``InvalidInput`` (422, nothing stored)."""
    errors: dict[str, Any] = {}
    for index, record in enumerate(records):
        if terminal.kind == "metro" and record.accepted and record.direction is None:
            errors[str(index)] = {"direction": ["A metro gate's accept needs entry or exit."]}
        elif terminal.kind != "metro" and record.direction is not None:
            errors[str(index)] = {"direction": [f"Only metro gates send a direction; this terminal "
                                                f"is a {terminal.kind} terminal."]}
    if errors:
        raise InvalidInput("Some records are not valid for this terminal; nothing was stored.",
                           errors={"records": errors})  # type: ignore[dict-item]


def insert_ignoring(session: Session, table: Table, conflict_columns: Sequence[str]) -> Any:
    """``INSERT … ON CONFLICT (columns) DO NOTHING`` for the session's database."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    else:
        raise RuntimeError(f"tap storage supports SQLite and PostgreSQL, not {dialect}")
    return insert(table).on_conflict_do_nothing(index_elements=list(conflict_columns))


# Column order of the fast insert (``_insert_sql``); JSON columns are sent pre-serialised.
_COLUMNS = ("terminal_id", "seq", "kind", "site", "iss", "jti", "sub", "scanned_at", "server_at",
            "decision", "reason", "direction", "mode", "ent", "trust_version", "trust_age_s",
            "clock_offset_s", "lat", "lon", "stale", "request_id", "result", "digest",
            "pending_since", "received_at")
_JSON_COLUMNS = frozenset({"site", "ent", "result"})
_dumps = json.JSONEncoder().encode  # what SQLAlchemy's JSON type stores (json.dumps defaults)


def _sqlite_time(moment: datetime) -> str:
    """SQLAlchemy's SQLite DATETIME text (``YYYY-MM-DD HH:MM:SS.ffffff``) of an aware UTC time,
    so rows stored here compare and load exactly like rows stored through the ORM."""
    return moment.isoformat(" ", "microseconds")[:26]


def _same_time(moment: datetime) -> datetime:
    return moment


@lru_cache(maxsize=16)
def _insert_sql(dialect: str, rows: int) -> str:
    """One multi-row ``INSERT … ON CONFLICT (terminal_id, seq) DO NOTHING RETURNING id, seq``
    in the driver's own placeholder style (qmark for sqlite3, format for psycopg)."""
    if dialect == "sqlite":
        one = "(" + ",".join("?" for _ in _COLUMNS) + ")"
    elif dialect == "postgresql":
        one = "(" + ",".join("CAST(%s AS JSON)" if c in _JSON_COLUMNS else "%s" for c in _COLUMNS) + ")"
    else:
        raise RuntimeError(f"tap storage supports SQLite and PostgreSQL, not {dialect}")
    return (f"INSERT INTO taps ({', '.join(_COLUMNS)}) VALUES {','.join([one] * rows)} "
            "ON CONFLICT (terminal_id, seq) DO NOTHING RETURNING id, seq")


def _values(terminal: TerminalInfo, records: Sequence[TapRecord], received_at: datetime,
            time_of: Callable[[datetime], Any]) -> list[Any]:
    """The flat parameter list of ``_insert_sql`` for ``records``, every value made once and
    handed to the driver as is (no per-row type processing)."""
    metro, site, received = terminal.kind == "metro", _dumps(dict(terminal.site)), time_of(received_at)
    values: list[Any] = []
    for r in records:
        server_at = time_of(r.server_at)
        pending = (metro and r.mode == "offline" and r.decision == "accept" and r.sub is not None
                   and r.direction is not None)
        lat, lon = r.location if r.location is not None else (None, None)
        values += (terminal.id, r.seq, terminal.kind, site, r.iss, r.jti, r.sub,
                   time_of(r.scanned_at), server_at, r.decision, r.reason, r.direction, r.mode,
                   _dumps(list(r.ent) if r.ent is not None else None), r.trust_version,
                   r.trust_age_s, r.clock_offset_s, lat, lon, r.stale, r.request_id,
                   r.result_json, r.digest,
                   server_at if pending else None, received)
    return values


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


def store(session: Session, terminal: TerminalInfo, records: Sequence[TapRecord],
          received_at: datetime) -> Stored:
    """Insert the batch in the caller's transaction. The insert is the transaction's first
    statement, so on SQLite it takes the write lock before anything is read.

    The insert goes straight to the DB-API cursor of the session's connection (same
    transaction): a multi-row ``INSERT … ON CONFLICT DO NOTHING RETURNING id, seq`` whose rows
    name exactly the records this statement stored — a seq another upload stored first, even
    one committed while this statement waited for it, is not returned, so it is a duplicate."""
    first: dict[int, TapRecord] = {}
    later: list[TapRecord] = []  # a seq repeated inside the batch: the first one counts
    for record in records:
        if record.seq in first:
            later.append(record)
        else:
            first[record.seq] = record
    dialect = session.get_bind().dialect.name
    time_of = _sqlite_time if dialect == "sqlite" else _same_time
    cursor = session.connection().connection.cursor()
    ids: dict[int, int] = {}
    try:
        for chunk in _chunks(list(first.values())):
            cursor.execute(_insert_sql(dialect, len(chunk)),
                           _values(terminal, chunk, received_at, time_of))
            ids.update({seq: tap_id for tap_id, seq in cursor.fetchall()})
    finally:
        cursor.close()
    new = [StoredTap(ids[seq], terminal.id, terminal.kind, terminal.site, record)
           for seq, record in first.items() if seq in ids]
    resent = [record for seq, record in first.items() if seq not in ids] + later
    conflicts = _conflicts(session, terminal.id, resent) if resent else []
    return Stored(new, len(resent), conflicts)


def _conflicts(session: Session, terminal_id: str, resent: Sequence[TapRecord]) -> list[Conflict]:
    """Resent records whose content differs from the stored version."""
    stored: dict[int, str] = {}
    seqs = sorted({record.seq for record in resent})
    for chunk in _chunks(seqs):
        stored.update(session.execute(select(Tap.seq, Tap.digest).where(
            Tap.terminal_id == terminal_id, Tap.seq.in_(chunk))).all())
    return [Conflict(terminal_id, record) for record in resent
            if record.seq in stored and not record.same_content(stored[record.seq])]
