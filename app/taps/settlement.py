"""Settling metro trips recorded offline: pair entries and exits per rider, price them with the
online fare code (``FareTable.quote`` over ``Network.hops``, imported from ``app.scenes.metro``),
and keep the result in ``settled_trips``.

- A pair with an offline exit is priced from the entry station to the exit station with the
  exit record's ``ent`` (the entry's when the exit sent none). A pair closed by an online exit
  gate keeps the fare that gate charged (``priced_by: online_gate``).
- A lone offline entry (or exit) older than ``trip_expiry_seconds`` pays the city's
  ``unpaired_entry_fare`` (``unpaired_exit_fare``) from ``metro.json``: ``"max"`` is the fare of a
  route the network cannot price (``max_cents`` less the rider's discount), a number is cents.
- Rows are derived from the taps. Whenever taps arrive, the rider's rows near them in time are
  recomputed from the whole timeline and replaced where the pairing changed (an exit uploaded
  after its entry was already charged as unpaired turns that row into a priced trip). So the
  stored trips are the same whatever order and batches the taps came in.

``taps.pending_since`` marks offline metro taps not yet in a row; the sweep (at every upload
for the overdue ones, and ``citycode settle``) settles them.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Mapping, Sequence

from sqlalchemy import Table, delete, func, or_, select, update
from sqlalchemy.orm import Session

from app.audit.models import AuditEntry
from app.city import load
from app.scenes.metro import trip_expiry_seconds
from app.scenes.metro.fares import FareTable
from app.scenes.metro.network import Network, UnknownStation, default_network
from app.taps.ingest import StoredTap, insert_ignoring
from app.taps.live_trips import CloseTrip, OpenTrip
from app.taps.models import SettledTrip, Tap
from app.taps.record import utc
from app.taps.timeline import Event, Pairing, events, pair, settled

Span = tuple[datetime, datetime]


def _policy(config: Mapping[str, Any], name: str) -> str | int:
    value = config.get(name, "max")
    if value == "max" or (type(value) is int and value >= 0):
        return value  # type: ignore[no-any-return]
    raise ValueError(f"metro.json {name} must be \"max\" or a whole number of cents >= 0")


@dataclass(frozen=True)
class Tariff:
    """The city's metro network, fares, trip limit and unpaired-trip policy."""

    network: Network
    fares: FareTable
    expiry: timedelta
    unpaired_entry: str | int
    unpaired_exit: str | int

    @classmethod
    def from_city(cls) -> "Tariff":
        config = load("metro")
        return cls(default_network(), FareTable.from_config(config.get("fares")),
                   timedelta(seconds=trip_expiry_seconds(config)),
                   _policy(config, "unpaired_entry_fare"), _policy(config, "unpaired_exit_fare"))

    def price(self, p: Pairing) -> tuple[int, str, str]:
        """``(amount_cents, category, priced_by)`` for one settled pairing."""
        if p.entry is not None and p.exit is not None:
            charged = p.exit.fare
            if not p.exit.offline and charged is not None and type(charged.get("amount_cents")) is int:
                return charged["amount_cents"], str(charged.get("category", "full")), "online_gate"
            try:
                stops: int | None = self.network.hops(p.entry.station, p.exit.station)
            except UnknownStation:
                stops = None  # a station left the network file: the cap, as online
            ent = p.exit.ent if p.exit.ent is not None else (p.entry.ent or ())
            fare = self.fares.quote(stops, ent)
            return fare.amount_cents, fare.category, "settlement"
        end = p.entry or p.exit
        assert end is not None
        policy = self.unpaired_entry if p.entry is not None else self.unpaired_exit
        if policy == "max":
            fare = self.fares.quote(None, end.ent or ())
            return fare.amount_cents, fare.category, "settlement"
        return int(policy), "unpaired", "settlement"


class Settlement:
    def __init__(self, tariff: Tariff) -> None:
        self.tariff = tariff

    def after_upload(self, session: Session, new: Sequence[StoredTap], now: datetime
                     ) -> list[OpenTrip | CloseTrip]:
        """Settle around this upload's offline metro taps; returns the Redis steps to apply
        after commit (see ``app.taps.live_trips``)."""
        metro = [t for t in new if t.kind == "metro" and t.record.mode == "offline"
                 and t.record.accepted and t.record.sub is not None and t.record.direction]
        spans: dict[str, Span] = {}
        for tap in metro:
            sub, at = tap.record.sub, tap.record.server_at
            lo, hi = spans.get(sub, (at, at))  # type: ignore[arg-type]
            spans[sub] = (min(lo, at), max(hi, at))  # type: ignore[index]
        timelines = self.reconcile(session, spans, now)
        expiry = self.tariff.expiry
        steps: list[OpenTrip | CloseTrip] = [
            CloseTrip(t.record.sub, t.record.server_at) for t in metro  # type: ignore[arg-type]
            if t.record.direction == "exit" and now - t.record.server_at < expiry]
        new_ids = {t.id for t in metro}
        candidates: dict[str, Event] = {}
        for sub, timeline in timelines.items():
            newest = max(timeline, key=Event.order, default=None)
            if newest is not None and newest.tap_id in new_ids and newest.direction == "entry" \
                    and now - newest.at < expiry:
                candidates[sub] = newest
        busy = _active_after(session, candidates)
        steps += [OpenTrip(sub, entry.station, entry.at, entry.jti or "")
                  for sub, entry in candidates.items() if sub not in busy]
        return steps

    def sweep(self, session: Session, now: datetime, *, due_only: bool = True,
              after_sub: str | None = None, limit: int = 200) -> list[str]:
        """Settle riders with pending offline metro taps (``due_only``: only those older than the
        trip limit, which will all be settled now), in pseudonym order after ``after_sub``."""
        query = select(Tap.sub, func.min(Tap.pending_since), func.max(Tap.pending_since)).where(
            Tap.pending_since.is_not(None))
        if due_only:
            query = query.where(Tap.pending_since < now - self.tariff.expiry)
        if after_sub is not None:
            query = query.where(Tap.sub > after_sub)
        rows = session.execute(query.group_by(Tap.sub).order_by(Tap.sub).limit(limit)).all()
        self.reconcile(session, {sub: (utc(lo), utc(hi)) for sub, lo, hi in rows}, now)
        return [sub for sub, _, _ in rows]

    def reconcile(self, session: Session, spans: Mapping[str, Span], now: datetime
                  ) -> dict[str, list[Event]]:
        """Recompute the rows of each rider within two trip limits of their span, from the
        timeline within three (every event's neighbours within one trip limit are seen)."""
        if not spans:
            return {}
        expiry = self.tariff.expiry
        subs = sorted(spans)
        lo = min(s[0] for s in spans.values()) - 3 * expiry
        hi = max(s[1] for s in spans.values()) + 3 * expiry
        timelines = events(session, subs, lo, hi)
        existing: dict[str, list[tuple[int, str, datetime]]] = {}
        for start in range(0, len(subs), 500):
            rows = session.execute(select(SettledTrip.sub, SettledTrip.id, SettledTrip.key,
                                          SettledTrip.anchor_at).where(
                SettledTrip.sub.in_(subs[start:start + 500]), SettledTrip.anchor_at.between(lo, hi)))
            for owner, row_id, key, anchor in rows:
                existing.setdefault(owner, []).append((row_id, key, anchor))
        stale: list[int] = []
        rows: list[dict[str, Any]] = []
        covered: set[int] = set()
        pending: set[int] = set()
        for sub in subs:
            r_lo, r_hi = spans[sub][0] - 2 * expiry, spans[sub][1] + 2 * expiry
            final = settled(pair(timelines[sub], expiry), expiry, now)
            want = {p.key: p for p in final if r_lo <= p.anchor <= r_hi}
            have = {key: row_id for row_id, key, anchor in existing.get(sub, ())
                    if r_lo <= utc(anchor) <= r_hi}
            stale += [row_id for key, row_id in have.items() if key not in want]
            rows += [self._row(sub, p, now) for key, p in want.items() if key not in have]
            in_final = {tap_id for p in final for tap_id in p.taps}
            for event in timelines[sub]:
                if event.tap_id is not None and r_lo <= event.at <= r_hi:
                    (covered if event.tap_id in in_final else pending).add(event.tap_id)
        if stale:
            session.execute(delete(SettledTrip).where(SettledTrip.id.in_(stale)))
        if rows:
            table: Table = SettledTrip.__table__  # type: ignore[assignment]
            session.execute(insert_ignoring(session, table, ["key"]), rows)
        _mark(session, covered, pending)
        return timelines

    def _row(self, sub: str, p: Pairing, now: datetime) -> dict[str, Any]:
        amount, category, priced_by = self.tariff.price(p)
        status = "settled" if p.entry and p.exit else "unpaired_entry" if p.entry else "unpaired_exit"
        row: dict[str, Any] = {"key": p.key, "sub": sub, "status": status, "anchor_at": p.anchor,
                               "amount_cents": amount, "category": category,
                               "priced_by": priced_by, "settled_at": now}
        for prefix, end in (("entry", p.entry), ("exit", p.exit)):
            row.update({f"{prefix}_tap_id": end and end.tap_id,
                        f"{prefix}_audit_seq": end and end.audit_seq,
                        f"{prefix}_terminal_id": end and end.terminal_id,
                        f"{prefix}_seq": end and end.seq,
                        f"{prefix}_station": end and end.station})
        row["entered_at"] = p.entry and p.entry.at
        row["exited_at"] = p.exit and p.exit.at
        return row


def _mark(session: Session, covered: set[int], pending: set[int]) -> None:
    """``pending_since``: cleared for taps in a settled row, set again for the others."""
    for ids, value in ((sorted(covered), None), (sorted(pending), Tap.server_at)):
        for start in range(0, len(ids), 500):
            session.execute(update(Tap).where(Tap.id.in_(ids[start:start + 500]))
                            .values(pending_since=value))


def _active_after(session: Session, entries: Mapping[str, Event]) -> set[str]:
    """The riders who did anything after their entry but retry an entry gate (a tap accepted
    anywhere, any bus/scenic/hall tap, any exit, an online scan): for them the entry is not the
    current state and must not open a trip online."""
    busy: set[str] = set()
    subs = sorted(entries)
    for start in range(0, len(subs), 500):
        chunk = subs[start:start + 500]
        since = min(entries[sub].at for sub in chunk)
        rows = session.execute(select(Tap.sub, Tap.id, Tap.server_at).where(
            Tap.sub.in_(chunk), Tap.server_at > since,
            or_(Tap.decision == "accept", Tap.kind != "metro", Tap.direction.is_distinct_from("entry"))))
        busy.update(sub for sub, tap_id, at in rows
                    if utc(at) > entries[sub].at and tap_id != entries[sub].tap_id)
        scans = session.execute(select(AuditEntry.subject, AuditEntry.at, AuditEntry.site,
                                       AuditEntry.details).where(
            AuditEntry.subject.in_(chunk), AuditEntry.action == "scan", AuditEntry.at > since))
        busy.update(sub for sub, at, site, details in scans if utc(at) > entries[sub].at
                    and not _entry_retry(site or {}, details or {}))
    return busy


def _entry_retry(site: Mapping[str, Any], details: Mapping[str, Any]) -> bool:
    return site.get("kind") == "metro" and details.get("direction") == "entry" \
        and details.get("decision") == "deny"
