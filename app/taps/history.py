"""A citizen's uploaded taps and settled metro trips, newest first, for ``/v1/me/history``."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.taps.models import SettledTrip, Tap
from app.taps.record import utc


def taps_for(session: Session, sub: str, *, limit: int) -> list[dict[str, Any]]:
    """The rider's tap records by time on the server's clock, newest first."""
    rows = session.scalars(select(Tap).where(Tap.sub == sub)
                           .order_by(Tap.server_at.desc(), Tap.id.desc()).limit(limit))
    return [_tap(row) for row in rows]


def _tap(row: Tap) -> dict[str, Any]:
    result = row.result or {}
    out: dict[str, Any] = {
        "at": utc(row.server_at), "terminal_id": row.terminal_id, "seq": row.seq,
        "where": {**row.site, "kind": row.kind}, "decision": row.decision, "reason": row.reason,
        "direction": row.direction, "mode": row.mode}
    if row.superseded:
        out["superseded"] = True  # the same scan as its terminal's online decision: not billed
    for name in ("fare", "trip", "admission"):
        if isinstance(result.get(name), dict):
            out[name] = result[name]
    return {key: value for key, value in out.items() if value is not None}


def trips_for(session: Session, sub: str, *, limit: int) -> list[dict[str, Any]]:
    """The rider's settled trips by entry time (exit time when unpaired), newest first."""
    rows = session.scalars(select(SettledTrip).where(SettledTrip.sub == sub)
                           .order_by(SettledTrip.anchor_at.desc(), SettledTrip.id.desc()).limit(limit))
    return [_trip(row) for row in rows]


def _end(terminal_id: str | None, seq: int | None, station: str | None, at: Any,
         tap_id: int | None) -> dict[str, Any] | None:
    if terminal_id is None:
        return None
    end = {"terminal_id": terminal_id, "station": station, "at": utc(at),
           "mode": "offline" if tap_id is not None else "online"}
    if seq is not None:
        end["seq"] = seq
    return end


def _trip(row: SettledTrip) -> dict[str, Any]:
    out: dict[str, Any] = {
        "status": row.status, "at": utc(row.anchor_at),
        "entry": _end(row.entry_terminal_id, row.entry_seq, row.entry_station, row.entered_at,
                      row.entry_tap_id),
        "exit": _end(row.exit_terminal_id, row.exit_seq, row.exit_station, row.exited_at,
                     row.exit_tap_id),
        "fare": {"amount_cents": row.amount_cents, "category": row.category,
                 "from": row.entry_station, "to": row.exit_station},
        "priced_by": row.priced_by, "settled_at": utc(row.settled_at)}
    out["fare"] = {key: value for key, value in out["fare"].items() if value is not None}
    return {key: value for key, value in out.items() if value is not None}
