"""Metro: an entry gate opens a trip, an exit gate closes it and charges the shortest-path fare.

- entry with no open trip → accept ``{trip: {station, entered_at}}``; with one → ``passback``;
- exit with an open trip → accept ``{fare: {amount_cents, category, from, to}}``; without →
  ``no_entry`` (the rider goes to the service counter);
- a trip left open longer than ``trip_expiry_seconds`` counts as no trip: the next exit is
  ``no_entry``, the next entry opens a fresh trip.

Trip state is per citizen pseudonym and changes in the same Lua script that claims the code
(``trips.py``, which also says why passback and no-entry spend the code and ``degraded`` does
not). The gate's station is ``site.station``, a name in the network file.

Two answers are about the *gate*, not the rider, and spend nothing, so the rider can use the same
code at a working gate:

- no ``direction``: deny ``malformed``. A gate that does not say which way it faces is
  misconfigured; guessing "entry" would make every exit through it a passback and leave open
  trips behind, silently corrupting state that a loud deny at commissioning never corrupts.
- a station not in the network: deny ``degraded`` (the fail-closed "use the staffed lane"
  answer); an unknown station can neither open a priceable trip nor price one.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping

from app.city import load
from app.codes.decision import Decision
from app.codes.errors import CodeError, Degraded, NoEntry, Passback, Replayed
from app.scenes.base import ScanContext
from app.scenes.metro.fares import FareTable
from app.scenes.metro.network import Network, UnknownStation, default_network
from app.scenes.metro.trips import Trip, TripStore

if TYPE_CHECKING:
    from app.runtime import Runtime

__all__ = ["MetroScene", "build", "trip_expiry_seconds"]

DIRECTIONS = ("entry", "exit")


class MetroScene:
    """Entry and exit gates over one network, one fare table and one trip store."""

    kind = "metro"

    def __init__(self, network: Network, fares: FareTable, trips: TripStore) -> None:
        self.network = network
        self.fares = fares
        self.trips = trips

    def decide(self, checked: Decision, ctx: ScanContext) -> Decision:
        claims = checked.claims
        assert claims is not None, "scenes receive accepted checks only"
        station = ctx.site.get("station", "")
        if ctx.direction not in DIRECTIONS:
            return Decision.deny("malformed", claims,
                                 detail="metro gate sent no direction (entry or exit); code not used")
        if station not in self.network:
            return Decision.deny("degraded", claims,
                                 detail=f"gate station {station!r} is not in the metro network")
        try:
            if ctx.direction == "entry":
                result = self.trips.enter(claims, station, ctx.now)
            else:
                result = self.trips.exit(claims, station, ctx.now)
        except Degraded as down:  # nothing was recorded: the code stays unused
            return Decision.from_error(down, claims)
        if result.outcome == "entered":
            return checked.with_data(trip={"station": station, "entered_at": _rfc3339(ctx.now)})
        if result.outcome == "exited":
            assert result.trip is not None
            return checked.with_data(fare=self._fare(result.trip, station, claims.ent))
        if result.outcome == "passback":
            assert result.trip is not None
            error: CodeError = Passback(f"open trip from {result.trip.station} at "
                                        f"{_rfc3339(result.trip.entered_at)}")
        elif result.outcome == "no_entry":
            error = NoEntry("no open trip for this rider")
        else:
            error = Replayed(claims.iss, claims.jti)
        return Decision.from_error(error, claims)

    def _fare(self, trip: Trip, exit_station: str, entitlements: tuple[str, ...]) -> dict[str, Any]:
        try:
            stops: int | None = self.network.hops(trip.station, exit_station)
        except UnknownStation:  # the entry station left the network file since: charge the cap
            stops = None
        fare = self.fares.quote(stops, entitlements)  # ent is already stripped of revocations
        return {"amount_cents": fare.amount_cents, "category": fare.category,
                "from": trip.station, "to": exit_station}


def _rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


def trip_expiry_seconds(config: Mapping[str, Any]) -> int:
    """``trip_expiry_seconds`` from ``metro.json`` (default four hours)."""
    value = config.get("trip_expiry_seconds", 4 * 3600)
    if type(value) is not int or value <= 0:
        raise ValueError("trip_expiry_seconds must be a positive integer")
    return value


def build(rt: Runtime) -> MetroScene:
    config = load("metro")
    trips = TripStore(rt.redis, expiry_seconds=trip_expiry_seconds(config),
                      leeway=rt.settings.clock_leeway_seconds)
    return MetroScene(default_network(), FareTable.from_config(config.get("fares")), trips)
