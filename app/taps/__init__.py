"""Offline readers' tap uploads: store each record once, find anomalies, settle metro trips.

``TapDesk.ingest`` runs ONE transaction for any number of uploads (group commit) — store each
upload's records (``ingest``), flag offline accepts their own terminal had decided online
(``supersede``), detect and keep anomalies over all of them together (``anomalies``), settle the
riders they touch plus overdue ones (``settlement``) — and returns each upload's answer only after
it committed; then it brings the online trip state in Redis up to date (``live_trips``).

Who calls it: the record writer (``app.records.taps``), the single process that writes tap
uploads, fed by the workers through the Redis stream ``cc:taps`` (``app.taps.queue``):
``TapDesk.submit`` is the worker's side (check, append, wait for the answer). ``TapDesk.upload``
does one upload in the calling process (tools and tests). Domain code only: the HTTP view is
``app.api.taps``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Sequence

import redis
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.registry.terminals import TerminalInfo
from app.taps import anomalies, supersede
from app.taps.detect import Rules
from app.taps.ingest import Stored, check_for_terminal, store
from app.taps.live_trips import LiveTrips
from app.taps.models import SettledTrip, Tap
from app.taps.record import TapRecord
from app.taps.settlement import Settlement, Tariff
from app.taps.queue import Job, UploadQueue
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


def _answers(stored: Sequence[Stored], found: Sequence[dict[str, Any]], marked: set[int]
             ) -> list[Upload]:
    """Each upload's answer: its counts, the superseded among its new records, and the anomalies
    about its records (a ``seq_conflict`` to the upload that resent the seq; any other kind to
    the upload that stored the record it names)."""
    by_record: dict[tuple[str, int], int] = {}
    by_conflict: dict[tuple[str, int], int] = {}
    for index, one in enumerate(stored):
        for tap in one.new:
            by_record[(tap.terminal_id, tap.record.seq)] = index
        for conflict in one.conflicts:
            by_conflict.setdefault((conflict.terminal_id, conflict.record.seq), index)
    answers = [Upload(len(one.new), one.duplicates, [],
                      sum(1 for tap in one.new if tap.id in marked)) for one in stored]
    for anomaly in found:
        where = (anomaly["terminal_id"], anomaly["seq"])
        owners = by_conflict if anomaly["kind"] == "seq_conflict" else by_record
        index = owners.get(where, by_record.get(where, by_conflict.get(where, 0)))
        answers[index].anomalies.append(anomaly)
    return answers


class TapDesk:
    """Tap uploads, anomalies and settlement over one database and Redis."""

    def __init__(self, db: "Database", client: "redis.Redis[bytes]", settings: "Settings",
                 tariff: Tariff | None = None) -> None:
        self.db = db
        self._client = client
        self.rules = Rules.from_settings(settings)
        self.settlement = Settlement(tariff or Tariff.from_city())
        self.live = LiveTrips(client, expiry_seconds=int(self.settlement.tariff.expiry.total_seconds()))

    @cached_property
    def queue(self) -> UploadQueue:
        """The workers' way to the record writer (built on first use: only workers need it)."""
        return UploadQueue(self._client)

    def submit(self, terminal: TerminalInfo, records: Sequence[TapRecord], now: float
               ) -> dict[str, Any]:
        """A worker's upload: check the records against the terminal (``InvalidInput``, nothing
        stored), hand the batch to the record writer and return its answer (``Upload.to_dict``)
        once the writer committed it. Raises ``queue.NotAnswered`` (503, retry) without one."""
        check_for_terminal(terminal, records)
        for record in records:
            record.digest  # noqa: B018  (computed here, on the workers' cores, not the writer's)
        return self.queue.submit(terminal, records, now)

    def upload(self, terminal: TerminalInfo, records: Sequence[TapRecord], now: float) -> Upload:
        """Store one batch from ``terminal`` in this process. Raises ``InvalidInput`` (nothing
        stored) for records its kind cannot send; returns after the transaction committed."""
        check_for_terminal(terminal, records)
        answers, steps = self.ingest([Job(b"", "", terminal, now, list(records))], now)
        self.live.apply(steps, now)
        return answers[0]

    def ingest(self, jobs: Sequence[Job], now: float) -> tuple[list[Upload], list[Any]]:
        """Store several uploads in ONE transaction, in order: each upload's records are stored
        as if it came alone after the ones before it (a seq an earlier upload of the group stored
        is a duplicate); supersession, anomaly detection and settlement run once over all the
        new records. Returns each upload's answer — only after the commit — and the steps for
        the online trip state (``self.live.apply`` them after the commit)."""
        moment = _moment(now)
        with self.db.session() as session:
            stored: list[Stored] = [store(session, job.terminal, job.records, _moment(job.received_at))
                                    for job in jobs]  # the first insert takes SQLite's write lock
            _serialize(session, wrote=True)
            new = [tap for one in stored for tap in one.new]
            conflicts = [c for one in stored for c in one.conflicts]
            marked = _supersede(session, self.settlement, moment - supersede.LATE,
                                self.rules.online_window, moment)
            found = anomalies.find_and_save(session, new, conflicts, self.rules, moment)
            kept = [tap for tap in new if tap.id not in marked]
            steps = self.settlement.after_upload(session, kept, moment)
            self.settlement.sweep(session, moment, due_only=True, limit=SWEEP_AT_UPLOAD)
        return _answers(stored, found, marked), steps

    def settle(self, now: float, *, due_only: bool = False) -> "SettleReport":
        """Settle pending offline metro taps now (see ``settle_pending``)."""
        return settle_pending(self.db, self.settlement, now, due_only=due_only,
                              window=self.rules.online_window)

    def anomalies(self, since: anomalies.Since, *, limit: int, kind: str | None = None
                  ) -> list[dict[str, Any]]:
        with self.db.session() as session:
            return anomalies.listing(session, since, limit=limit, kind=kind)
