"""Pairing and pricing rules on their own, and the property that matters: a rider's settled trips
do not depend on the order and batches in which two gates' taps arrive."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.scenes.metro.fares import FareTable
from app.scenes.metro.network import default_network
from app.city import load
from app.taps import TapDesk
from app.taps.geo import distance_km, place_of, station_coordinates
from app.taps.settlement import Tariff
from app.taps.timeline import Event, pair, settled
from tests.helpers import dead_redis
from tests.taps.support import (T0, forget_uploads, gate, record, rider, runtime_of, trips,
                                uploaded)

EXPIRY = timedelta(hours=4)
NOON = datetime(2026, 12, 1, 4, 0, tzinfo=timezone.utc)


def _event(direction: str, minutes: float, tap_id: int, station: str = "五四广场") -> Event:
    return Event(direction, NOON + timedelta(minutes=minutes), station, "trm", tap_id=tap_id)


def test_an_exit_closes_only_the_entry_right_before_it_within_the_trip_limit() -> None:
    e1, e2, x1 = _event("entry", 0, 1), _event("entry", 10, 2), _event("exit", 30, 3)
    late = _event("exit", 30 + 4 * 60, 4)
    pairings = pair([late, x1, e2, e1], EXPIRY)
    assert [(p.entry and p.entry.tap_id, p.exit and p.exit.tap_id) for p in pairings] == [
        (1, None), (2, 3), (None, 4)]
    now = NOON + timedelta(hours=9)
    assert [p.key for p in settled(pairings, EXPIRY, now)] == ["t1>-", "t2>t3", "->t4"]
    assert [p.key for p in settled(pairings, EXPIRY, NOON + timedelta(hours=3))] == ["t2>t3"]


def test_an_entry_and_exit_at_the_same_instant_pair() -> None:
    assert [p.key for p in pair([_event("exit", 0, 2), _event("entry", 0, 1)], EXPIRY)] == ["t1>t2"]


def test_settlement_prices_with_the_online_fare_table_and_network() -> None:
    tariff = Tariff.from_city()
    fares = FareTable.from_config(load("metro")["fares"])
    journeys = (("五四广场", "李村", ("stu",)), ("王家港", "东郭庄", ()), ("台东", "台东", ("sen",)))
    for a, b, ent in journeys:
        entry = Event("entry", NOON, a, "t1", tap_id=1)
        leave = Event("exit", NOON + timedelta(minutes=40), b, "t2", tap_id=2, ent=ent)
        expected = fares.quote(default_network().hops(a, b), ent)
        assert tariff.price(pair([entry, leave], EXPIRY)[0]) == (
            expected.amount_cents, expected.category, "settlement")
    ghost = Event("exit", NOON, "不存在站", "t2", tap_id=2)
    assert tariff.price(pair([Event("entry", NOON, "台东", "t1", tap_id=1), ghost], EXPIRY)[0])[0] == 700


def test_every_station_has_coordinates_and_neighbours_are_a_few_km_apart() -> None:
    network, places = default_network(), station_coordinates()
    assert set(places) == set(network.stations)
    for station in network.stations:
        for neighbour in network.neighbours(station):
            assert 0.3 < distance_km(places[station], places[neighbour]) < 10, (station, neighbour)
    assert place_of("metro", {"station": "台东"}, None) == places["台东"]
    assert place_of("bus", {"vehicle": "x"}, None) is None
    assert place_of("bus", {"vehicle": "x"}, (36.0, 120.0)) == (36.0, 120.0)


def test_an_upload_is_stored_even_when_redis_is_down(app: Flask, client: FlaskClient) -> None:
    station, someone = gate(client, "五四广场"), rider(app, client)
    rt = runtime_of(app)
    desk = TapDesk(rt.db, dead_redis(), rt.settings)
    from app.taps.record import TapRecord, parse_scanned_at

    entry = TapRecord(seq=1, jti="j1", sub=someone.sub, iss="cc", scanned_at=parse_scanned_at(T0 - 60),
                      decision="accept", reason="ok", direction="entry")
    answer = desk.upload(rt.terminals.get(station.terminal_id), [entry], T0)
    assert (answer.stored, answer.duplicates) == (1, 0)
    assert rt.scans.scenes["metro"].trips.open_trip(someone.sub, T0) is None


_journeys = st.lists(st.tuples(st.sampled_from(["entry", "exit"]), st.integers(0, 14 * 60),
                               st.booleans()), min_size=1, max_size=14)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(journey=_journeys, seed=st.integers(0, 2**16))
@pytest.mark.slow
def test_settled_trips_do_not_depend_on_arrival_order_or_batches(
        app: Flask, client: FlaskClient, redis_client: "redis.Redis[bytes]",
        journey: list[tuple[str, int, bool]], seed: int) -> None:
    """A rider's taps at two gates over 14 hours ending two hours ago, uploaded once cleanly per
    gate and once shuffled, cut and partly resent: the same trips, fares and pending taps."""
    gates = _gates(app, client)
    someone = _rider(app, client)
    records: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    for n, (direction, minute, at_a) in enumerate(journey, start=1):
        records[at_a].append(record(n, someone.sub, T0 - 16 * 3600 + minute * 60 + n,
                                    direction=direction, ent=["stu"] if n % 3 else []))
    for at_a, batch in records.items():
        if batch:
            uploaded(client, gates[at_a], batch)
    clean = _trip_state(app)

    forget_uploads(app)
    redis_client.flushdb()
    shuffler = random.Random(seed)
    arrivals = [(at_a, r) for at_a, batch in records.items() for r in batch]
    arrivals += shuffler.sample(arrivals, len(arrivals) // 2)  # resends
    shuffler.shuffle(arrivals)
    while arrivals:
        cut = shuffler.randint(1, len(arrivals))
        chunk, arrivals = arrivals[:cut], arrivals[cut:]
        for at_a in (True, False):
            sent = [r for a, r in chunk if a is at_a]
            if sent:
                uploaded(client, gates[at_a], sent)
    assert _trip_state(app) == clean


def _gates(app: Flask, client: FlaskClient) -> dict[bool, Any]:
    if "taps.gates" not in app.config:
        app.config["taps.gates"] = {True: gate(client, "五四广场"), False: gate(client, "李村")}
    return app.config["taps.gates"]  # type: ignore[no-any-return]


def _rider(app: Flask, client: FlaskClient) -> Any:
    forget_uploads(app)
    return rider(app, client)


def _trip_state(app: Flask) -> list[tuple[Any, ...]]:
    return sorted((t.status, t.entry_terminal_id, t.entry_seq, t.exit_terminal_id, t.exit_seq,
                   t.amount_cents, t.category) for t in trips(app))
