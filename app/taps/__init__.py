"""Offline readers' tap uploads: store each record once, find anomalies, settle metro trips.

``TapDesk.upload`` runs one transaction per batch — store (``ingest``), flag offline accepts their
own terminal had decided online (``supersede``), detect and keep anomalies (``anomalies``), settle the riders it touches plus overdue ones (``settlement``) — and answers
only after it committed; then it brings the online trip state in Redis up to date
(``live_trips``). Domain code only: the HTTP view is ``app.api.taps``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Sequence

import redis
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.registry.terminals import TerminalInfo
from app.taps import anomalies, supersede
from app.taps.detect import Rules
from app.taps.ingest import check_for_terminal, store
from app.taps.live_trips import LiveTrips
from app.taps.models import SettledTrip, Tap
from app.taps.record import TapRecord
from app.taps.settlement import Settlement, Tariff
from app.taps.validate import MAX_RECORDS

if TYPE_CHECKING:
    from app.config import Settings
    from app.db import Database

__all__ = ["SettleReport", "TapDesk", "TapRecord", "Upload", "settle_pending"]

SWEEP_AT_UPLOAD = 200  # overdue riders settled by each upload, at most
_PG_LOCK = 0x7A9_0005  # advisory lock: one upload detects and settles at a time (PostgreSQL)


@dataclass
class Upload:
    stored: int
    duplicates: int
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    superseded: int = 0  # of the stored: offline accepts their terminal had decided online

    def to_dict(self) -> dict[str, Any]:
        return {"stored": self.stored, "duplicates": self.duplicates, "anomalies": self.anomalies,
                "superseded": self.superseded}


def _serialize(session: Session, *, wrote: bool) -> None:
    """Make concurrent uploads detect and settle one after another, so two readers' records of
    one code or one rider always meet. PostgreSQL: a transaction-scoped advisory lock. SQLite:
    the write lock, held from the transaction's first write (``BEGIN IMMEDIATE`` when nothing
    was written yet, so a read is never followed by a refused lock upgrade)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
    elif dialect == "sqlite" and not wrote:
        session.execute(text("BEGIN IMMEDIATE"))


@dataclass(frozen=True)
class SettleReport:
    riders: int  # riders whose pending taps were looked at
    pending_taps: int  # offline metro taps still waiting (open trips)
    settled_trips: int  # rows in settled_trips

    def to_dict(self) -> dict[str, int]:
        return {"riders": self.riders, "pending_taps": self.pending_taps,
                "settled_trips": self.settled_trips}


def settle_pending(db: "Database", settlement: Settlement, now: float, *, due_only: bool = False,
                   batch: int = 200, window: timedelta = timedelta(seconds=900)) -> SettleReport:
    """Settle every rider with a pending offline metro tap, ``batch`` riders per transaction:
    pairs closed by online exits since, and (``due_only`` settles just these) entries and exits
    older than the trip limit. First supersedes the fallback accepts of the last
    ``supersede.RECHECK`` whose online scan reached the audit log after their upload (``window``:
    the online-use window). Needs only the database: ``citycode settle`` runs it."""
    moment, after, riders = _moment(now), None, 0
    with db.session() as session:
        _serialize(session, wrote=False)
        _supersede(session, settlement, moment - supersede.RECHECK, window, moment)
    while True:
        with db.session() as session:
            _serialize(session, wrote=False)
            subs = settlement.sweep(session, moment, due_only=due_only, after_sub=after, limit=batch)
        riders += len(subs)
        if len(subs) < batch:
            break
        after = subs[-1]
    with db.session() as session:
        pending = session.scalar(select(func.count()).select_from(Tap).where(
            Tap.pending_since.is_not(None)))
        trips = session.scalar(select(func.count()).select_from(SettledTrip))
    return SettleReport(riders, pending or 0, trips or 0)


def _supersede(session: Session, settlement: Settlement, since: datetime, window: timedelta,
               moment: datetime) -> set[int]:
    """Mark superseded taps (``supersede.mark``) and re-settle the metro riders they touch; the
    ids marked."""
    marked = supersede.mark(session, since, window)
    spans: dict[str, tuple[datetime, datetime]] = {}
    for tap in marked:
        if tap.kind == "metro" and tap.sub is not None:
            lo, hi = spans.get(tap.sub, (tap.at, tap.at))
            spans[tap.sub] = (min(lo, tap.at), max(hi, tap.at))
    settlement.reconcile(session, spans, moment)
    return {tap.tap_id for tap in marked}


def _moment(now: float) -> datetime:
    return datetime.fromtimestamp(now, timezone.utc)


class TapDesk:
    """Tap uploads, anomalies and settlement over one database and Redis."""

    def __init__(self, db: "Database", client: "redis.Redis[bytes]", settings: "Settings",
                 tariff: Tariff | None = None) -> None:
        self.db = db
        self.rules = Rules.from_settings(settings)
        self.settlement = Settlement(tariff or Tariff.from_city())
        self.live = LiveTrips(client, expiry_seconds=int(self.settlement.tariff.expiry.total_seconds()))

    def upload(self, terminal: TerminalInfo, records: Sequence[TapRecord], now: float) -> Upload:
        """Store one batch from ``terminal``. Raises ``InvalidInput`` (nothing stored) for
        records its kind cannot send; returns after the transaction committed."""
        check_for_terminal(terminal, records)
        moment = _moment(now)
        with self.db.session() as session:
            stored = store(session, terminal, records, moment)
            _serialize(session, wrote=True)
            marked = _supersede(session, self.settlement, moment - supersede.LATE,
                                self.rules.online_window, moment)
            found = anomalies.find_and_save(session, stored.new, stored.conflicts, self.rules, moment)
            kept = [tap for tap in stored.new if tap.id not in marked]
            steps = self.settlement.after_upload(session, kept, moment)
            self.settlement.sweep(session, moment, due_only=True, limit=SWEEP_AT_UPLOAD)
        self.live.apply(steps, now)
        return Upload(len(stored.new), stored.duplicates, found,
                      sum(1 for tap in stored.new if tap.id in marked))

    def settle(self, now: float, *, due_only: bool = False) -> "SettleReport":
        """Settle pending offline metro taps now (see ``settle_pending``)."""
        return settle_pending(self.db, self.settlement, now, due_only=due_only,
                              window=self.rules.online_window)

    def anomalies(self, since: anomalies.Since, *, limit: int, kind: str | None = None
                  ) -> list[dict[str, Any]]:
        with self.db.session() as session:
            return anomalies.listing(session, since, limit=limit, kind=kind)
