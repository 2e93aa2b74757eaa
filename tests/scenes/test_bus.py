"""Bus fares through POST /v1/verify with real Redis and a real database."""
from __future__ import annotations

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from app.city import load
from app.scenes.base import ScanContext
from app.scenes.bus import BusScene, FareTable, tap_key
from bus_scenic_support import (bureau, citizen, freeze_scan_clock, fresh_code,
                                runtime_of, scan)
from tests.helpers import bearer, dead_redis, redis_unreachable, terminal

TABLE = FareTable.from_config(load("bus"))
WINDOW = TABLE.window_seconds


def bus(client: FlaskClient, vehicle: str = "鲁B-10001", line: str = "1") -> str:
    return terminal(client, "bus", line=line, vehicle=vehicle)


def fare(body: dict) -> tuple[str, int]:  # type: ignore[type-arg]
    assert (body["decision"], body["reason"]) == ("accept", "ok"), body
    return body["fare"]["category"], body["fare"]["amount_cents"]


def test_no_entitlement_pays_full_fare(client: FlaskClient) -> None:
    rider = citizen(client, bureau(client))
    assert fare(scan(client, bus(client), fresh_code(client, rider))) == ("full", 200)


@pytest.mark.parametrize(("card", "expected"), [
    ("student_card", ("student", 100)),
    ("senior_card", ("senior", 0)),
    ("disability_card", ("disabled", 0)),
])
def test_concession_card_pays_its_category(client: FlaskClient, card: str, expected: tuple[str, int]) -> None:
    rider = citizen(client, bureau(client), card)
    assert fare(scan(client, bus(client), fresh_code(client, rider))) == expected


def test_cheapest_category_wins_when_several_apply(client: FlaskClient) -> None:
    cards = bureau(client)
    student_senior = citizen(client, cards, "student_card", "senior_card")
    assert fare(scan(client, bus(client), fresh_code(client, student_senior))) == ("senior", 0)
    all_three = citizen(client, cards, "student_card", "senior_card", "disability_card")
    # senior and disabled tie at 0: the table's order (disabled first) breaks the tie
    assert fare(scan(client, bus(client), fresh_code(client, all_three))) == ("disabled", 0)


def test_revoked_student_card_pays_full_fare_on_code_minted_before(client: FlaskClient) -> None:
    cards = bureau(client)
    rider = citizen(client, cards, "student_card")
    minted_before = fresh_code(client, rider)
    revoked = client.post(f"/v1/issuer/credentials/{rider['card_ids'][0]}/revoke",
                          headers=bearer(cards), json={})
    assert revoked.status_code == 200
    assert fare(scan(client, bus(client), minted_before)) == ("full", 200)


def test_second_tap_same_vehicle_within_window_is_duplicate_tap_without_fare(app: Flask, client: FlaskClient) -> None:
    clock = freeze_scan_clock(app)
    rider = citizen(client, bureau(client))
    reader = bus(client)
    assert fare(scan(client, reader, fresh_code(client, rider))) == ("full", 200)
    clock.advance(WINDOW - 1)
    again = scan(client, reader, fresh_code(client, rider))
    assert (again["decision"], again["reason"]) == ("deny", "duplicate_tap")
    assert "fare" not in again and set(again["message"]) == {"zh", "en"}


def test_tap_on_another_vehicle_is_charged(client: FlaskClient) -> None:
    rider = citizen(client, bureau(client))
    assert fare(scan(client, bus(client, "鲁B-10001"), fresh_code(client, rider))) == ("full", 200)
    assert fare(scan(client, bus(client, "鲁B-20002"), fresh_code(client, rider))) == ("full", 200)


def test_tap_after_window_is_charged_and_window_runs_from_charged_tap(app: Flask, client: FlaskClient) -> None:
    clock = freeze_scan_clock(app)
    rider = citizen(client, bureau(client))
    reader = bus(client)
    assert fare(scan(client, reader, fresh_code(client, rider))) == ("full", 200)
    clock.advance(WINDOW / 2)
    assert scan(client, reader, fresh_code(client, rider))["reason"] == "duplicate_tap"
    clock.advance(WINDOW / 2)  # WINDOW after the charged tap, though only half after the duplicate
    assert fare(scan(client, reader, fresh_code(client, rider))) == ("full", 200)


def test_other_citizen_on_same_vehicle_is_charged(client: FlaskClient) -> None:
    cards = bureau(client)
    reader = bus(client)
    for rider in (citizen(client, cards), citizen(client, cards)):
        assert fare(scan(client, reader, fresh_code(client, rider))) == ("full", 200)


def test_replayed_code_is_replayed(client: FlaskClient) -> None:
    rider = citizen(client, bureau(client))
    scanned = fresh_code(client, rider)
    assert fare(scan(client, bus(client, "鲁B-10001"), scanned)) == ("full", 200)
    for reader in (bus(client, "鲁B-10001"), bus(client, "鲁B-30003")):
        assert scan(client, reader, scanned)["reason"] == "replayed"


def test_duplicate_tap_uses_the_code(client: FlaskClient) -> None:
    rider = citizen(client, bureau(client))
    reader = bus(client)
    scan(client, reader, fresh_code(client, rider))
    shown = fresh_code(client, rider)
    assert scan(client, reader, shown)["reason"] == "duplicate_tap"
    assert scan(client, bus(client, "鲁B-40004"), shown)["reason"] == "replayed"


def test_tap_record_expires_with_the_window(app: Flask, client: FlaskClient,
                                            redis_client: "redis.Redis[bytes]") -> None:
    rider = citizen(client, bureau(client))
    scanned = fresh_code(client, rider)
    scan(client, bus(client, "鲁B-50005"), scanned)
    sub = runtime_of(app).verifier.check(scanned).claims.sub  # type: ignore[union-attr]
    assert 0 < redis_client.pttl(tap_key("鲁B-50005", sub)) <= WINDOW * 1000


def test_redis_down_is_degraded_not_an_error(app: Flask, client: FlaskClient) -> None:
    rider = citizen(client, bureau(client))
    reader = bus(client)
    scanned = fresh_code(client, rider)
    with redis_unreachable(app):
        assert scan(client, reader, scanned)["reason"] == "degraded"
    assert fare(scan(client, reader, scanned)) == ("full", 200)


def test_state_store_failure_in_scene_is_degraded_and_leaves_code_unused(app: Flask, client: FlaskClient) -> None:
    rider = citizen(client, bureau(client))
    scanned = fresh_code(client, rider)
    checked = runtime_of(app).verifier.check(scanned)  # trust state read while Redis is up
    broken = dead_redis()
    try:
        ctx = ScanContext("t", "bus", {"line": "1", "vehicle": "鲁B-60006"}, now=1.0)
        decision = BusScene(broken, TABLE, leeway=5).decide(checked, ctx)
    finally:
        broken.close()
    assert (decision.decision, decision.reason) == ("deny", "degraded")
    assert fare(scan(client, bus(client), scanned)) == ("full", 200)


@pytest.mark.parametrize("bad", [
    {"full_fare_cents": 200, "duplicate_tap_window_seconds": 0},
    {"full_fare_cents": -1, "duplicate_tap_window_seconds": 60},
    {"full_fare_cents": 200, "duplicate_tap_window_seconds": 60,
     "categories": [{"category": "student", "entitlement": "stu", "amount_cents": -5}]},
])
def test_bad_fare_table_is_refused(bad: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError):
        FareTable.from_config(bad)


def test_shipped_fare_table_says_figures_are_illustrative() -> None:
    assert "illustrative" in load("bus")["_note"].lower()
