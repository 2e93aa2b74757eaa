"""Write a morning-rush trace (07:00–09:00) sized from the city's figures.

    .venv/bin/python -m loadtest.traces.generate --out rush.jsonl [--scale 0.01] [--seed 7]

Commutes start on a rush profile that ramps from 07:00 to a peak at 08:00 and eases off by 09:00;
the rest of a commute follows its first tap (a feeder bus, then the metro trip to its exit), so
the last exits fall somewhat after 09:00. Scenic turnstiles open at 08:00, service halls at 08:30,
each with a surge at opening. The same scale and seed always give the same file. Sizes, profile
and assumptions: loadtest/traces/README.md and ``loadtest.traces.figures``.
"""
from __future__ import annotations

import argparse
import itertools
import math
import random
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

from app.city import load
from app.hall.config import directory
from app.scenes.metro.network import default_network
from loadtest.traces import figures as f
from loadtest.traces.format import FORMAT, VERSION, Event, Trace, write

STOP_SECONDS = 150  # ASSUMPTION: 2.5 min per stop travelled, dwell included
ACCESS_SECONDS = (120, 480)  # ASSUMPTION: walking to the platform and waiting, per trip
TRIP_STOPS = 6.0  # ASSUMPTION: destinations weighted exp(-stops / 6): most trips are short
MAX_METRO_KMH = 80.0  # no trip is faster than this end to end (impossible travel stays absent)


def commute(t: float) -> float:
    """Relative intensity of commutes starting at ``t`` s after 07:00: a third of the peak at
    07:00, the peak at 08:00 (σ ≈ 28 min), back to a third by 09:00."""
    return 0.35 + math.exp(-0.5 * ((t - f.PEAK_S) / 1700.0) ** 2)


def opening(at: float, surge: float, decay_s: float) -> Callable[[float], float]:
    """Zero before ``at``; then a surge of ``surge``× the steady rate, decaying over ``decay_s``."""
    return lambda t: 0.0 if t < at else 1.0 + surge * math.exp(-(t - at) / decay_s)


class _Times:
    """Draws times in [0, WINDOW_S) from a profile, per second, with sub-second jitter."""

    def __init__(self, rng: random.Random, profile: Callable[[float], float]) -> None:
        self.rng = rng
        self.cum = list(itertools.accumulate(profile(s + 0.5) for s in range(f.WINDOW_S)))

    def draw(self) -> float:
        return self.rng.choices(range(f.WINDOW_S), cum_weights=self.cum)[0] + self.rng.random()


def _km(a: dict[str, float], b: dict[str, float]) -> float:
    la, lb = math.radians(a["lat"]), math.radians(b["lat"])
    dl = math.radians(b["lon"] - a["lon"])
    h = math.sin((lb - la) / 2) ** 2 + math.cos(la) * math.cos(lb) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


class Generator:
    """Builds one trace: terminals first, then riders and their events."""

    def __init__(self, plan: f.Plan, seed: int) -> None:
        self.plan, self.seed, self.rng = plan, seed, random.Random(seed)
        self.network = default_network()
        self.coordinates = load("metro").get("station_coordinates", {})
        self.halls = list(directory())
        self.terminals: list[dict[str, Any]] = []
        self.by_kind: dict[str, list[str]] = defaultdict(list)
        self.gates: dict[tuple[str, str], list[str]] = defaultdict(list)  # (kind, place) → ids
        self.mode: dict[str, str] = {}
        self.place: dict[str, str] = {}  # terminal → its station, spot or hall
        self.reach: dict[str, tuple[list[str], list[float]]] = {}  # origin → destinations, weights
        self.events: list[Event] = []
        self.credentials: dict[str, list[int]] = defaultdict(list)
        self.riders = 0

    def build(self) -> Trace:
        self._terminals()
        commute_times = _Times(self.rng, commute)
        self._metro(commute_times)
        self._buses(commute_times)
        self._duplicates()
        self._scenic(_Times(self.rng, opening(f.SCENIC_OPEN_S, 2.0, 600.0)))
        self._halls(_Times(self.rng, opening(f.HALLS_OPEN_S, 3.0, 300.0)))
        self.events.sort(key=lambda e: e.t)  # stable: a rider's events keep their order on a tie
        return Trace(self._header(), self.events)

    def _terminal(self, terminal: str, kind: str, site: dict[str, str], group: str,
                  mode: str = "online") -> None:
        self.terminals.append({"terminal": terminal, "kind": kind, "site": site, "mode": mode})
        self.by_kind[kind].append(terminal)
        self.gates[(kind, group)].append(terminal)
        self.mode[terminal] = mode
        self.place[terminal] = group

    def _terminals(self) -> None:
        plan = self.plan
        offline = set(self.rng.sample(range(plan.buses), plan.offline_buses))
        for j in range(plan.buses):
            line = str(1 + j * f.BUS_LINES // plan.buses)
            self._terminal(f"bus-{j + 1:05d}", "bus", {"line": line, "vehicle": f"鲁B-L{j + 1:05d}"},
                           "bus", "offline" if j in offline else "online")
        for s, station in enumerate(self.network.stations):
            for k in range(plan.gates_per_station):
                self._terminal(f"metro-{s + 1:03d}-{k + 1:02d}", "metro", {"station": station}, station)
        for spot, count in plan.turnstiles.items():
            for k in range(count):
                self._terminal(f"scenic-{spot}-{k + 1:02d}", "scenic", {"spot": spot}, spot)
        for hall in self.halls:
            self._terminal(f"hall-{hall.hall}", "hall", {"hall": hall.hall}, hall.hall)

    def _rider(self, *credentials: str) -> int:
        rider, self.riders = self.riders, self.riders + 1
        for name in credentials:
            self.credentials[name].append(rider)
        return rider

    def _commuter(self) -> int:
        draw = self.rng.random()
        if draw < f.STUDENT_SHARE:
            return self._rider("student_card")
        return self._rider("senior_card") if draw < f.STUDENT_SHARE + f.SENIOR_SHARE else self._rider()

    def _add(self, t: float, scene: str, terminal: str, rider: int, expect: str = "accept",
             **extra: str) -> Event:
        event = Event(round(t, 3), scene, terminal, rider, expect, self.mode[terminal], **extra)
        self.events.append(event)
        return event

    def _bus(self, t: float, rider: int, avoid: str | None = None) -> None:
        buses = self.by_kind["bus"]
        terminal = self.rng.choice(buses)
        while terminal == avoid and len(buses) > 1:
            terminal = self.rng.choice(buses)
        self._add(t, "bus", terminal, rider)

    def _trip_seconds(self, origin: str, destination: str) -> float:
        seconds = self.network.hops(origin, destination) * STOP_SECONDS + self.rng.uniform(*ACCESS_SECONDS)
        a, b = self.coordinates.get(origin), self.coordinates.get(destination)
        if a and b:
            seconds = max(seconds, _km(a, b) / MAX_METRO_KMH * 3600 + ACCESS_SECONDS[0])
        return seconds

    def _destination(self, origin: str) -> str:
        """Short trips are likelier: weight exp(−stops / TRIP_STOPS) (mean ≈ 8 stops, a few long
        cross-city ones)."""
        if origin not in self.reach:
            stations = [s for s in self.network.stations if s != origin]
            weights = (math.exp(-self.network.hops(origin, s) / TRIP_STOPS) for s in stations)
            self.reach[origin] = (stations, list(itertools.accumulate(weights)))
        stations, cum = self.reach[origin]
        return self.rng.choices(stations, cum_weights=cum)[0]

    def _metro(self, times: _Times) -> None:
        plan, stations = self.plan, self.network.stations
        passbacks = set(self.rng.sample(range(plan.metro_trips), plan.passbacks))
        for n in range(plan.metro_trips):
            rider, t = self._commuter(), times.draw()
            if n < plan.feeder_riders:
                self._bus(t, rider)
                t += self.rng.uniform(480, 1500)  # the bus ride to the station
            origin = self.rng.choice(stations)
            destination = self._destination(origin)
            self._add(t, "metro", self.rng.choice(self.gates["metro", origin]), rider, direction="entry")
            if n in passbacks:  # shows a code again at the entry: a second entry with a trip open
                self._add(t + self.rng.uniform(3, 20), "metro", self.rng.choice(self.gates["metro", origin]),
                          rider, "passback", direction="entry")
            self._add(t + self._trip_seconds(origin, destination), "metro",
                      self.rng.choice(self.gates["metro", destination]), rider, direction="exit")
        for _ in range(plan.no_entry_riders):  # came in through a gate that recorded nothing
            station = self.rng.choice(stations)
            self._add(times.draw(), "metro", self.rng.choice(self.gates["metro", station]), self._commuter(),
                      "no_entry", direction="exit")

    def _buses(self, times: _Times) -> None:
        for n in range(self.plan.bus_only_riders):
            rider, t = self._commuter(), times.draw()
            self._bus(t, rider)
            if n < self.plan.bus_transfer_riders:
                first = self.events[-1].terminal
                self._bus(t + self.rng.uniform(600, 1800), rider, avoid=first)

    def _duplicates(self) -> None:
        """A rider taps again on the same bus a few seconds later (the reader seemed slow)."""
        taps = [e for e in self.events if e.scene == "bus"]
        for tap in self.rng.sample(taps, min(self.plan.duplicate_taps, len(taps))):
            self._add(tap.t + self.rng.uniform(2, 60), "bus", tap.terminal, tap.rider, "duplicate_tap")

    def _scenic(self, times: _Times) -> None:
        plan = self.plan
        total = sum(plan.scenic_visitors.values())
        walk_ups = set(self.rng.sample(range(total), plan.scenic_walk_ups))
        admitted: list[Event] = []
        visitor = 0
        for spot, count in plan.scenic_visitors.items():
            for _ in range(count):
                if visitor in walk_ups:
                    rider, expect = self._rider(), "no_reservation"
                elif self.rng.random() < f.SCENIC_SENIOR_SHARE:
                    rider, expect = self._rider("senior_card"), "accept"
                else:
                    rider, expect = self._rider(f"scenic_reservation:{spot}"), "accept"
                event = self._add(times.draw(), "scenic", self.rng.choice(self.gates["scenic", spot]), rider, expect)
                if expect == "accept":
                    admitted.append(event)
                visitor += 1
        for first in self.rng.sample(admitted, min(plan.scenic_rescans, len(admitted))):
            spot = self.place[first.terminal]
            self._add(first.t + self.rng.uniform(30, 600), "scenic", self.rng.choice(self.gates["scenic", spot]),
                      first.rider, "already_admitted")

    def _halls(self, times: _Times) -> None:
        levels: dict[str, list[Any]] = defaultdict(list)
        for hall in self.halls:
            levels[hall.level].append(hall)
        totals = self.plan.hall_total({level: len(halls) for level, halls in levels.items()})
        for level, count in totals.items():
            for _ in range(count if levels[level] else 0):
                hall = self.rng.choice(levels[level])
                service = self.rng.choice(hall.services).service
                self._add(times.draw(), "hall", f"hall-{hall.hall}", self._rider(), service=service)

    def _header(self) -> dict[str, Any]:
        plan, events = self.plan, self.events
        counted = lambda scene, expect: sum(1 for e in events if e.scene == scene and e.expect == expect)  # noqa: E731
        return {
            "format": FORMAT, "version": VERSION, "seed": self.seed, "scale": plan.scale,
            "start": "07:00:00", "window_s": f.WINDOW_S, "end_s": events[-1].t if events else 0.0,
            "counts": {
                "events": len(events), "riders": self.riders,
                "terminals": {kind: len(ids) for kind, ids in self.by_kind.items()},
                "bus_taps": counted("bus", "accept"), "duplicate_taps": counted("bus", "duplicate_tap"),
                "offline_bus_taps": sum(1 for e in events if e.mode == "offline"),
                "metro_entries": sum(1 for e in events if e.direction == "entry" and e.expect == "accept"),
                "metro_exits": counted("metro", "accept") - sum(
                    1 for e in events if e.direction == "entry" and e.expect == "accept"),
                "passbacks": counted("metro", "passback"), "no_entry": counted("metro", "no_entry"),
                "scenic_admissions": counted("scenic", "accept"),
                "no_reservation": counted("scenic", "no_reservation"),
                "already_admitted": counted("scenic", "already_admitted"),
                "hall_tickets": counted("hall", "accept"),
            },
            "terminals": self.terminals,
            "riders": {"count": self.riders, "credentials": dict(self.credentials)},
        }


def generate(scale: float = 1.0, seed: int = 1) -> Trace:
    """The trace for ``scale`` and ``seed`` (the same arguments always give the same trace)."""
    return Generator(f.Plan.at(scale), seed).build()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="trace file (.jsonl, or .jsonl.gz)")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the city (0 < s <= 1)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if not 0 < args.scale <= 1:
        parser.error("--scale must be in (0, 1]")
    trace = generate(args.scale, args.seed)
    write(trace, args.out)
    counts = trace.header["counts"]
    print(f"{args.out}: {counts['events']} events, {counts['riders']} riders, "
          f"{sum(counts['terminals'].values())} terminals, last event at "
          f"+{trace.header['end_s']:.0f} s")


if __name__ == "__main__":
    main()
