"""The anomaly rules (see ``app.taps.anomalies`` for what each kind means), run over one upload's
newly stored records against what the database already holds, inside the upload's transaction."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.orm import Session

from app.city import load
from app.scenes import bus
from app.taps import online
from app.taps.geo import Point, distance_km, place_of
from app.taps.ingest import Conflict, StoredTap
from app.taps.models import Tap
from app.taps.record import rfc3339, utc

if TYPE_CHECKING:
    from app.config import Settings

TRAVEL_HORIZON = timedelta(hours=6)  # neighbours further apart in time are never "impossible"
_CHUNK = 500


@dataclass(frozen=True)
class Rules:
    """Thresholds, from the settings (see ``app.config.Settings``)."""

    max_trust_age_s: float
    max_speed_kmh: float
    min_distance_km: float
    online_window: timedelta
    leeway: timedelta
    bus_fares: bus.FareTable

    @classmethod
    def from_settings(cls, settings: "Settings") -> "Rules":
        return cls(settings.reader_max_trust_age_seconds, settings.travel_max_speed_kmh,
                   settings.travel_min_distance_m / 1000,
                   timedelta(seconds=settings.online_use_window_seconds),
                   timedelta(seconds=settings.clock_leeway_seconds),
                   bus.FareTable.from_config(load("bus")))


@dataclass(frozen=True)
class Found:
    """An anomaly about one record (``terminal_id``, ``seq``); ``key`` says what it is about."""

    key: str
    kind: str
    iss: str | None
    jti: str | None
    sub: str | None
    terminal_id: str
    seq: int
    detail: str
    at: datetime


@dataclass(frozen=True)
class Use:
    """An accept of a code: a stored tap (``tap_id``) or an online scan from the audit log."""

    terminal_id: str
    seq: int | None
    at: datetime
    online: bool
    request_id: str | None
    tap_id: int | None = None


def detect(session: Session, new: Sequence[StoredTap], conflicts: Sequence[Conflict],
           rules: Rules) -> list[Found]:
    return [*_seq_conflicts(conflicts), *_per_record(new, rules), *_uses(session, new, rules),
            *_travel(session, new, rules)]


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


def _repeated(session: Session, column: Any, values: Sequence[str], *where: Any) -> list[str]:
    """The ``values`` held by at least two stored taps matching ``where``. The batch's own rows
    are stored already, so a value held once is just the new tap itself and cannot pair with
    anything: only these few need their rows loaded (one GROUP BY instead of a row per rider)."""
    found: list[str] = []
    query = select(column).where(column.in_(bindparam("values", expanding=True)), *where) \
        .group_by(column).having(func.count() > 1)
    for chunk in _chunks(values):
        found += session.scalars(query, {"values": list(chunk)})
    return found


def _seq_conflicts(conflicts: Iterable[Conflict]) -> Iterator[Found]:
    for c in conflicts:
        r = c.record
        yield Found(f"seq_conflict:{c.terminal_id}:{r.seq}:{r.digest}", "seq_conflict", r.iss, r.jti,
                    r.sub, c.terminal_id, r.seq, f"seq {r.seq} was sent again with different "
                    "content; the first version is kept", r.server_at)


def _per_record(new: Iterable[StoredTap], rules: Rules) -> Iterator[Found]:
    for tap in new:
        r = tap.record
        if not r.accepted:
            continue
        where = (r.iss, r.jti, r.sub, tap.terminal_id, r.seq)
        if r.trust_age_s is not None and r.trust_age_s > rules.max_trust_age_s:
            yield Found(f"stale_trust:{tap.terminal_id}:{r.seq}", "stale_trust", *where,
                        f"accepted on trust material {r.trust_age_s:.0f} s old "
                        f"(limit {rules.max_trust_age_s:.0f} s)", r.server_at)
        elif r.trust_age_s is None and r.stale:
            yield Found(f"stale_trust:{tap.terminal_id}:{r.seq}", "stale_trust", *where,
                        "accepted on trust material the reader itself flagged stale", r.server_at)
        shown = (r.result or {}).get("fare")
        if tap.kind == "bus" and r.ent is not None and isinstance(shown, dict) \
                and type(shown.get("amount_cents")) is int:
            expected = rules.bus_fares.fare_for(r.ent)
            if shown["amount_cents"] != expected.amount_cents:
                yield Found(f"fare_mismatch:{tap.terminal_id}:{r.seq}", "fare_mismatch", *where,
                            f"reader charged {shown['amount_cents']} cents; the fare table gives "
                            f"{expected.amount_cents} ({expected.category})", r.server_at)


def _uses(session: Session, new: Sequence[StoredTap], rules: Rules) -> Iterator[Found]:
    accepted = [t for t in new if t.record.accepted and t.record.jti is not None]
    if not accepted:
        return
    by_code: dict[tuple[str, str], list[Use]] = {}
    jtis = _repeated(session, Tap.jti, sorted({t.record.jti for t in accepted}),  # type: ignore[type-var]
                     Tap.decision == "accept")
    for chunk in _chunks(jtis):
        rows = session.execute(select(Tap.id, Tap.terminal_id, Tap.seq, Tap.iss, Tap.jti, Tap.mode,
                                      Tap.server_at, Tap.request_id)
                               .where(Tap.jti.in_(chunk), Tap.decision == "accept"))
        for tap_id, terminal_id, seq, iss, jti, mode, at, request_id in rows:
            by_code.setdefault((iss, jti), []).append(
                Use(terminal_id, seq, utc(at), mode == "online", request_id, tap_id))
    online = _online_uses(session, [t for t in accepted if t.record.mode == "offline"], rules)
    for tap in accepted:
        r = tap.record
        mine = Use(tap.terminal_id, r.seq, r.server_at, r.mode == "online", r.request_id, tap.id)
        others = [u for u in by_code.get((r.iss, r.jti), []) if u.tap_id != tap.id]  # type: ignore[arg-type]
        for other in others + online.get(r.jti, []):  # type: ignore[arg-type]
            found = _classify(r.iss, r.jti, r.sub, mine, other, rules.leeway)  # type: ignore[arg-type]
            if found is not None:
                yield found


def _online_uses(session: Session, offline: Sequence[StoredTap], rules: Rules) -> dict[str, list[Use]]:
    """jti → online accepts of it from the audit log, near the offline taps in time."""
    if not offline:
        return {}
    lo = min(t.record.server_at for t in offline) - rules.online_window
    hi = max(t.record.server_at for t in offline) + rules.online_window
    uses: dict[str, list[Use]] = {}
    jtis = [t.record.jti for t in offline if t.record.jti is not None]
    for jti, terminal_id, at in online.accepted_scans(session, jtis, lo, hi):
        uses.setdefault(jti, []).append(Use(terminal_id, None, at, True, None))
    return uses


def _classify(iss: str, jti: str, sub: str | None, mine: Use, other: Use,
              leeway: timedelta) -> Found | None:
    """One anomaly per pair of accepts of one code, or none."""
    pair = sorted((mine.terminal_id, other.terminal_id))
    key = f"use:{iss}:{jti}:{pair[0]}:{pair[1]}"
    if mine.online != other.online:
        offline, online = (other, mine) if mine.online else (mine, other)
        if offline.terminal_id == online.terminal_id and offline.request_id is not None \
                and online.request_id in (None, offline.request_id):
            return None  # the terminal's own online attempt, whose reply it did not get
        if offline.at >= online.at - leeway:
            assert offline.seq is not None  # an offline use is always a stored tap
            return Found(key, "used_after_online", iss, jti, sub, offline.terminal_id, offline.seq,
                         f"accepted offline after it was used online at terminal "
                         f"{online.terminal_id} at {rfc3339(online.at)}", offline.at)
    if mine.terminal_id == other.terminal_id:
        return None
    seq = f" (seq {other.seq})" if other.seq is not None else ""
    return Found(key, "double_use", iss, jti, sub, mine.terminal_id, mine.seq,  # type: ignore[arg-type]
                 f"also accepted at terminal {other.terminal_id}{seq} at {rfc3339(other.at)}", mine.at)


@dataclass(frozen=True)
class _Placed:
    tap_id: int
    terminal_id: str
    seq: int
    jti: str | None
    at: datetime
    point: Point


def _travel(session: Session, new: Sequence[StoredTap], rules: Rules) -> Iterator[Found]:
    placed = [t for t in new if t.record.sub is not None
              and place_of(t.kind, t.site, t.record.location) is not None]
    if not placed:
        return
    new_ids = {t.id for t in placed}
    lo = min(t.record.server_at for t in placed) - TRAVEL_HORIZON
    hi = max(t.record.server_at for t in placed) + TRAVEL_HORIZON
    by_sub: dict[str, list[_Placed]] = {}
    near = (Tap.server_at.between(lo, hi), or_(Tap.lat.is_not(None), Tap.kind == "metro"))
    subs = _repeated(session, Tap.sub, sorted({t.record.sub for t in placed  # type: ignore[misc]
                                               if t.record.sub is not None}), *near)
    for chunk in _chunks(subs):
        rows = session.execute(select(Tap.id, Tap.terminal_id, Tap.seq, Tap.jti, Tap.sub, Tap.kind,
                                      Tap.site, Tap.lat, Tap.lon, Tap.server_at)
                               .where(Tap.sub.in_(chunk), *near))
        for tap_id, terminal_id, seq, jti, sub, kind, site, lat, lon, at in rows:
            point = place_of(kind, site, (lat, lon) if lat is not None and lon is not None else None)
            if point is not None:
                by_sub.setdefault(sub, []).append(_Placed(tap_id, terminal_id, seq, jti, utc(at), point))
    for sub, taps in by_sub.items():
        taps.sort(key=lambda p: (p.at, p.tap_id))
        for before, after in zip(taps, taps[1:]):
            if before.tap_id not in new_ids and after.tap_id not in new_ids:
                continue
            km = distance_km(before.point, after.point)
            hours = (after.at - before.at).total_seconds() / 3600
            if km < rules.min_distance_km or (hours > 0 and km / hours <= rules.max_speed_kmh):
                continue
            speed = f"{km / hours:.0f} km/h" if hours > 0 else "at the same moment"
            yield Found(f"travel:{before.tap_id}:{after.tap_id}", "impossible_travel", None,
                        after.jti, sub, after.terminal_id, after.seq,
                        f"{km:.1f} km from terminal {before.terminal_id} (seq {before.seq}) in "
                        f"{hours * 3600:.0f} s ({speed})", after.at)
