"""Open metro trips in Redis, changed only together with the code's first use (one Lua script).

Keys:

- ``cc:replay:{rNN}:<len(iss)>:<iss>:<jti>`` — first use of the code, shared with plain
  verification (``app.scenes.atomic.replay_key_for``), kept until the code's expiry (EXAT);
- ``cc:metro:trip:{rNN}:<sub>`` — the citizen's one open trip, a hash ``{station, entered_at,
  jti}``. It is per pseudonym, not per code: a citizen enters with one code and leaves with a
  later one, and one key per citizen means a citizen can never hold two open trips.

``{rNN}`` is the rider's shard (``app.store.slots``): both keys, the shard's record stream and
its trust generation copy are in one Redis Cluster slot.

The same script appends the scan record (``app.records``). The script runs atomically, so of two
gates racing with the same code, or with two codes of the same citizen, exactly one sees the
state the other left. Whether a trip is still open is judged on the scan clock (``ctx.now``,
passed in), not on Redis's clock, so time can be injected; the key's TTL (expiry plus a margin) only cleans up trips nobody closed.

Every outcome but ``replayed`` spends the code, passback and no-entry included: the gate
answered this code, and a code that could be retried after a deny could be retried by whoever
saw it over the rider's shoulder at the next gate. A Redis failure spends nothing (``Degraded``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import redis

from app.codes.decision import CodeClaims
from app.records.sink import ScanRecords
from app.scenes.atomic import replay_expiry, replay_key_for
from app.store.slots import BRACED, shard_of

TRIP_PREFIX = "cc:metro:trip:"
CLEANUP_MARGIN_SECONDS = 3600

Outcome = Literal["entered", "exited", "passback", "no_entry", "replayed"]

# Behind app.records.stream.PRELUDE. KEYS[3]: replay key, KEYS[4]: trip key.
# ARGV[4]: direction, [5]: station, [6]: scan time (s, decimal string), [7]: trip expiry (s),
#       [8]: replay EXAT (s), [9]: trip key TTL (s), [10]: jti.
# Returns {outcome, station, entered_at}: for exited/passback the open trip's entry, for entered
# the new trip. The scan record of an exit carries the entry (``from``, ``entered_at``): whoever
# drains it prices the fare exactly as the exit gate did (``app.records.complete``).
_TRIP_SCRIPT = """
if redis.call('EXISTS', KEYS[3]) == 1 then
  record('replayed')
  return {'replayed'}
end
local now = tonumber(ARGV[6])
local trip = redis.call('HMGET', KEYS[4], 'station', 'entered_at')
local open = trip[1] and trip[2] and now - tonumber(trip[2]) < tonumber(ARGV[7])
redis.call('SET', KEYS[3], '1', 'EXAT', ARGV[8])
if ARGV[4] == 'entry' then
  if open then
    record('passback')
    return {'passback', trip[1], trip[2]}
  end
  redis.call('DEL', KEYS[4])
  redis.call('HSET', KEYS[4], 'station', ARGV[5], 'entered_at', ARGV[6], 'jti', ARGV[10])
  redis.call('EXPIRE', KEYS[4], ARGV[9])
  record('ok')
  return {'entered', ARGV[5], ARGV[6]}
end
redis.call('DEL', KEYS[4])
if open then
  record('ok', 'from', trip[1], 'entered_at', trip[2])
  return {'exited', trip[1], trip[2]}
end
record('no_entry')
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
    return f"{TRIP_PREFIX}{BRACED[shard_of(sub)]}:{sub}"


class TripStore:
    """Opens and closes trips; ``expiry_seconds`` is how long an entry stays open."""

    def __init__(self, client: "redis.Redis[bytes]", *, expiry_seconds: int, leeway: int,
                 records: ScanRecords | None = None) -> None:
        if type(expiry_seconds) is not int or expiry_seconds <= 0:
            raise ValueError("trip expiry must be a positive number of seconds")
        self.client = client
        self.expiry_seconds = expiry_seconds
        self.leeway = leeway
        self.records = records or ScanRecords(client, leeway=leeway)
        self._script = self.records.script(_TRIP_SCRIPT, "metro.trip")

    def enter(self, claims: CodeClaims, station: str, now: float, rec: str) -> TripResult:
        """Open a trip unless one is open (``passback``); ``rec`` is the scan's record draft.
        Raises ``Degraded`` or ``TrustMoved``."""
        return self._run("entry", claims, station, now, rec)

    def exit(self, claims: CodeClaims, station: str, now: float, rec: str) -> TripResult:
        """Close the open trip (``exited``, with its entry) or answer ``no_entry``. Raises
        ``Degraded`` or ``TrustMoved``."""
        return self._run("exit", claims, station, now, rec)

    def open_trip(self, sub: str, now: float) -> Trip | None:
        """The citizen's open, unexpired trip, if any (a read for service counters and tests)."""
        station, entered_at = self.client.hmget(trip_key(sub), ["station", "entered_at"])
        if station is None or entered_at is None or now - float(entered_at) >= self.expiry_seconds:
            return None
        return Trip(station.decode(), float(entered_at))

    def _run(self, direction: str, claims: CodeClaims, station: str, now: float, rec: str) -> TripResult:
        reply = self._script(
            [replay_key_for(claims), trip_key(claims.sub)],
            [direction, station, repr(float(now)), self.expiry_seconds,
             replay_expiry(claims, self.leeway), self.expiry_seconds + CLEANUP_MARGIN_SECONDS,
             claims.jti], rec, shard=shard_of(claims.sub))
        outcome, *rest = [part.decode() if isinstance(part, bytes) else str(part) for part in reply]
        trip = Trip(rest[0], float(rest[1])) if len(rest) == 2 else None
        return TripResult(outcome, trip)  # type: ignore[arg-type]
