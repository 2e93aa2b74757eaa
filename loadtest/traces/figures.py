"""How big the morning rush is: the city's figures (DESIGN.md) and the ridership assumptions
derived from them, turned into exact counts for a given ``--scale``.

Everything marked ASSUMPTION is an estimate for a city of Qingdao's size (≈ 10 million people),
not a published figure; loadtest/traces/README.md lists them with their reasoning. Counts are
rounded, never sampled, so a trace of a given scale always has the same size (the tests check
these numbers against the README's table).
"""
from __future__ import annotations

from dataclasses import dataclass

WINDOW_S = 7200  # 07:00–09:00
PEAK_S = 3600  # 08:00
SCENIC_OPEN_S = 3600  # ASSUMPTION: the three spots open their turnstiles at 08:00
HALLS_OPEN_S = 5400  # ASSUMPTION: service halls and township centres open at 08:30

# The city (DESIGN.md).
BUSES = 10_000
BUS_LINES = 923
METRO_STATIONS = 150  # 7 lines; the stations themselves come from app/city/data/metro.json

# ASSUMPTIONS: ridership and fleet detail.
BUS_BOARDINGS_PER_DAY = 2_000_000
METRO_TRIPS_PER_DAY = 1_200_000
BUS_RUSH_SHARE = 0.22  # share of a weekday's bus boardings made 07:00–09:00
METRO_RUSH_SHARE = 0.26  # share of a weekday's metro entries made 07:00–09:00
FEEDER_SHARE = 0.20  # metro riders who come to the station by bus (a bus tap first)
BUS_TRANSFER_SHARE = 0.10  # bus-only riders who change to a second bus
GATES_PER_STATION = 12  # metro gates (terminals) per station; each takes entries and exits
OFFLINE_BUS_SHARE = 0.05  # buses whose reader decides offline this morning (depots, tunnels)
STUDENT_SHARE = 0.12  # commuters holding a student card (half-price bus and metro)
SENIOR_SHARE = 0.06  # commuters holding a senior card (free)
DUPLICATE_TAP_SHARE = 0.005  # bus taps followed by a second tap on the same bus (duplicate_tap)
PASSBACK_SHARE = 0.002  # metro entries followed by a second entry (passback)
NO_ENTRY_SHARE = 0.001  # metro riders who exit without a recorded entry (no_entry)
SCENIC_VISITORS = {"laoshan": 1_200, "zhanshan_temple": 100, "jimo_old_town": 500}  # 08:00–09:00
TURNSTILES = {"laoshan": 20, "zhanshan_temple": 4, "jimo_old_town": 10}
SCENIC_SENIOR_SHARE = 0.10  # admitted free by a senior card
SCENIC_WALK_UP_SHARE = 0.05  # come without a reservation (no_reservation)
SCENIC_RESCAN_SHARE = 0.02  # scan again after being admitted (already_admitted)
HALL_TICKETS = {"city": 600, "district": 200, "township": 25}  # per hall, 08:30–09:00


def _n(value: float) -> int:
    return int(round(value))


def _at_least_one(value: float) -> int:
    """Rare events and fixed places stay in even the smallest trace, so it exercises them."""
    return max(1, _n(value))


@dataclass(frozen=True)
class Plan:
    """Exact counts for one scale (see the README's table)."""

    scale: float
    buses: int
    bus_lines: int
    offline_buses: int
    gates_per_station: int
    turnstiles: dict[str, int]
    metro_trips: int
    feeder_riders: int
    bus_only_riders: int
    bus_transfer_riders: int
    duplicate_taps: int
    passbacks: int
    no_entry_riders: int
    scenic_visitors: dict[str, int]
    scenic_walk_ups: int
    scenic_rescans: int
    hall_tickets: dict[str, int]  # by hall level: city, district, township

    @property
    def bus_taps(self) -> int:
        """Charged bus taps (duplicates not counted)."""
        return self.feeder_riders + self.bus_only_riders + self.bus_transfer_riders

    @classmethod
    def at(cls, scale: float) -> Plan:
        if not 0 < scale <= 1:
            raise ValueError("scale must be in (0, 1]")
        buses = _at_least_one(BUSES * scale)
        metro_trips = _at_least_one(METRO_TRIPS_PER_DAY * METRO_RUSH_SHARE * scale)
        feeders = _n(metro_trips * FEEDER_SHARE)
        other_taps = max(1, _n(BUS_BOARDINGS_PER_DAY * BUS_RUSH_SHARE * scale) - feeders)
        bus_only = max(1, _n(other_taps / (1 + BUS_TRANSFER_SHARE)))
        visitors = {spot: _at_least_one(n * scale) for spot, n in SCENIC_VISITORS.items()}
        return cls(
            scale=scale, buses=buses, bus_lines=min(BUS_LINES, buses),
            offline_buses=_at_least_one(buses * OFFLINE_BUS_SHARE) if buses > 1 else 0,
            gates_per_station=_at_least_one(GATES_PER_STATION * scale),
            turnstiles={spot: _at_least_one(n * scale) for spot, n in TURNSTILES.items()},
            metro_trips=metro_trips, feeder_riders=feeders, bus_only_riders=bus_only,
            bus_transfer_riders=other_taps - bus_only,
            duplicate_taps=_at_least_one((feeders + other_taps) * DUPLICATE_TAP_SHARE),
            passbacks=_at_least_one(metro_trips * PASSBACK_SHARE),
            no_entry_riders=_at_least_one(metro_trips * NO_ENTRY_SHARE),
            scenic_visitors=visitors,
            scenic_walk_ups=_at_least_one(sum(visitors.values()) * SCENIC_WALK_UP_SHARE),
            scenic_rescans=_at_least_one(sum(visitors.values()) * SCENIC_RESCAN_SHARE),
            hall_tickets={level: n for level, n in HALL_TICKETS.items()},
        )

    def hall_total(self, halls_by_level: dict[str, int]) -> dict[str, int]:
        """Tickets per level: per-hall figure × number of halls × scale, at least one per level."""
        return {level: _at_least_one(self.hall_tickets[level] * halls_by_level.get(level, 0)
                                     * self.scale) for level in self.hall_tickets}
