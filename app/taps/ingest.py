"""Storing an uploaded batch: each ``(terminal_id, seq)`` once, whatever the order, split or
number of resends.

One ``INSERT … ON CONFLICT (terminal_id, seq) DO NOTHING RETURNING id, seq`` (SQLite's and
PostgreSQL's dialect insert) stores the new records and names them; the others are duplicates.
A duplicate whose content differs from the stored record (another ``digest``) is still a
duplicate — the first version stays — and is reported as a ``seq_conflict`` anomaly.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

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


def _row(terminal: TerminalInfo, record: TapRecord, received_at: datetime) -> dict[str, Any]:
    pending = (terminal.kind == "metro" and record.mode == "offline" and record.accepted
               and record.sub is not None and record.direction is not None)
    lat, lon = record.location if record.location is not None else (None, None)
    return {
        "terminal_id": terminal.id, "seq": record.seq, "kind": terminal.kind,
        "site": dict(terminal.site), "iss": record.iss, "jti": record.jti, "sub": record.sub,
        "scanned_at": record.scanned_at, "server_at": record.server_at,
        "decision": record.decision, "reason": record.reason, "direction": record.direction,
        "mode": record.mode, "ent": list(record.ent) if record.ent is not None else None,
        "trust_version": record.trust_version, "trust_age_s": record.trust_age_s,
        "clock_offset_s": record.clock_offset_s, "lat": lat, "lon": lon, "stale": record.stale,
        "request_id": record.request_id,
        "result": dict(record.result) if record.result is not None else None,
        "digest": record.digest, "pending_since": record.server_at if pending else None,
        "received_at": received_at}


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


def store(session: Session, terminal: TerminalInfo, records: Sequence[TapRecord],
          received_at: datetime) -> Stored:
    """Insert the batch in the caller's transaction. The insert is the transaction's first
    statement, so on SQLite it takes the write lock before anything is read."""
    first: dict[int, TapRecord] = {}
    later: list[TapRecord] = []  # a seq repeated inside the batch: the first one counts
    for record in records:
        if record.seq in first:
            later.append(record)
        else:
            first[record.seq] = record
    table: Table = Tap.__table__  # type: ignore[assignment]
    statement = insert_ignoring(session, table, ["terminal_id", "seq"]).returning(table.c.id, table.c.seq)
    ids: dict[int, int] = {}
    for chunk in _chunks(list(first.values())):
        rows = session.execute(statement, [_row(terminal, r, received_at) for r in chunk]).all()
        ids.update({seq: tap_id for tap_id, seq in rows})
    new = [StoredTap(ids[seq], terminal.id, terminal.kind, terminal.site, record)
           for seq, record in first.items() if seq in ids]
    resent = [record for seq, record in first.items() if seq not in ids] + later
    conflicts = _conflicts(session, terminal.id, resent)
    return Stored(new, len(resent), conflicts)


def _conflicts(session: Session, terminal_id: str, resent: Sequence[TapRecord]) -> list[Conflict]:
    """Resent records whose content differs from the stored version."""
    stored: dict[int, str] = {}
    seqs = sorted({record.seq for record in resent})
    for chunk in _chunks(seqs):
        stored.update(session.execute(select(Tap.seq, Tap.digest).where(
            Tap.terminal_id == terminal_id, Tap.seq.in_(chunk))).all())
    return [Conflict(terminal_id, record) for record in resent
            if stored.get(record.seq, record.digest) != record.digest]
