"""Anomalies in uploaded taps: found when the records are stored, kept, and listed for the admin.

Kinds (each stored once, by a ``key`` naming what it is about):

- ``double_use`` — one ``(iss, jti)`` accepted at two different terminals (once per terminal pair);
- ``used_after_online`` — an offline accept of a code already used online: at another terminal,
  or at the same one without a ``request_id`` showing it was that terminal's own online attempt
  (whose reply it lost). Online uses are tap records with ``mode: online`` and the audit log's
  ``scan`` accepts carrying the ``jti``, looked up ``online_use_window_seconds`` around the tap;
- ``impossible_travel`` — one pseudonym at two placed taps (metro station, bus ``location``) at
  least ``travel_min_distance_m`` apart and faster than ``travel_max_speed_kmh`` between them;
  each new tap is checked against its nearest placed neighbours in time;
- ``stale_trust`` — an accept decided on trust material older than
  ``reader_max_trust_age_seconds`` (or flagged ``stale`` by the reader without an age);
- ``seq_conflict`` — a resent seq with different content (the first version is kept);
- ``fare_mismatch`` — a bus accept whose shown fare is not what the city's bus fare table gives
  for the record's entitlements (the reader's fare is still the one kept).

All times compared are server times (``scanned_at - clock_offset_s``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from app.taps.detect import Found, Rules, detect
from app.taps.ingest import Conflict, StoredTap, insert_ignoring
from app.taps.models import Anomaly
from app.taps.record import rfc3339, utc

__all__ = ["KINDS", "Found", "Rules", "find_and_save", "listing", "to_dict"]

_KEY_CHARS = 255  # tap_anomalies.key
KINDS = ("double_use", "used_after_online", "impossible_travel", "stale_trust", "seq_conflict",
         "fare_mismatch")


def find_and_save(session: Session, new: list[StoredTap], conflicts: list[Conflict], rules: Rules,
                  now: datetime) -> list[dict[str, Any]]:
    """Detect anomalies for this upload's records and store the ones not known yet; returns those."""
    found = detect(session, new, conflicts, rules)
    if not found:
        return []
    table: Table = Anomaly.__table__  # type: ignore[assignment]
    unique: dict[str, Found] = {}
    for item in found:
        unique.setdefault(_fits(item.key), item)
    rows = [{**item.__dict__, "key": key, "found_at": now} for key, item in unique.items()]
    created = session.execute(insert_ignoring(session, table, ["key"])
                              .returning(table.c.id, table.c.key), rows).all()
    ids = {key: anomaly_id for anomaly_id, key in created}
    return [to_dict(item, ids[key], now) for key, item in unique.items() if key in ids]


def _fits(key: str) -> str:
    """The key as stored: a long one (a long ``iss`` and ``jti``) becomes its SHA-256."""
    if len(key) <= _KEY_CHARS:
        return key
    kind = key.split(":", 1)[0]
    return f"{kind}:sha256:{hashlib.sha256(key.encode('utf-8')).hexdigest()}"


def to_dict(item: Found | Anomaly, anomaly_id: int, found_at: datetime) -> dict[str, Any]:
    """The public shape: ``{id, kind, jti?, sub?, terminal_id, seq, detail, at, found_at}``."""
    out: dict[str, Any] = {"id": anomaly_id, "kind": item.kind, "jti": item.jti, "sub": item.sub,
                           "terminal_id": item.terminal_id, "seq": item.seq, "detail": item.detail,
                           "at": rfc3339(item.at), "found_at": rfc3339(found_at)}
    return {key: value for key, value in out.items() if value is not None}


@dataclass(frozen=True)
class Since:
    """Where a listing starts: after an anomaly id, or at a time (``found_at``)."""

    after_id: int | None = None
    found_from: datetime | None = None


def listing(session: Session, since: Since, *, limit: int, kind: str | None = None
            ) -> list[dict[str, Any]]:
    """Anomalies in the order they were found (ascending id), at most ``limit``."""
    query = select(Anomaly)
    if since.after_id is not None:
        query = query.where(Anomaly.id > since.after_id)
    if since.found_from is not None:
        query = query.where(Anomaly.found_at >= since.found_from)
    if kind is not None:
        query = query.where(Anomaly.kind == kind)
    rows = session.scalars(query.order_by(Anomaly.id).limit(limit))
    return [to_dict(row, row.id, utc(row.found_at)) for row in rows]
