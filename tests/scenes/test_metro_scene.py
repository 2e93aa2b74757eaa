"""Metro gates through POST /v1/verify with real Redis and a real database: trips, fares, passback,
no-entry, expiry, replays, and gates racing."""
from __future__ import annotations

import threading
from datetime import datetime
from typing import Any, Callable

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from app.city import load
from app.codes.decision import Decision
from app.scenes.base import fare_display
from app.scenes.metro import MetroScene
from app.scenes.metro.fares import FareTable
from app.scenes.metro.network import default_network
from app.scenes.metro.trips import TripStore, trip_key
from metro_support import gate, inject_clock, mint_code, runtime_of, scan
from tests.helpers import ADMIN, code, credential, enrol, issuer

EXPIRY = 4 * 3600


@pytest.fixture
def rider(client: FlaskClient) -> dict[str, Any]:
    return enrol(client)


def fresh(client: FlaskClient, person: dict[str, Any]) -> str:
    return code(client, person["app_token"])


def test_entry_opens_a_trip_and_exit_charges_the_shortest_path_fare(
        app: Flask, client: FlaskClient, rider: dict[str, Any]) -> None:
    clock = inject_clock(app)
    entry, exit_ = gate(client, "五四广场"), gate(client, "李村")
    entered = scan(client, entry, fresh(client, rider), "entry")
    assert (entered["decision"], entered["reason"]) == ("accept", "ok")
    assert entered["trip"]["station"] == "五四广场"
    assert datetime.fromisoformat(entered["trip"]["entered_at"]).timestamp() == clock.now
    clock.advance(25 * 60)
    left = scan(client, exit_, fresh(client, rider), "exit")
    assert (left["decision"], left["reason"]) == ("accept", "ok")
    # 11 stops on line 3: 2 yuan for six, +1 for the next five
    assert left["fare"] == {"amount_cents": 300, "category": "full", "display": "full", "from": "五四广场", "to": "李村"}
    assert "trip" not in left


def test_exit_at_the_entry_station_pays_the_minimum_fare(client: FlaskClient, rider: dict[str, Any]) -> None:
    here = gate(client, "台东")
    scan(client, here, fresh(client, rider), "entry")
    assert scan(client, here, fresh(client, rider), "exit")["fare"]["amount_cents"] == 200


def test_second_entry_without_exit_is_passback(client: FlaskClient, rider: dict[str, Any]) -> None:
    first, second, out = gate(client, "青岛站"), gate(client, "五四广场"), gate(client, "青岛北站")
    assert scan(client, first, fresh(client, rider), "entry")["decision"] == "accept"
    denied = scan(client, second, fresh(client, rider), "entry")
    assert (denied["decision"], denied["reason"]) == ("deny", "passback")
    assert set(denied["message"]) == {"zh", "en"} and "trip" not in denied
    # the open trip is still the first one
    assert scan(client, out, fresh(client, rider), "exit")["fare"]["from"] == "青岛站"


def test_exit_without_entry_is_no_entry(client: FlaskClient, rider: dict[str, Any]) -> None:
    denied = scan(client, gate(client, "李村"), fresh(client, rider), "exit")
    assert (denied["decision"], denied["reason"]) == ("deny", "no_entry")
    assert "fare" not in denied


def test_second_exit_is_no_entry(client: FlaskClient, rider: dict[str, Any]) -> None:
    entry, exit_ = gate(client, "五四广场"), gate(client, "李村")
    scan(client, entry, fresh(client, rider), "entry")
    assert scan(client, exit_, fresh(client, rider), "exit")["decision"] == "accept"
    assert scan(client, exit_, fresh(client, rider), "exit")["reason"] == "no_entry"


@pytest.mark.parametrize(("direction", "reason"), [("entry", "passback"), ("exit", "no_entry")])
def test_a_scene_rule_deny_spends_the_code(client: FlaskClient, rider: dict[str, Any],
                                           direction: str, reason: str) -> None:
    here, there = gate(client, "五四广场"), gate(client, "李村")
    if direction == "entry":
        scan(client, here, fresh(client, rider), "entry")
    used = fresh(client, rider)
    assert scan(client, here, used, direction)["reason"] == reason
    assert scan(client, there, used, direction)["reason"] == "replayed"


def test_entry_code_replayed_at_the_exit_gate_is_replayed_and_the_trip_stays_open(
        client: FlaskClient, rider: dict[str, Any]) -> None:
    entry, exit_ = gate(client, "五四广场"), gate(client, "李村")
    entry_code = fresh(client, rider)
    scan(client, entry, entry_code, "entry")
    replayed = scan(client, exit_, entry_code, "exit")
    assert (replayed["decision"], replayed["reason"]) == ("deny", "replayed")
    assert scan(client, exit_, fresh(client, rider), "exit")["fare"]["from"] == "五四广场"


@pytest.mark.parametrize(("card", "category", "cents"), [
    ("student_card", "student", 150), ("senior_card", "senior", 0), ("disability_card", "disabled", 0)])
def test_entitled_riders_pay_their_category(client: FlaskClient, rider: dict[str, Any],
                                            card: str, category: str, cents: int) -> None:
    bureau = issuer(client, card, name="青岛市民政局")
    credential(client, bureau, rider["citizen_id"], card)
    scan(client, gate(client, "五四广场"), fresh(client, rider), "entry")
    fare = scan(client, gate(client, "李村"), fresh(client, rider), "exit")["fare"]
    assert (fare["category"], fare["amount_cents"]) == (category, cents)
    assert fare["display"] == "concession"  # what the gate shows: never the reason


def test_gate_display_shows_a_concession_without_its_reason() -> None:
    assert fare_display("full") == "full"
    assert {fare_display(c) for c in ("student", "senior", "disabled", "anything_new")} == {"concession"}


def test_trip_open_until_just_before_expiry(app: Flask, client: FlaskClient, rider: dict[str, Any]) -> None:
    clock = inject_clock(app)
    scan(client, gate(client, "五四广场"), fresh(client, rider), "entry")
    clock.advance(EXPIRY - 1)
    assert scan(client, gate(client, "李村"), fresh(client, rider), "exit")["decision"] == "accept"


def test_expired_trip_means_no_entry_at_exit_then_a_fresh_trip(
        app: Flask, client: FlaskClient, rider: dict[str, Any]) -> None:
    clock = inject_clock(app)
    entry, exit_ = gate(client, "五四广场"), gate(client, "李村")
    scan(client, entry, fresh(client, rider), "entry")
    clock.advance(EXPIRY)
    assert scan(client, exit_, fresh(client, rider), "exit")["reason"] == "no_entry"
    again = scan(client, gate(client, "台东"), fresh(client, rider), "entry")
    assert again["decision"] == "accept" and again["trip"]["station"] == "台东"
    assert scan(client, exit_, fresh(client, rider), "exit")["fare"]["from"] == "台东"


def test_expired_trip_lets_the_next_entry_open_a_fresh_trip(
        app: Flask, client: FlaskClient, rider: dict[str, Any]) -> None:
    clock = inject_clock(app)
    scan(client, gate(client, "五四广场"), fresh(client, rider), "entry")
    clock.advance(EXPIRY + 60)
    assert scan(client, gate(client, "青岛站"), fresh(client, rider), "entry")["decision"] == "accept"
    assert scan(client, gate(client, "青岛北站"), fresh(client, rider), "exit")["fare"]["from"] == "青岛站"


def test_gate_without_direction_denies_malformed_and_spends_nothing(
        client: FlaskClient, rider: dict[str, Any]) -> None:
    here = gate(client, "五四广场")
    scanned = fresh(client, rider)
    assert scan(client, here, scanned, None)["reason"] == "malformed"
    assert scan(client, here, scanned, "entry")["decision"] == "accept"


def test_gate_at_a_station_not_in_the_network_degrades_and_spends_nothing(
        app: Flask, client: FlaskClient, rider: dict[str, Any]) -> None:
    # Registration refuses unknown stations (422); a station dropped from a later network file
    # can still leave such a gate behind, which the scene must survive.
    rt = runtime_of(app)
    scanned = fresh(client, rider)
    stale = rt.scans.context("trm_stale", "metro", {"station": "火星站"}, "entry")
    assert rt.scans.scan(scanned, stale).reason == "degraded"
    assert scan(client, gate(client, "五四广场"), scanned, "entry")["decision"] == "accept"


def test_gate_cannot_be_registered_at_an_unknown_station(client: FlaskClient) -> None:
    response = client.post("/v1/admin/terminals", headers=ADMIN,
                           json={"kind": "metro", "site": {"station": "火星站"}})
    assert response.status_code == 422


def test_trip_state_down_is_degraded_and_spends_nothing(app: Flask) -> None:
    rt = runtime_of(app)
    scanned = mint_code(app, "p_metro_down")
    claims = rt.verifier.check(scanned).claims
    assert claims is not None
    dead = redis.Redis.from_url("unix:///nonexistent/redis.sock", socket_connect_timeout=0.2)
    scene = MetroScene(default_network(), FareTable.from_config(load("metro")["fares"]),
                       TripStore(dead, expiry_seconds=EXPIRY, leeway=5))
    ctx = rt.scans.context("trm_x", "metro", {"station": "五四广场"}, "entry")
    try:
        assert scene.decide(Decision.accept(claims), ctx).reason == "degraded"
    finally:
        dead.close()
    assert rt.scans.scan(scanned, ctx).accepted  # the live scene still takes the same code


def test_trip_is_kept_per_citizen_with_a_cleanup_ttl(app: Flask, client: FlaskClient,
                                                     redis_client: "redis.Redis[bytes]") -> None:
    scan(client, gate(client, "五四广场"), mint_code(app, "p_metro_ttl"), "entry")
    stored = redis_client.hgetall(trip_key("p_metro_ttl"))
    assert stored[b"station"].decode() == "五四广场"
    assert EXPIRY < redis_client.ttl(trip_key("p_metro_ttl")) <= EXPIRY + 3600


# -- racing gates ----------------------------------------------------------------------------
def race(app: Flask, calls: list[Callable[[FlaskClient], dict[str, Any]]]) -> list[str]:
    """Run each call in its own thread with its own test client, released together."""
    barrier = threading.Barrier(len(calls))
    results: list[str] = [""] * len(calls)

    def run(i: int) -> None:
        own = app.test_client()
        barrier.wait()
        results[i] = calls[i](own)["reason"]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_one_entry_code_at_eight_gates_at_once_opens_exactly_one(
        app: Flask, client: FlaskClient, rider: dict[str, Any]) -> None:
    gates = [gate(client, station) for station in ("五四广场", "李村", "青岛站", "台东") * 2]
    scanned = fresh(client, rider)
    results = race(app, [lambda c, g=g: scan(c, g, scanned, "entry") for g in gates])
    assert sorted(results) == ["ok"] + ["replayed"] * 7


def test_one_citizen_with_two_codes_at_two_gates_at_once_enters_once(
        app: Flask, client: FlaskClient, rider: dict[str, Any]) -> None:
    left, right, out = gate(client, "五四广场"), gate(client, "青岛站"), gate(client, "李村")
    for _ in range(5):
        codes = [fresh(client, rider), fresh(client, rider)]
        results = race(app, [lambda c, g=g, s=s: scan(c, g, s, "entry") for g, s in zip((left, right), codes)])
        assert sorted(results) == ["ok", "passback"]
        assert scan(client, out, fresh(client, rider), "exit")["decision"] == "accept"
