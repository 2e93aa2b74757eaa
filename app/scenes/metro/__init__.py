"""Metro: an entry gate opens a trip, an exit gate closes it and charges the shortest-path fare.

- entry with no open trip → accept ``{trip: {station, entered_at}}``; with one → ``passback``;
- exit with an open trip → accept ``{fare: {amount_cents, category, display, from, to}}``; without →
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
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from app.city import load
from app.codes.decision import Decision
from app.codes.errors import CodeError, Degraded, NoEntry, Passback, Replayed
from app.records.sink import ScanRecords
from app.records.stream import draft
from app.scenes.base import ScanContext, fare_display
from app.scenes.metro.fares import FareTable
from app.scenes.metro.network import Network, UnknownStation, default_network
from app.scenes.metro.trips import TripStore

if TYPE_CHECKING:
    import redis

__all__ = ["MetroScene", "build", "trip_expiry_seconds"]

DIRECTIONS = ("entry", "exit")


class MetroScene:
    """Entry and exit gates over one network, one fare table and one trip store."""

    kind = "metro"

    def __init__(self, network: Network, fares: FareTable, trips: TripStore,
                 records: ScanRecords | None = None) -> None:
        self.network = network
        self.fares = fares
        self.trips = trips
        self.records = records or getattr(trips, "records", None)

    def decide(self, checked: Decision, ctx: ScanContext) -> Decision:
        claims = checked.claims
        assert claims is not None, "scenes receive accepted checks only"
        station = ctx.site.get("station", "")
        if ctx.direction not in DIRECTIONS:
            return self._refuse(ctx, Decision.deny(
                "malformed", claims, detail="metro gate sent no direction (entry or exit); code not used"))
        if station not in self.network:
            return self._refuse(ctx, Decision.deny(
                "degraded", claims, detail=f"gate station {station!r} is not in the metro network"))
        try:
            if ctx.direction == "entry":
                trip = {"station": station, "entered_at": _rfc3339(ctx.now)}
                result = self.trips.enter(claims, station, ctx.now, draft(ctx, claims, acc={"trip": trip}))
            else:
                rec = draft(ctx, claims, complete={"to": station, "ent": list(claims.ent)})
                result = self.trips.exit(claims, station, ctx.now, rec)
        except Degraded as down:  # nothing was recorded: the code stays unused
            return Decision.from_error(down, claims)
        if result.outcome == "entered":
            return checked.with_data(trip=trip)
        if result.outcome == "exited":
            assert result.trip is not None
            return checked.with_data(fare=self.exit_fare(result.trip.station, station, claims.ent))
        if result.outcome == "passback":
            assert result.trip is not None
            error: CodeError = Passback(f"open trip from {result.trip.station} at "
                                        f"{_rfc3339(result.trip.entered_at)}")
        elif result.outcome == "no_entry":
            error = NoEntry("no open trip for this rider")
        else:
            error = Replayed(claims.iss, claims.jti)
        return Decision.from_error(error, claims)

    def exit_fare(self, entry_station: str, exit_station: str, entitlements: Sequence[str]) -> dict[str, Any]:
        """The fare of a trip; pure, so the record writer prices a drained exit record alike."""
        try:
            stops: int | None = self.network.hops(entry_station, exit_station)
        except UnknownStation:  # the entry station left the network file since: charge the cap
            stops = None
        fare = self.fares.quote(stops, tuple(entitlements))  # ent is already stripped of revocations
        return {"amount_cents": fare.amount_cents, "category": fare.category,
                "display": fare_display(fare.category), "from": entry_station, "to": exit_station}

    def _refuse(self, ctx: ScanContext, decision: Decision) -> Decision:
        """A deny about the gate, decided before the script: recorded with one XADD."""
        if self.records is not None:
            self.records.deny(ctx, decision)
        return decision


def _rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


def trip_expiry_seconds(config: Mapping[str, Any]) -> int:
    """``trip_expiry_seconds`` from ``metro.json`` (default four hours)."""
    value = config.get("trip_expiry_seconds", 4 * 3600)
    if type(value) is not int or value <= 0:
        raise ValueError("trip_expiry_seconds must be a positive integer")
    return value


def build(client: "redis.Redis[bytes]", records: ScanRecords, *, leeway: int) -> MetroScene:
    """The city's metro scene: network and fares from ``metro.json``, trips kept in ``client``."""
    config = load("metro")
    trips = TripStore(client, expiry_seconds=trip_expiry_seconds(config), leeway=leeway, records=records)
    return MetroScene(default_network(), FareTable.from_config(config.get("fares")), trips, records)


def city_fares() -> MetroScene:
    """A scene over the city's network and fares with no trip store: what the record writer needs
    to price drained exit records (``MetroScene.exit_fare``)."""
    return MetroScene(default_network(), FareTable.from_config(load("metro").get("fares")), None)  # type: ignore[arg-type]
