"""What a correct server answers to each trace event, worked out from the rider's earlier events
alone — the scene rules of API.md/README, restated on trace time to check a trace's ``expect``
fields (the generator sets them by construction; this recomputes them independently).

Bus: a second tap by the same rider on the same vehicle within the duplicate-tap window of the
tap that paid is ``duplicate_tap``. Metro: an entry with a trip open is ``passback``; an exit with
none is ``no_entry``. Scenic: a reservation for the spot or a senior card admits, once per spot.
Hall: a number is always given (every trace rider is a fresh citizen, once per hall and service).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from app.city import load

if TYPE_CHECKING:
    from loadtest.traces.format import Event

FREE_AT_SCENIC = "senior_card"


class Expectation:
    """Scene state per rider, advanced one event at a time in trace order."""

    def __init__(self, credentials: dict[str, list[int]]) -> None:
        self.window = float(load("bus")["duplicate_tap_window_seconds"])
        self.held = {name: set(riders) for name, riders in credentials.items()}
        self.charged: dict[tuple[int, str], float] = {}  # (rider, bus terminal) → last charged tap
        self.open_trip: set[int] = set()
        self.admitted: set[tuple[int, str]] = set()
        self.tickets: set[tuple[int, str, str]] = set()

    def outcome(self, event: Event, spot: str | None = None) -> str:
        """The answer to ``event`` (``accept`` or a deny reason); ``spot``: the scenic terminal's."""
        rider = event.rider
        if event.scene == "bus":
            last = self.charged.get((rider, event.terminal))
            if last is not None and event.t - last < self.window:
                return "duplicate_tap"
            self.charged[(rider, event.terminal)] = event.t
            return "accept"
        if event.scene == "metro":
            if event.direction == "entry":
                if rider in self.open_trip:
                    return "passback"
                self.open_trip.add(rider)
                return "accept"
            if rider not in self.open_trip:
                return "no_entry"
            self.open_trip.discard(rider)
            return "accept"
        if event.scene == "scenic":
            if rider not in self.held.get(f"scenic_reservation:{spot}", ()) \
                    and rider not in self.held.get(FREE_AT_SCENIC, ()):
                return "no_reservation"
            if (rider, spot) in self.admitted:
                return "already_admitted"
            self.admitted.add((rider, spot))
            return "accept"
        key = (rider, event.terminal, event.service or "")
        if key in self.tickets:
            return "existing"  # not in the trace vocabulary: the generator never sends one twice
        self.tickets.add(key)
        return "accept"
