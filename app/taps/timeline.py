"""A rider's metro timeline and how its entries and exits pair up.

Events are the accepted metro decisions of one pseudonym: offline taps (``mode: offline``) from
the ``taps`` table and online gate decisions from the audit log's ``scan`` entries. Tap records
with ``mode: online`` are left out: the server decided those, and the audit log already has them;
so are superseded offline taps (``app.taps.supersede``): the audit log has their online decision.

Pairing walks the events in time order (server time; an entry sorts before an exit at the same
instant): an exit closes the entry right before it if that entry is less than the trip limit
(``trip_expiry_seconds``) older; anything else is unpaired. Each event's fate depends only on its
neighbours, so the pairs do not depend on the order or batches in which the taps arrived.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.models import AuditEntry
from app.taps.models import Tap
from app.taps.record import utc

_CHUNK = 500


@dataclass(frozen=True)
class Event:
    """One accepted gate decision: an offline tap (``tap_id``) or an online scan (``audit_seq``)."""

    direction: str
    at: datetime
    station: str
    terminal_id: str
    tap_id: int | None = None
    audit_seq: int | None = None
    seq: int | None = None
    jti: str | None = None
    ent: tuple[str, ...] | None = None
    fare: Mapping[str, Any] | None = None  # what an online exit gate charged

    @property
    def offline(self) -> bool:
        return self.tap_id is not None

    @property
    def ref(self) -> str:
        return f"t{self.tap_id}" if self.tap_id is not None else f"a{self.audit_seq}"

    def order(self) -> tuple[datetime, int, str]:
        return (self.at, 0 if self.direction == "entry" else 1, self.ref)


@dataclass(frozen=True)
class Pairing:
    """An entry and the exit that closed it; one of them is ``None`` when unpaired."""

    entry: Event | None
    exit: Event | None

    @property
    def key(self) -> str:
        return f"{self.entry.ref if self.entry else '-'}>{self.exit.ref if self.exit else '-'}"

    @property
    def anchor(self) -> datetime:
        end = self.entry or self.exit
        assert end is not None
        return end.at

    @property
    def taps(self) -> list[int]:
        return [e.tap_id for e in (self.entry, self.exit) if e is not None and e.tap_id is not None]


def pair(events: Iterable[Event], expiry: timedelta) -> list[Pairing]:
    """Every entry and exit once: in a pair, or alone."""
    pairings: list[Pairing] = []
    open_entry: Event | None = None
    for event in sorted(events, key=Event.order):
        if event.direction == "entry":
            if open_entry is not None:
                pairings.append(Pairing(open_entry, None))
            open_entry = event
        elif open_entry is not None and event.at - open_entry.at < expiry:
            pairings.append(Pairing(open_entry, event))
            open_entry = None
        else:
            if open_entry is not None:
                pairings.append(Pairing(open_entry, None))
                open_entry = None
            pairings.append(Pairing(None, event))
    if open_entry is not None:
        pairings.append(Pairing(open_entry, None))
    return pairings


def settled(pairings: Iterable[Pairing], expiry: timedelta, now: datetime) -> list[Pairing]:
    """The pairings settlement records: those with an offline end that are final — a pair, or a
    lone offline end older than the trip limit. (Online-only trips were charged at the gates.)"""
    return [p for p in pairings if p.taps and (
        (p.entry is not None and p.exit is not None) or now - p.anchor >= expiry)]


def events(session: Session, subs: Sequence[str], lo: datetime, hi: datetime
           ) -> dict[str, list[Event]]:
    """Each rider's metro events with server time in ``[lo, hi]``."""
    found: dict[str, list[Event]] = {sub: [] for sub in subs}
    for start in range(0, len(subs), _CHUNK):
        chunk = subs[start:start + _CHUNK]
        taps = session.execute(select(
            Tap.id, Tap.sub, Tap.direction, Tap.server_at, Tap.site, Tap.terminal_id, Tap.seq,
            Tap.jti, Tap.ent).where(
            Tap.sub.in_(chunk), Tap.server_at.between(lo, hi), Tap.kind == "metro",
            Tap.mode == "offline", Tap.decision == "accept", Tap.direction.is_not(None),
            Tap.superseded.is_(False)))
        for tap_id, sub, direction, at, site, terminal_id, seq, jti, ent in taps:
            found[sub].append(Event(direction, utc(at), str(site.get("station")), terminal_id,
                                    tap_id=tap_id, seq=seq, jti=jti,
                                    ent=tuple(ent) if ent is not None else None))
        scans = session.execute(select(
            AuditEntry.seq, AuditEntry.subject, AuditEntry.at, AuditEntry.site, AuditEntry.actor_id,
            AuditEntry.details).where(
            AuditEntry.subject.in_(chunk), AuditEntry.action == "scan", AuditEntry.at.between(lo, hi)))
        for seq, sub, at, site, actor_id, details in scans:
            event = _online_event(seq, utc(at), site or {}, actor_id, details or {})
            if event is not None:
                found[sub].append(event)
    return found


def _online_event(seq: int, at: datetime, site: Mapping[str, Any], terminal_id: str,
                  details: Mapping[str, Any]) -> Event | None:
    direction = details.get("direction")
    if site.get("kind") != "metro" or details.get("decision") != "accept" \
            or direction not in ("entry", "exit"):
        return None
    fare = details.get("fare") if direction == "exit" else None
    return Event(direction, at, str(site.get("station")), terminal_id, audit_seq=seq,
                 jti=details.get("jti"), fare=fare if isinstance(fare, Mapping) else None)
