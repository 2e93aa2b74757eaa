"""Random sequences of metro scans against the real scene and real Redis, checked against a model.

The model is a few dictionaries: each citizen's open trip (station, entered at), the codes minted
and not yet shown, the codes already shown. Fares come from an independent BFS over the file.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from flask import Flask
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, invariant, precondition, rule,
                                 run_state_machine_as_test)

from app.city import load
from app.scenes.metro import MetroScene
from app.scenes.metro.fares import FareTable
from app.scenes.metro.trips import TRIP_PREFIX, trip_key
from metro_support import ScanClock, flush_metro_state, mint_code, reference_hops, runtime_of

STATIONS = ("五四广场", "李村", "青岛北站", "台东", "王家港", "鳌山湾")
CITIZENS = ((), ("stu",), ("sen", "stu"))  # entitlements of citizen 0, 1, 2
EXPIRY = load("metro")["trip_expiry_seconds"]
FARES = FareTable.from_config(load("metro")["fares"])
HOPS = reference_hops()
_examples = itertools.count()


@dataclass(frozen=True)
class Shown:
    code: str
    citizen: int


class MetroMachine(RuleBasedStateMachine):
    def __init__(self, app: Flask) -> None:
        super().__init__()
        self.app = app
        self.rt = runtime_of(app)
        flush_metro_state(self.rt.redis)
        self.scene = self.rt.scans.scenes["metro"]
        assert isinstance(self.scene, MetroScene)
        self.clock = ScanClock()
        self.rt.scans.clock = self.clock
        run = next(_examples)
        self.subs = [f"p_sm{run}c{i}" for i in range(len(CITIZENS))]
        self.unshown: list[Shown] = []
        self.shown: list[Shown] = []
        self.accepted: set[str] = set()
        self.open: dict[int, tuple[str, float]] = {}  # citizen → (station, entered_at)

    # -- model ---------------------------------------------------------------------------------
    def open_trip(self, citizen: int) -> tuple[str, float] | None:
        trip = self.open.get(citizen)
        if trip is None or self.clock.now - trip[1] >= EXPIRY:
            return None
        return trip

    def code_for(self, citizen: int, kept: int | None) -> Shown:
        """A code minted earlier and not shown yet (``kept``), or else a fresh one for ``citizen``."""
        if kept is not None and self.unshown:
            return self.unshown.pop(kept % len(self.unshown))
        return Shown(mint_code(self.app, self.subs[citizen], CITIZENS[citizen]), citizen)

    def show(self, shown: Shown, station: str, direction: str) -> dict:  # type: ignore[type-arg]
        ctx = self.rt.scans.context("trm_state_machine", "metro", {"station": station}, direction)
        decision = self.rt.scans.scan(shown.code, ctx)
        self.shown.append(shown)
        if decision.accepted:
            assert shown.code not in self.accepted, "a code was accepted twice"
            self.accepted.add(shown.code)
        return {"reason": decision.reason, **decision.data}

    # -- rules ---------------------------------------------------------------------------------
    @rule(citizen=st.integers(0, len(CITIZENS) - 1))
    def mint_and_keep(self, citizen: int) -> None:
        self.unshown.append(Shown(mint_code(self.app, self.subs[citizen], CITIZENS[citizen]), citizen))

    @rule(citizen=st.integers(0, len(CITIZENS) - 1), kept=st.none() | st.integers(0, 100),
          station=st.sampled_from(STATIONS))
    def entry(self, citizen: int, kept: int | None, station: str) -> None:
        shown = self.code_for(citizen, kept)
        trip = self.open_trip(shown.citizen)
        answer = self.show(shown, station, "entry")
        if trip is not None:
            assert answer["reason"] == "passback", answer
        else:
            assert answer["reason"] == "ok", answer
            assert answer["trip"]["station"] == station
            self.open[shown.citizen] = (station, self.clock.now)

    @rule(citizen=st.integers(0, len(CITIZENS) - 1), kept=st.none() | st.integers(0, 100),
          station=st.sampled_from(STATIONS))
    def exit(self, citizen: int, kept: int | None, station: str) -> None:
        shown = self.code_for(citizen, kept)
        trip = self.open_trip(shown.citizen)
        answer = self.show(shown, station, "exit")
        self.open.pop(shown.citizen, None)
        if trip is None:
            assert answer["reason"] == "no_entry", answer
            return
        assert answer["reason"] == "ok", answer
        expected = FARES.quote(HOPS[trip[0]][station], CITIZENS[shown.citizen])
        assert answer["fare"] == {"amount_cents": expected.amount_cents, "category": expected.category,
                                  "display": "full" if expected.category == "full" else "concession",
                                  "from": trip[0], "to": station}
        assert answer["fare"]["amount_cents"] >= 0

    @precondition(lambda self: self.shown)
    @rule(pick=st.integers(0, 100), station=st.sampled_from(STATIONS),
          direction=st.sampled_from(["entry", "exit"]))
    def replay(self, pick: int, station: str, direction: str) -> None:
        old = self.shown[pick % len(self.shown)]
        ctx = self.rt.scans.context("trm_state_machine", "metro", {"station": station}, direction)
        assert self.rt.scans.scan(old.code, ctx).reason == "replayed"

    @rule(seconds=st.sampled_from([1, 60, 1800, 3600, EXPIRY - 1, EXPIRY, EXPIRY + 1]))
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds)

    # -- invariants ----------------------------------------------------------------------------
    @invariant()
    def store_holds_exactly_the_models_open_trips(self) -> None:
        for citizen, sub in enumerate(self.subs):
            stored = self.scene.trips.open_trip(sub, self.clock.now)
            expected = self.open_trip(citizen)
            assert (None if stored is None else (stored.station, stored.entered_at)) == expected

    @invariant()
    def trip_state_is_one_key_per_citizen(self) -> None:
        keys = {key.decode() for key in self.rt.redis.scan_iter(match=f"{TRIP_PREFIX}*", count=1000)}
        assert keys <= {trip_key(sub) for sub in self.subs}


def test_metro_scene_agrees_with_its_model(app: Flask) -> None:
    class Machine(MetroMachine):
        def __init__(self) -> None:
            super().__init__(app)

    run_state_machine_as_test(Machine, settings=settings(max_examples=50, stateful_step_count=30,
                                                         deadline=None))
