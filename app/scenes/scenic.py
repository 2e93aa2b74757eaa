"""Scenic spots: admission by a reservation for the spot and day or by an admitting entitlement,
once per citizen per spot per city day, within the day's capacity.

Redis keys per spot and city day (``<day>`` is YYYY-MM-DD in Asia/Shanghai), all expiring an hour
after that day ends:

- ``cc:scenic:cap:<spot>:<day>`` — the day's capacity when an admin changed it (else configured);
- ``cc:scenic:count:<spot>:<day>`` — admissions so far;
- ``cc:scenic:in:<spot>:<day>`` — pseudonyms admitted.

One Lua script claims first use of the code and decides and records the admission, so two
turnstiles racing for the last place can never both win.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import cache
from typing import TYPE_CHECKING, Any, Callable, Mapping

import redis
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from app.city import CITY_TZ, load
from app.codes.decision import CodeClaims, Decision
from app.codes.errors import Degraded
from app.db import Database
from app.db.models import Citizen, Credential
from app.errors import NotFound, Unavailable
from app.scenes.atomic import AtomicScript, replay_expiry, replay_key_for
from app.scenes.base import ScanContext, local_date

if TYPE_CHECKING:
    from app.runtime import Runtime

RESERVATION = "scenic_reservation"
_DAY_MARGIN_SECONDS = 3600

# KEYS: replay, admitted set, count, capacity.  ARGV: replay EXAT, deny decided before ('' if
# none), sub, configured capacity, TTL of the day's keys.
# Every answer but `degraded` uses the code, denies included: a code is single-use once shown,
# so a turnstile's "no" cannot be turned into a "yes" elsewhere by the same code.
_ADMIT_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {'replayed', -1} end
redis.call('SET', KEYS[1], '1', 'EXAT', ARGV[1])
if ARGV[2] ~= '' then return {ARGV[2], -1} end
if redis.call('SISMEMBER', KEYS[2], ARGV[3]) == 1 then return {'already_admitted', -1} end
local capacity = tonumber(redis.call('GET', KEYS[4]) or ARGV[4])
local used = tonumber(redis.call('GET', KEYS[3]) or '0')
if used >= capacity then return {'capacity_full', 0} end
used = redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], ARGV[5])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return {'ok', capacity - used}
"""


@dataclass(frozen=True)
class Spot:
    spot: str
    name: str
    daily_capacity: int
    free_categories: frozenset[str]
    hours: tuple[time, time] | None = None  # local opening, closing

    def is_open(self, now: float) -> bool:
        if self.hours is None:
            return True
        opens, closes = self.hours
        return opens <= datetime.fromtimestamp(now, CITY_TZ).time() < closes


@dataclass(frozen=True)
class ScenicConfig:
    spots: Mapping[str, Spot]
    annual_pass: frozenset[str]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ScenicConfig:
        spots = {}
        for item in config["spots"]:
            hours = item.get("hours")
            spot = Spot(str(item["spot"]), str(item["name"]), int(item["daily_capacity"]),
                        frozenset(item.get("free_categories", ())),
                        (time.fromisoformat(hours[0]), time.fromisoformat(hours[1])) if hours else None)
            if spot.daily_capacity < 0 or ":" in spot.spot:
                raise ValueError(f"scenic spot {spot.spot!r}: capacity must be >= 0, id without ':'")
            spots[spot.spot] = spot
        return cls(spots, frozenset(config.get("annual_pass_entitlements", ())))

    def spot(self, spot_id: str) -> Spot:
        found = self.spots.get(spot_id)
        if found is None:
            raise NotFound(f"No scenic spot {spot_id!r}.")
        return found


@cache
def city_config() -> ScenicConfig:
    return ScenicConfig.from_config(load("scenic"))


def day_keys(spot: str, day: date) -> tuple[str, str, str]:
    """(admitted set, count, capacity) keys of a spot's city day."""
    suffix = f"{spot}:{day.isoformat()}"
    return f"cc:scenic:in:{suffix}", f"cc:scenic:count:{suffix}", f"cc:scenic:cap:{suffix}"


def day_ttl(now: float) -> int:
    """Seconds until an hour after the city day of ``now`` ends (relative, so an injected clock
    never makes a key expire at once)."""
    end = datetime.combine(local_date(now) + timedelta(days=1), time(0), CITY_TZ).timestamp()
    return int(end - now) + _DAY_MARGIN_SECONDS


class ScenicDirectory:
    """The spots with today's capacity, and the admin's change of today's capacity."""

    def __init__(self, client: "redis.Redis[bytes]", config: ScenicConfig,
                 clock: Callable[[], float]) -> None:
        self.client, self.config, self.clock = client, config, clock

    def listing(self) -> list[dict[str, Any]]:
        day = local_date(self.clock())
        spots = list(self.config.spots.values())
        try:
            set_today = self.client.mget([day_keys(s.spot, day)[2] for s in spots])
        except (redis.RedisError, OSError):
            raise Unavailable("Scenic capacities are unavailable right now.") from None
        return [{"spot": s.spot, "name": s.name,
                 "daily_capacity": s.daily_capacity if raw is None else int(raw)}
                for s, raw in zip(spots, set_today)]

    def set_capacity(self, spot_id: str, capacity: int) -> dict[str, Any]:
        """Today's capacity; admissions already made stay, further ones stop at ``capacity``."""
        spot = self.config.spot(spot_id)
        now = self.clock()
        day = local_date(now)
        try:
            self.client.set(day_keys(spot.spot, day)[2], capacity, ex=day_ttl(now))
        except (redis.RedisError, OSError):
            raise Unavailable("Scenic capacities are unavailable right now.") from None
        return {"spot": spot.spot, "name": spot.name, "daily_capacity": capacity, "date": day.isoformat()}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)  # SQLite: naive UTC


def has_reservation(db: Database, sub: str, spot: str, day: date, now: float) -> bool:
    """An active, currently valid ``scenic_reservation`` of the pseudonym's citizen for the spot
    and day: one query on the unique pseudonym and the credentials' citizen index."""
    moment = datetime.fromtimestamp(now, timezone.utc)
    with db.session() as session:
        rows = session.execute(
            select(Credential.attributes, Credential.valid_from, Credential.valid_until)
            .join(Citizen, Citizen.id == Credential.citizen_id)
            .where(Citizen.pseudonym == sub, Credential.type == RESERVATION,
                   Credential.status == "active", Credential.attributes["spot"].as_string() == spot)
        ).all()
    for attributes, valid_from, valid_until in rows:
        try:
            reserved_for = date.fromisoformat(str(attributes.get("date", "")))
        except ValueError:
            continue
        if (reserved_for == day and (valid_from is None or _aware(valid_from) <= moment)
                and (valid_until is None or moment < _aware(valid_until))):
            return True
    return False


class ScenicScene:
    """Admit by reservation or entitlement, once a day, within capacity; claim the code with it."""

    kind = "scenic"

    def __init__(self, client: "redis.Redis[bytes]", db: Database, config: ScenicConfig, *,
                 leeway: int) -> None:
        self.db, self.config, self.leeway = db, config, leeway
        self._admit = AtomicScript(client, _ADMIT_SCRIPT, "scenic.admit")

    def decide(self, checked: Decision, ctx: ScanContext) -> Decision:
        claims = checked.claims
        assert claims is not None, "scenes receive accepted checks only"
        spot = self.config.spots.get(ctx.site.get("spot", ""))
        if spot is None:  # the turnstile's set-up, not the citizen: leave the code unused
            return Decision.deny("closed", claims, detail="spot not configured")
        day = ctx.local_date
        try:
            early = "" if spot.is_open(ctx.now) else "closed"
            if not early and not self._admissible(claims, spot, day, ctx.now):
                early = "no_reservation"
            in_key, count_key, cap_key = day_keys(spot.spot, day)
            reason, remaining = self._admit(
                keys=[replay_key_for(claims), in_key, count_key, cap_key],
                args=[replay_expiry(claims, self.leeway), early, claims.sub, spot.daily_capacity,
                      day_ttl(ctx.now)])
        except SQLAlchemyError:
            return Decision.deny("degraded", claims, detail="reservations unavailable")
        except Degraded as error:
            return Decision.from_error(error, claims)
        reason = reason.decode() if isinstance(reason, bytes) else str(reason)
        if reason == "ok":
            return checked.with_data(admission={"spot": spot.spot, "remaining": max(int(remaining), 0)})
        return Decision.deny(reason, claims, detail=f"{reason} at {spot.spot}")

    def _admissible(self, claims: CodeClaims, spot: Spot, day: date, now: float) -> bool:
        """An annual pass or free category (no database), else a reservation for spot and day."""
        held = set(claims.ent)
        if held & self.config.annual_pass or held & spot.free_categories:
            return True
        return has_reservation(self.db, claims.sub, spot.spot, day, now)


def build(rt: Runtime) -> ScenicScene:
    return ScenicScene(rt.redis, rt.db, city_config(), leeway=rt.settings.clock_leeway_seconds)


def directory(rt: Runtime) -> ScenicDirectory:
    """The directory on the scan clock, so the admin's "today" is the turnstiles' today."""
    return ScenicDirectory(rt.redis, city_config(), clock=lambda: rt.scans.clock())
