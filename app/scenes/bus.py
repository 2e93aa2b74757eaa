"""Bus: one tap pays the fare of the code's cheapest entitlement; tapping again on the same
vehicle within the window answers ``duplicate_tap`` and charges nothing.

Redis keys (one Lua script claims first use, records the tap and appends the scan record to the
record stream, ``app.records``):

- ``cc:replay:{rNN}:<len(iss)>:<iss>:<jti>`` — first use of the code (shared with plain
  verification);
- ``cc:bus:tap:{rNN}:<vehicle>:<sub>`` — scan time (ms) of the citizen's last *charged* tap on
  that vehicle, expiring with the window (PX). A duplicate tap does not move it, so the window
  runs from the tap that paid.

``{rNN}`` is the rider's shard (``app.store.slots``): both keys, the shard's record stream and
its trust generation copy are in one Redis Cluster slot.

The window is judged on the scan clock (``ctx.now``), not Redis's, so time can be injected; the
key's TTL only cleans up. A pseudonym holds no ``:``, so vehicle and citizen never run together.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import redis

from app.city import load
from app.codes.decision import Decision
from app.codes.errors import Degraded
from app.records.stream import draft
from app.records.sink import ScanRecords
from app.scenes.atomic import replay_expiry, replay_key_for
from app.scenes.base import ScanContext, fare_display
from app.store.slots import BRACED, shard_of

TAP_PREFIX = "cc:bus:tap:"

# Behind app.records.stream.PRELUDE. KEYS[3]: replay key, KEYS[4]: tap key.
# ARGV[4]: replay EXAT (s), ARGV[5]: scan time (ms), ARGV[6]: window (ms).
# A duplicate tap uses the code too: it was shown and answered, and a code shown once is spent
# (otherwise a code seen over a shoulder could still be tapped elsewhere). Every outcome is
# recorded in the same script.
_TAP_SCRIPT = """
if redis.call('EXISTS', KEYS[3]) == 1 then
  record('replayed')
  return {'replayed'}
end
redis.call('SET', KEYS[3], '1', 'EXAT', ARGV[4])
local now = tonumber(ARGV[5])
local last = redis.call('GET', KEYS[4])
if last and now - tonumber(last) < tonumber(ARGV[6]) then
  record('duplicate_tap')
  return {'duplicate_tap'}
end
redis.call('SET', KEYS[4], ARGV[5], 'PX', ARGV[6])
record('ok')
return {'ok'}
"""

_DETAILS = {"replayed": "code already used", "duplicate_tap": "already charged on this vehicle"}


@dataclass(frozen=True)
class Fare:
    category: str
    amount_cents: int

    def to_dict(self) -> dict[str, Any]:
        return {"amount_cents": self.amount_cents, "category": self.category,
                "display": fare_display(self.category)}


@dataclass(frozen=True)
class FareTable:
    """The fare per category, and the window in which a second tap is not charged."""

    full: Fare
    concessions: tuple[tuple[str, Fare], ...]  # (entitlement, fare), in tie-break order
    window_seconds: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FareTable:
        """Build from ``bus.json``'s shape; a bad table fails at start-up, not at a bus door."""
        full = Fare("full", int(config["full_fare_cents"]))
        concessions = tuple((str(c["entitlement"]), Fare(str(c["category"]), int(c["amount_cents"])))
                            for c in config.get("categories", ()))
        window = int(config["duplicate_tap_window_seconds"])
        if window <= 0 or any(f.amount_cents < 0 for f in (full, *(f for _, f in concessions))):
            raise ValueError("bus fares must be >= 0 cents and the duplicate-tap window > 0 s")
        return cls(full, concessions, window)

    def fare_for(self, entitlements: Iterable[str]) -> Fare:
        """The cheapest fare the entitlements give (first listed on a tie); full fare otherwise."""
        held = set(entitlements)
        candidates = [fare for entitlement, fare in self.concessions if entitlement in held]
        return min([*candidates, self.full], key=lambda fare: fare.amount_cents)


def tap_key(vehicle: str, sub: str) -> str:
    return f"{TAP_PREFIX}{BRACED[shard_of(sub)]}:{vehicle}:{sub}"


class BusScene:
    """Charge once per citizen per vehicle per window; claim the code in the same step."""

    kind = "bus"

    def __init__(self, client: "redis.Redis[bytes]", table: FareTable, *, leeway: int,
                 records: ScanRecords | None = None) -> None:
        self.table = table
        self.leeway = leeway
        self._tap = (records or ScanRecords(client, leeway=leeway)).script(_TAP_SCRIPT, "bus.tap")

    def decide(self, checked: Decision, ctx: ScanContext) -> Decision:
        claims = checked.claims
        assert claims is not None, "scenes receive accepted checks only"
        data = {"fare": self.table.fare_for(claims.ent).to_dict()}  # ent is after revocations
        try:
            outcome = self._tap(
                [replay_key_for(claims), tap_key(ctx.site["vehicle"], claims.sub)],
                [replay_expiry(claims, self.leeway), int(ctx.now * 1000), self.table.window_seconds * 1000],
                draft(ctx, claims, acc=data), shard=shard_of(claims.sub))
        except Degraded as error:  # nothing was recorded: the code stays unused
            return Decision.from_error(error, claims)
        reason = outcome[0].decode() if isinstance(outcome[0], bytes) else str(outcome[0])
        if reason == "ok":
            return checked.with_data(**data)
        return Decision.deny(reason, claims, detail=_DETAILS.get(reason, reason))


def build(client: "redis.Redis[bytes]", records: ScanRecords, *, leeway: int) -> BusScene:
    """The city's bus scene: fares from ``bus.json``, taps kept in ``client``."""
    return BusScene(client, FareTable.from_config(load("bus")), leeway=leeway, records=records)
