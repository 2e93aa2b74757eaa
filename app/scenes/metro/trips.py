"""Open metro trips in Redis, changed only together with the code's first use (one Lua script).

Keys:

- ``cc:replay:<len(iss)>:<iss>:<jti>`` — first use of the code, shared with plain verification
  (``app.scenes.atomic.replay_key_for``), kept until the code's expiry (EXAT);
- ``cc:metro:trip:<sub>`` — the citizen's one open trip, a hash ``{station, entered_at, jti}``.
  It is per pseudonym, not per code: a citizen enters with one code and leaves with a later one,
  and one key per citizen means a citizen can never hold two open trips.

The script runs atomically, so of two gates racing with the same code, or with two codes of the
same citizen, exactly one sees the state the other left. Whether a trip is still open is judged
on the scan clock (``ctx.now``, passed in), not on Redis's clock, so time can be injected; the
key's TTL (expiry plus a margin) only cleans up trips nobody closed.

Every outcome but ``replayed`` spends the code, passback and no-entry included: the gate
answered this code, and a code that could be retried after a deny could be retried by whoever
saw it over the rider's shoulder at the next gate. A Redis failure spends nothing (``Degraded``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import redis

from app.codes.decision import CodeClaims
from app.scenes.atomic import AtomicScript, replay_expiry, replay_key_for

TRIP_PREFIX = "cc:metro:trip:"
CLEANUP_MARGIN_SECONDS = 3600

Outcome = Literal["entered", "exited", "passback", "no_entry", "replayed"]

# KEYS: replay key, trip key.
# ARGV: direction, station, scan time (s, decimal string), trip expiry (s), replay EXAT (s),
#       trip key TTL (s), jti.
# Returns {outcome, station, entered_at}: for exited/passback the open trip's entry, for entered
# the new trip.
_TRIP_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {'replayed'} end
local now = tonumber(ARGV[3])
local trip = redis.call('HMGET', KEYS[2], 'station', 'entered_at')
local open = trip[1] and trip[2] and now - tonumber(trip[2]) < tonumber(ARGV[4])
redis.call('SET', KEYS[1], '1', 'EXAT', ARGV[5])
if ARGV[1] == 'entry' then
  if open then return {'passback', trip[1], trip[2]} end
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], 'station', ARGV[2], 'entered_at', ARGV[3], 'jti', ARGV[7])
  redis.call('EXPIRE', KEYS[2], ARGV[6])
  return {'entered', ARGV[2], ARGV[3]}
end
redis.call('DEL', KEYS[2])
if open then return {'exited', trip[1], trip[2]} end
return {'no_entry'}
"""


@dataclass(frozen=True, slots=True)
class Trip:
    station: str
    entered_at: float


@dataclass(frozen=True, slots=True)
class TripResult:
    outcome: Outcome
    trip: Trip | None = None  # entered: the new trip; exited/passback: the open one


def trip_key(sub: str) -> str:
    return f"{TRIP_PREFIX}{sub}"


class TripStore:
    """Opens and closes trips; ``expiry_seconds`` is how long an entry stays open."""

    def __init__(self, client: "redis.Redis[bytes]", *, expiry_seconds: int, leeway: int) -> None:
        if type(expiry_seconds) is not int or expiry_seconds <= 0:
            raise ValueError("trip expiry must be a positive number of seconds")
        self.client = client
        self.expiry_seconds = expiry_seconds
        self.leeway = leeway
        self._script = AtomicScript(client, _TRIP_SCRIPT, "metro.trip")

    def enter(self, claims: CodeClaims, station: str, now: float) -> TripResult:
        """Open a trip unless one is open (``passback``). Raises ``Degraded``."""
        return self._run("entry", claims, station, now)

    def exit(self, claims: CodeClaims, station: str, now: float) -> TripResult:
        """Close the open trip (``exited``, with its entry) or answer ``no_entry``. Raises ``Degraded``."""
        return self._run("exit", claims, station, now)

    def open_trip(self, sub: str, now: float) -> Trip | None:
        """The citizen's open, unexpired trip, if any (a read for service counters and tests)."""
        station, entered_at = self.client.hmget(trip_key(sub), ["station", "entered_at"])
        if station is None or entered_at is None or now - float(entered_at) >= self.expiry_seconds:
            return None
        return Trip(station.decode(), float(entered_at))

    def _run(self, direction: str, claims: CodeClaims, station: str, now: float) -> TripResult:
        reply = self._script(
            keys=[replay_key_for(claims), trip_key(claims.sub)],
            args=[direction, station, repr(float(now)), self.expiry_seconds,
                  replay_expiry(claims, self.leeway), self.expiry_seconds + CLEANUP_MARGIN_SECONDS,
                  claims.jti])
        outcome, *rest = [part.decode() if isinstance(part, bytes) else str(part) for part in reply]
        trip = Trip(rest[0], float(rest[1])) if len(rest) == 2 else None
        return TripResult(outcome, trip)  # type: ignore[arg-type]
