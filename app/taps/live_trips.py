"""Offline metro taps meet the online trip state in Redis (``app.scenes.metro.trips``' keys).

- An offline entry that is the newest thing known of its rider, and still within the trip limit,
  opens the rider's trip in Redis unless a trip entered at the same time or later is there: a
  later *online* exit then closes it and charges the normal online fare.
- An offline exit closes the rider's trip in Redis if that trip was entered before the exit: the
  rider left, so their next online entry must not be a passback.

Each is one Lua script (atomic against the gates' own script). Both run after the upload's
transaction committed; a Redis failure is logged and changes nothing stored.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

import redis

from app.codes.errors import Degraded
from app.scenes.atomic import AtomicScript
from app.scenes.metro.trips import CLEANUP_MARGIN_SECONDS, trip_key

log = logging.getLogger(__name__)

# KEYS: trip key. ARGV: station, entered_at (s), jti, TTL (s).
_OPEN = """
local entered = redis.call('HGET', KEYS[1], 'entered_at')
if entered and tonumber(entered) >= tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'station', ARGV[1], 'entered_at', ARGV[2], 'jti', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

# KEYS: trip key. ARGV: exit time (s).
_CLOSE = """
local entered = redis.call('HGET', KEYS[1], 'entered_at')
if entered and tonumber(entered) <= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class OpenTrip:
    sub: str
    station: str
    entered_at: datetime
    jti: str


@dataclass(frozen=True)
class CloseTrip:
    sub: str
    exited_at: datetime


class LiveTrips:
    """Applies open/close steps to the online trip state."""

    def __init__(self, client: "redis.Redis[bytes]", *, expiry_seconds: int) -> None:
        self.expiry_seconds = expiry_seconds
        self._open = AtomicScript(client, _OPEN, "taps.open_trip")
        self._close = AtomicScript(client, _CLOSE, "taps.close_trip")

    def apply(self, steps: Iterable[OpenTrip | CloseTrip], now: float) -> int:
        """Closes first, then opens; returns how many changed Redis. Never raises for Redis."""
        ordered = sorted(steps, key=lambda step: isinstance(step, OpenTrip))
        changed = 0
        try:
            for step in ordered:
                if isinstance(step, CloseTrip):
                    changed += int(self._close(keys=[trip_key(step.sub)],
                                               args=[repr(step.exited_at.timestamp())]))
                else:
                    entered = step.entered_at.timestamp()
                    ttl = max(1, int(entered + self.expiry_seconds + CLEANUP_MARGIN_SECONDS - now))
                    changed += int(self._open(keys=[trip_key(step.sub)],
                                              args=[step.station, repr(entered), step.jti, ttl]))
        except Degraded:
            log.warning("metro trip state not updated from tap upload", extra={"steps": len(ordered)})
        return changed
