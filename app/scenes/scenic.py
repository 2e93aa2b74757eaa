"""Scenic spots: admission by a reservation for the spot and day or by an admitting entitlement,
once per citizen per spot per city day, within the day's capacity.

Who may enter is decided from the verified code alone — no registry query on the scan path — by
``admits``, a pure function the online ``ScenicScene`` and the offline turnstile reader both call:
an annual pass (``annual_pass_entitlements``) or a spot's free category admits; a reservation
admits through its spot's entitlement (``reservation_entitlement`` in scenic.json, e.g. ``rla`` for
Laoshan), which a code carries only if the citizen's reservation is for the city day the code was
minted on, and which counts only when the code is scanned on that same city day (its ``iat``'s
day). So a code minted at 23:59:50 on day D and scanned at 00:00:10 on D+1 carries D's reservation
but is turned away ``no_reservation``; the phone's next code (refreshed every ~40 s) carries D+1's.
A revoked reservation reaches verifiers as ``entitlement_revoked`` in the revocation feed and is
stripped from the code's ``ent`` before ``admits`` sees it.

Redis keys per spot and city day (``<day>`` is YYYY-MM-DD in Asia/Shanghai), all expiring an hour
after that day ends:

- ``cc:scenic:cap:{spot:<spot>}:<day>`` — the day's capacity when an admin changed it (else
  configured);
- ``cc:scenic:count:{spot:<spot>}:<day>`` — places taken so far;
- ``cc:scenic:in:{rNN}:<spot>:<day>`` — pseudonyms of rider shard ``rNN`` admitted.

Capacity is per spot, the admitted set per rider (with the code's replay key: ``{rNN}``, see
``app.store.slots``), so in a Redis Cluster they are in different slots and an admission is two
scripts: ``_RESERVE`` takes a place in the spot's slot (INCR below capacity; skipped when the code
is turned away before capacity counts), then ``_ADMIT`` in the rider's slot claims first use of the
code, checks once-a-day, admits (or answers ``capacity_full`` when no place was had) and appends the
scan record (``app.records``); on a single Redis both are one script (``_ADMIT_ONE``: one round
trip, as before the cluster). Any answer of ``_ADMIT`` but an admission, and a ``degraded`` one,
gives the place back (``_RELEASE``); a scan whose trust state was stale keeps its place while it
is decided again (``finish`` gives it back if it is then turned away before the scene). So two
turnstiles racing for the last place can never both win. What this costs: a worker dying between the two scripts, or Redis failing just
when the place is given back, keeps one place taken that nobody used
(``citycode_scenic_places_leaked_total`` counts the failed give-backs; a crash cannot count
itself); for the milliseconds a place is held by a scan that is then turned away, another rider
may be told ``capacity_full`` for the last place.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Any, Callable, Iterable, Mapping

import redis
from prometheus_client import Counter

from app.city import CITY_TZ, load
from app.codes.decision import Decision
from app.codes.errors import Degraded
from app.errors import NotFound, Unavailable
from app.registry.entitlements import reservation_entitlements
from app.records.sink import ScanRecords, TrustMoved
from app.records.stream import draft
from app.scenes.atomic import AtomicScript, replay_expiry, replay_key_for
from app.scenes.base import ScanContext, local_date
from app.store.redis import is_cluster
from app.store.slots import place_tag, rider_tag, shard_of

_DAY_MARGIN_SECONDS = 3600

# Spot slot. KEYS: count, capacity.  ARGV: configured capacity, TTL of the day's keys.
# The places left after taking one, or -1 when the day is full (nothing taken).
_RESERVE = """
local capacity = tonumber(redis.call('GET', KEYS[2]) or ARGV[1])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= capacity then return -1 end
used = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return capacity - used
"""

# Spot slot. KEYS: count. Gives back a place _RESERVE took.
_RELEASE = """
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then return redis.call('DECR', KEYS[1]) end
return 0
"""

# The head both admission scripts share: claim first use of the code (KEYS[3], until ARGV[4]),
# record a deny decided before the script (ARGV[5]), refuse a rider already admitted today
# (KEYS[4], ARGV[6]).
_CLAIM_AND_ADMITTED = """
if redis.call('EXISTS', KEYS[3]) == 1 then
  record('replayed')
  return {'replayed', -1}
end
redis.call('SET', KEYS[3], '1', 'EXAT', ARGV[4])
if ARGV[5] ~= '' then
  record(ARGV[5])
  return {ARGV[5], -1}
end
if redis.call('SISMEMBER', KEYS[4], ARGV[6]) == 1 then
  record('already_admitted')
  return {'already_admitted', -1}
end
"""

# Behind app.records.stream.PRELUDE, rider slot. KEYS[3]: replay, [4]: admitted set.
# ARGV[4]: replay EXAT, [5]: deny decided before ('' if none), [6]: sub, [7]: places left after
# the one reserved for this scan (-1: none reserved, the day is full), [8]: TTL of the day's keys.
# Every answer but `degraded` uses the code, denies included: a code is single-use once shown,
# so a turnstile's "no" cannot be turned into a "yes" elsewhere by the same code. Every answer is
# recorded; an admission's record carries the places left (``remaining``).
_ADMIT_SCRIPT = _CLAIM_AND_ADMITTED + """
if tonumber(ARGV[7]) < 0 then
  record('capacity_full')
  return {'capacity_full', 0}
end
redis.call('SADD', KEYS[4], ARGV[6])
redis.call('EXPIRE', KEYS[4], ARGV[8])
record('ok', 'remaining', ARGV[7])
return {'ok', tonumber(ARGV[7])}
"""

# Single Redis: the same in ONE script (one round trip, exact ``remaining``), all keys in one
# server. Behind PRELUDE. KEYS[3]: replay, [4]: admitted set, [5]: count, [6]: capacity.
# ARGV[4]: replay EXAT, [5]: deny decided before, [6]: sub, [7]: configured capacity, [8]: TTL.
_ADMIT_ONE = _CLAIM_AND_ADMITTED + """
local capacity = tonumber(redis.call('GET', KEYS[6]) or ARGV[7])
local used = tonumber(redis.call('GET', KEYS[5]) or '0')
if used >= capacity then
  record('capacity_full')
  return {'capacity_full', 0}
end
used = redis.call('INCR', KEYS[5])
redis.call('EXPIRE', KEYS[5], ARGV[8])
redis.call('SADD', KEYS[4], ARGV[6])
redis.call('EXPIRE', KEYS[4], ARGV[8])
record('ok', 'remaining', tostring(capacity - used))
return {'ok', capacity - used}
"""

LEAKED = Counter("citycode_scenic_places_leaked_total",
                 "Scenic places reserved for a scan that was not admitted and not given back")


@dataclass(frozen=True)
class Spot:
    spot: str
    name: str
    daily_capacity: int
    free_categories: frozenset[str]
    hours: tuple[time, time] | None = None  # local opening, closing
    reservation: str | None = None  # entitlement a reservation for the spot gives; None: not reservable

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
        reservations = reservation_entitlements(config)
        spots = {}
        for item in config["spots"]:
            hours = item.get("hours")
            spot = Spot(str(item["spot"]), str(item["name"]), int(item["daily_capacity"]),
                        frozenset(item.get("free_categories", ())),
                        (time.fromisoformat(hours[0]), time.fromisoformat(hours[1])) if hours else None,
                        reservations.get(str(item["spot"])))
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


def day_keys(spot: str, day: date) -> tuple[str, str]:
    """(count, capacity) keys of a spot's city day: in the spot's slot."""
    suffix = f"{place_tag('spot', spot)}:{day.isoformat()}"
    return f"cc:scenic:count:{suffix}", f"cc:scenic:cap:{suffix}"


def admitted_key(spot: str, day: date, sub: str) -> str:
    """The set of ``sub``'s rider shard admitted to a spot on a city day: in the rider's slot."""
    return f"cc:scenic:in:{rider_tag(sub)}:{spot}:{day.isoformat()}"


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
            pipe = self.client.pipeline(transaction=False)  # one slot per spot: no MGET across them
            for s in spots:
                pipe.get(day_keys(s.spot, day)[1])
            set_today = pipe.execute()
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
            self.client.set(day_keys(spot.spot, day)[1], capacity, ex=day_ttl(now))
        except (redis.RedisError, OSError):
            raise Unavailable("Scenic capacities are unavailable right now.") from None
        return {"spot": spot.spot, "name": spot.name, "daily_capacity": capacity, "date": day.isoformat()}


def admits(config: ScenicConfig, spot: Spot, ent: Iterable[str], *, issued_at: float,
           scanned_at: float) -> bool:
    """Whether a verified code's entitlements let its holder into ``spot`` (capacity, opening hours
    and once-a-day aside). Pure: the online scene and offline readers decide alike.

    ``ent`` is the code's entitlement names after revocations; ``issued_at`` its ``iat`` and
    ``scanned_at`` the scan time (epoch seconds). An annual pass or one of the spot's free
    categories admits on any day; the spot's reservation entitlement admits only when the code was
    minted on the scan's city day, because the entitlement names the spot and not the day.
    """
    held = frozenset(ent)
    if held & config.annual_pass or held & spot.free_categories:
        return True
    return (spot.reservation is not None and spot.reservation in held
            and local_date(issued_at) == local_date(scanned_at))


def entry_denial(config: ScenicConfig, spot: Spot, ent: Iterable[str], *, issued_at: float,
                 scanned_at: float) -> str | None:
    """The reason a code is turned away before capacity and once-a-day are counted — ``closed``
    outside opening hours, ``no_reservation`` when ``admits`` says no — or None. Pure, like
    ``admits``."""
    if not spot.is_open(scanned_at):
        return "closed"
    if not admits(config, spot, ent, issued_at=issued_at, scanned_at=scanned_at):
        return "no_reservation"
    return None


class ScenicScene:
    """Admit by reservation or entitlement, once a day, within capacity; claim the code with it.
    Reads nothing but the verified code and Redis."""

    kind = "scenic"

    def __init__(self, client: "redis.Redis[bytes]", config: ScenicConfig, *, leeway: int,
                 records: ScanRecords | None = None) -> None:
        self.config, self.leeway = config, leeway
        self.records = records or ScanRecords(client, leeway=leeway)
        self._admit = self.records.script(_ADMIT_SCRIPT, "scenic.admit")
        self._admit_one = None if is_cluster(client) else self.records.script(_ADMIT_ONE, "scenic.admit")
        # id(ctx) → (jti, count key, places left): a place kept while a scan is decided again
        self._held: dict[int, tuple[str, str, int]] = {}
        self._reserve = AtomicScript(client, _RESERVE, "scenic.reserve", wait_replicas=self.records.wait_replicas)
        self._release = AtomicScript(client, _RELEASE, "scenic.release")

    def decide(self, checked: Decision, ctx: ScanContext) -> Decision:
        claims = checked.claims
        assert claims is not None, "scenes receive accepted checks only"
        spot = self.config.spots.get(ctx.site.get("spot", ""))
        if spot is None:  # the turnstile's set-up, not the citizen: leave the code unused
            return self.records.deny(ctx, Decision.deny("closed", claims, detail="spot not configured"))
        early = entry_denial(self.config, spot, claims.ent, issued_at=claims.iat, scanned_at=ctx.now)
        day, ttl = ctx.local_date, day_ttl(ctx.now)
        count_key, cap_key = day_keys(spot.spot, day)
        if self._admit_one is not None:
            return self._decide_in_one(checked, ctx, spot, early, count_key, cap_key)
        left = -1
        held = self._held.pop(id(ctx), None)
        if held is not None and held[:2] == (claims.jti, count_key) and early is None:
            left = held[2]  # the place this scan took before its trust state was found stale
        elif held is not None:
            self._give_back(held[2], held[1])
        if early is None and left < 0:
            try:
                left = int(self._reserve([count_key, cap_key], [spot.daily_capacity, ttl]))
            except Degraded as error:  # nothing taken, nothing claimed: the code stays unused
                decision = Decision.from_error(error, claims)
                self.records.unrecorded(ctx, decision, "scenic.reserve")
                return decision
        try:
            reason, remaining = self._admit(
                [replay_key_for(claims), admitted_key(spot.spot, day, claims.sub)],
                [replay_expiry(claims, self.leeway), early or "", claims.sub, left, ttl],
                draft(ctx, claims, complete={"spot": spot.spot}), shard=shard_of(claims.sub))
        except Degraded as error:
            self._give_back(left, count_key)
            return Decision.from_error(error, claims)
        except TrustMoved:  # decided again after catching up (ScanService.fresh): keep the place
            if left >= 0:
                self._held[id(ctx)] = (claims.jti, count_key, left)
            raise
        reason = reason.decode() if isinstance(reason, bytes) else str(reason)
        if reason == "ok":
            return checked.with_data(**admission(spot.spot, remaining))
        self._give_back(left, count_key)
        return Decision.deny(reason, claims, detail=f"{reason} at {spot.spot}")

    def _decide_in_one(self, checked: Decision, ctx: ScanContext, spot: Spot, early: str | None,
                       count_key: str, cap_key: str) -> Decision:
        """A single Redis: reserve, claim, admit and record in one script."""
        claims = checked.claims
        assert claims is not None and self._admit_one is not None
        try:
            reason, remaining = self._admit_one(
                [replay_key_for(claims), admitted_key(spot.spot, ctx.local_date, claims.sub), count_key, cap_key],
                [replay_expiry(claims, self.leeway), early or "", claims.sub, spot.daily_capacity,
                 day_ttl(ctx.now)],
                draft(ctx, claims, complete={"spot": spot.spot}), shard=shard_of(claims.sub))
        except Degraded as error:
            return Decision.from_error(error, claims)
        reason = reason.decode() if isinstance(reason, bytes) else str(reason)
        if reason == "ok":
            return checked.with_data(**admission(spot.spot, remaining))
        return Decision.deny(reason, claims, detail=f"{reason} at {spot.spot}")

    def finish(self, ctx: ScanContext) -> None:
        """The scan of ``ctx`` is decided (``ScanService.fresh``): give back a place still held
        for it (its code was turned away before the scene when decided again)."""
        held = self._held.pop(id(ctx), None)
        if held is not None:
            self._give_back(held[2], held[1])

    def _give_back(self, left: int, count_key: str) -> None:
        """Return the place reserved for a scan that was not admitted (none when ``left`` < 0)."""
        if left < 0:
            return
        try:
            self._release([count_key], [])
        except Degraded:
            LEAKED.inc()


def admission(spot: str, remaining: int | bytes | str) -> dict[str, Any]:
    """An admission's data from the script's ``remaining``; the record writer derives it alike."""
    return {"admission": {"spot": spot, "remaining": max(int(remaining), 0)}}


def build(client: "redis.Redis[bytes]", records: ScanRecords, *, leeway: int) -> ScenicScene:
    """The city's scenic scene: spots from ``scenic.json``, admissions kept in ``client``."""
    return ScenicScene(client, city_config(), leeway=leeway, records=records)


def directory(client: "redis.Redis[bytes]", clock: Callable[[], float]) -> ScenicDirectory:
    """The city's spots for the admin; give it the scan clock, so the admin's "today" is the
    turnstiles' today."""
    return ScenicDirectory(client, city_config(), clock=clock)
