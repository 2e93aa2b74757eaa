"""Scenic admission through POST /v1/verify, and the spot directory and capacity endpoints,
with real Redis and a real database."""
from __future__ import annotations

import secrets
import threading
import time
from datetime import datetime, time as dtime, timedelta
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from app.city import CITY_TZ, load
from app.codes.decision import CodeClaims, Decision
from app.scenes.base import ScanContext, local_date
from app.scenes.scenic import ScenicConfig, ScenicScene, city_config, day_keys
from bus_scenic_support import (ScanClock, bureau, citizen, freeze_scan_clock,
                                fresh_code, runtime_of, scan)
from tests.helpers import ADMIN, bearer, dead_redis, enrol, redis_unreachable, terminal

SPOTS = {"laoshan": "崂山风景区", "zhanshan_temple": "湛山寺", "jimo_old_town": "即墨古城"}


def turnstile(client: FlaskClient, spot: str = "laoshan") -> str:
    return terminal(client, "scenic", spot=spot)


def reservation(spot: str, day: Any) -> tuple[str, dict[str, str]]:
    return ("scenic_reservation", {"spot": spot, "date": day.isoformat()})


def set_capacity(client: FlaskClient, spot: str, capacity: int) -> None:
    response = client.put(f"/v1/admin/scenic/{spot}", headers=ADMIN, json={"daily_capacity": capacity})
    assert response.status_code == 200, response.get_json()


def admitted(body: dict[str, Any]) -> dict[str, Any]:
    assert (body["decision"], body["reason"]) == ("accept", "ok"), body
    return body["admission"]  # type: ignore[no-any-return]


@pytest.fixture
def clock(app: Flask) -> ScanClock:
    """Frozen scan clock, so "today" cannot roll over between issuing and scanning."""
    return freeze_scan_clock(app)


def test_reservation_for_today_admits(client: FlaskClient, clock: ScanClock) -> None:
    visitor = citizen(client, bureau(client), reservation("laoshan", local_date(clock.now)))
    admission = admitted(scan(client, turnstile(client), fresh_code(client, visitor)))
    assert admission == {"spot": "laoshan", "remaining": city_config().spots["laoshan"].daily_capacity - 1}


@pytest.mark.parametrize(("spot", "days_later"), [("zhanshan_temple", 0), ("laoshan", 1), ("laoshan", -1)])
def test_reservation_for_another_spot_or_day_is_no_reservation(
        client: FlaskClient, clock: ScanClock, spot: str, days_later: int) -> None:
    day = local_date(clock.now) + timedelta(days=days_later)
    visitor = citizen(client, bureau(client), reservation(spot, day))
    denied = scan(client, turnstile(client, "laoshan"), fresh_code(client, visitor))
    assert (denied["decision"], denied["reason"]) == ("deny", "no_reservation")
    assert "admission" not in denied and set(denied["message"]) == {"zh", "en"}


def test_no_reservation_and_no_entitlement_is_no_reservation(client: FlaskClient, clock: ScanClock) -> None:
    visitor = citizen(client, bureau(client), "student_card")
    assert scan(client, turnstile(client), fresh_code(client, visitor))["reason"] == "no_reservation"


def test_revoked_reservation_is_no_reservation(client: FlaskClient, clock: ScanClock) -> None:
    cards = bureau(client)
    visitor = citizen(client, cards, reservation("laoshan", local_date(clock.now)))
    client.post(f"/v1/issuer/credentials/{visitor['card_ids'][0]}/revoke", headers=bearer(cards), json={})
    assert scan(client, turnstile(client), fresh_code(client, visitor))["reason"] == "no_reservation"


def test_code_shown_before_its_reservation_is_revoked_is_no_reservation(
        client: FlaskClient, clock: ScanClock) -> None:
    """The revocation reaches the verifier through the feed (entitlement_revoked <sub>/rla), which
    strips the entitlement from a code minted before it: the scene sees no reservation."""
    cards = bureau(client)
    visitor = citizen(client, cards, reservation("laoshan", local_date(clock.now)))
    shown = fresh_code(client, visitor)
    gate = turnstile(client)
    client.post(f"/v1/issuer/credentials/{visitor['card_ids'][0]}/revoke", headers=bearer(cards), json={})
    denied = scan(client, gate, shown)
    assert (denied["decision"], denied["reason"]) == ("deny", "no_reservation")
    feed = client.get("/v1/trust/revocations?since=0", headers=bearer(gate)).get_json()["entries"]
    assert [(e["kind"], e["id"].rsplit("/", 1)[1]) for e in feed] == [("entitlement_revoked", "rla")]


def test_reservation_at_one_spot_leaves_the_others_closed_to_the_same_code_holder(
        client: FlaskClient, clock: ScanClock) -> None:
    visitor = citizen(client, bureau(client), reservation("zhanshan_temple", local_date(clock.now)))
    assert scan(client, turnstile(client, "jimo_old_town"), fresh_code(client, visitor))["reason"] == "no_reservation"
    assert admitted(scan(client, turnstile(client, "zhanshan_temple"), fresh_code(client, visitor)))


def _claims(sub: str, ent: tuple[str, ...], iat: int) -> CodeClaims:
    return CodeClaims("cc", sub, iat, iat + 60, secrets.token_urlsafe(9), ent, "kid")


def test_reservation_is_decided_from_the_code_alone_and_only_on_its_minting_day(app: Flask) -> None:
    """No registry row exists for this pseudonym: the scene admits on the code's ``rla`` and its
    ``iat``. A code minted 10 s before midnight admits before midnight, not 10 s after it."""
    rt = runtime_of(app)
    scene = ScenicScene(rt.redis, city_config(), leeway=5)
    midnight = datetime.combine(local_date(time.time()) + timedelta(days=3), dtime(0), CITY_TZ).timestamp()
    minted = int(midnight) - 10
    site = {"spot": "laoshan"}

    def decide(sub: str, ent: tuple[str, ...], now: float) -> str:
        checked = Decision.accept(_claims(sub, ent, minted))
        return scene.decide(checked, ScanContext("t", "scenic", site, now=now)).reason

    assert decide("nobody-on-file-1", ("rla",), midnight - 5) == "ok"
    assert decide("nobody-on-file-2", ("rla",), midnight + 10) == "no_reservation"
    assert decide("nobody-on-file-3", ("rla", "sap"), midnight + 10) == "ok"  # a pass has no day
    assert decide("nobody-on-file-4", ("rzt",), midnight - 5) == "no_reservation"


def test_annual_pass_admits_without_reservation(client: FlaskClient, clock: ScanClock) -> None:
    visitor = citizen(client, bureau(client), "scenic_annual_pass")
    admission = admitted(scan(client, turnstile(client, "jimo_old_town"), fresh_code(client, visitor)))
    assert admission["spot"] == "jimo_old_town"


@pytest.mark.parametrize("card", ["senior_card", "disability_card"])
def test_free_category_admits_without_reservation(client: FlaskClient, clock: ScanClock, card: str) -> None:
    visitor = citizen(client, bureau(client), card)
    assert admitted(scan(client, turnstile(client, "zhanshan_temple"), fresh_code(client, visitor)))


def test_second_admission_same_day_is_already_admitted_even_with_new_code(
        client: FlaskClient, clock: ScanClock) -> None:
    visitor = citizen(client, bureau(client), "scenic_annual_pass")
    gate = turnstile(client)
    admitted(scan(client, gate, fresh_code(client, visitor)))
    again = scan(client, turnstile(client), fresh_code(client, visitor))
    assert (again["decision"], again["reason"]) == ("deny", "already_admitted")
    assert admitted(scan(client, turnstile(client, "zhanshan_temple"), fresh_code(client, visitor)))
    clock.advance(86400)  # the next city day
    assert admitted(scan(client, gate, fresh_code(client, visitor)))


def test_denied_admission_uses_the_code(client: FlaskClient, clock: ScanClock) -> None:
    visitor = citizen(client, bureau(client))
    shown = fresh_code(client, visitor)
    assert scan(client, turnstile(client), shown)["reason"] == "no_reservation"
    assert scan(client, turnstile(client, "jimo_old_town"), shown)["reason"] == "replayed"


def test_replayed_code_is_replayed(client: FlaskClient, clock: ScanClock) -> None:
    visitor = citizen(client, bureau(client), "scenic_annual_pass")
    shown = fresh_code(client, visitor)
    admitted(scan(client, turnstile(client), shown))
    assert scan(client, turnstile(client, "jimo_old_town"), shown)["reason"] == "replayed"


def test_remaining_counts_down_then_capacity_full(client: FlaskClient, clock: ScanClock) -> None:
    set_capacity(client, "laoshan", 3)
    cards = bureau(client)
    gate = turnstile(client)
    holders = [citizen(client, cards, "scenic_annual_pass") for _ in range(4)]
    remaining = [admitted(scan(client, gate, fresh_code(client, holder)))["remaining"] for holder in holders[:3]]
    assert remaining == [2, 1, 0]
    full = scan(client, gate, fresh_code(client, holders[3]))
    assert (full["decision"], full["reason"]) == ("deny", "capacity_full")


def test_capacity_is_exact_under_parallel_admissions(app: Flask, client: FlaskClient, clock: ScanClock) -> None:
    capacity = 5
    set_capacity(client, "laoshan", capacity)
    cards = bureau(client)
    today = local_date(clock.now)
    gates = [turnstile(client) for _ in range(3)]
    codes = [fresh_code(client, citizen(client, cards, reservation("laoshan", today)))
             for _ in range(3 * capacity)]
    start = threading.Barrier(len(codes))
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()

    def admit(index: int) -> None:
        own_client = app.test_client()
        start.wait()
        body = scan(own_client, gates[index % len(gates)], codes[index])
        with lock:
            answers.append(body)

    threads = [threading.Thread(target=admit, args=(i,)) for i in range(len(codes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    reasons = sorted(body["reason"] for body in answers)
    assert reasons == ["capacity_full"] * (2 * capacity) + ["ok"] * capacity
    remaining = sorted(body["admission"]["remaining"] for body in answers if body["reason"] == "ok")
    assert remaining == list(range(capacity))


def test_one_citizen_with_two_codes_at_two_turnstiles_at_once_is_admitted_once(
        app: Flask, client: FlaskClient, clock: ScanClock) -> None:
    visitor = citizen(client, bureau(client), "scenic_annual_pass")
    gates = [turnstile(client), turnstile(client)]
    codes = [fresh_code(client, visitor), fresh_code(client, visitor)]
    start = threading.Barrier(2)
    reasons: list[str] = []

    def admit(index: int) -> None:
        own_client = app.test_client()
        start.wait()
        reasons.append(scan(own_client, gates[index], codes[index])["reason"])

    threads = [threading.Thread(target=admit, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(reasons) == ["already_admitted", "ok"]


def test_lowering_capacity_below_admissions_denies_the_rest_today(client: FlaskClient, clock: ScanClock) -> None:
    cards = bureau(client)
    gate = turnstile(client, "zhanshan_temple")
    for _ in range(2):
        admitted(scan(client, gate, fresh_code(client, citizen(client, cards, "senior_card"))))
    set_capacity(client, "zhanshan_temple", 1)
    late = scan(client, gate, fresh_code(client, citizen(client, cards, "senior_card")))
    assert late["reason"] == "capacity_full"
    clock.advance(86400)  # the override was for that day only
    nextday = admitted(scan(client, gate, fresh_code(client, citizen(client, cards, "senior_card"))))
    assert nextday["remaining"] == city_config().spots["zhanshan_temple"].daily_capacity - 1


def test_put_capacity_answers_the_spot_and_day(client: FlaskClient, clock: ScanClock) -> None:
    response = client.put("/v1/admin/scenic/jimo_old_town", headers=ADMIN, json={"daily_capacity": 0})
    assert response.status_code == 200
    assert response.get_json() == {"spot": "jimo_old_town", "name": "即墨古城", "daily_capacity": 0,
                                   "date": local_date(clock.now).isoformat()}


def test_put_unknown_spot_is_404(client: FlaskClient) -> None:
    response = client.put("/v1/admin/scenic/taishan", headers=ADMIN, json={"daily_capacity": 10})
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_put_by_non_admin_is_403_and_without_token_401(client: FlaskClient) -> None:
    visitor = enrol(client)
    body = {"daily_capacity": 10}
    assert client.put("/v1/admin/scenic/laoshan", headers=bearer(visitor["app_token"]), json=body).status_code == 403
    assert client.put("/v1/admin/scenic/laoshan", headers=bearer(turnstile(client)), json=body).status_code == 403
    assert client.put("/v1/admin/scenic/laoshan", json=body).status_code == 401


@pytest.mark.parametrize("body", [{"daily_capacity": -1}, {"daily_capacity": "10"}, {"daily_capacity": 1.5},
                                  {}, {"daily_capacity": 10, "extra": 1}])
def test_put_bad_body_is_422_and_changes_nothing(client: FlaskClient, body: dict[str, Any]) -> None:
    response = client.put("/v1/admin/scenic/laoshan", headers=ADMIN, json=body)
    assert response.status_code == 422
    listed = {s["spot"]: s["daily_capacity"] for s in client.get("/v1/scenic/spots").get_json()}
    assert listed["laoshan"] == city_config().spots["laoshan"].daily_capacity


def test_put_capacity_takes_a_whole_number_written_with_a_fraction(client: FlaskClient) -> None:
    # JSON (Schema) has one number type: 25.0 is the integer 25, as the document's `integer` says.
    response = client.put("/v1/admin/scenic/laoshan", headers=ADMIN, json={"daily_capacity": 25.0})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["daily_capacity"] == 25
    refused = client.put("/v1/admin/scenic/laoshan", headers=ADMIN, json={"daily_capacity": True})
    assert refused.status_code == 422 and refused.mimetype == "application/problem+json"


def test_get_spots_lists_the_three_spots_publicly_with_todays_capacity(client: FlaskClient) -> None:
    response = client.get("/v1/scenic/spots")
    assert response.status_code == 200
    spots = response.get_json()
    assert {s["spot"]: s["name"] for s in spots} == SPOTS
    assert all(set(s) == {"spot", "name", "daily_capacity"} and s["daily_capacity"] > 0 for s in spots)
    set_capacity(client, "laoshan", 42)
    assert {s["spot"]: s["daily_capacity"] for s in client.get("/v1/scenic/spots").get_json()}["laoshan"] == 42


def test_day_keys_expire(client: FlaskClient, clock: ScanClock, redis_client: "redis.Redis[bytes]") -> None:
    set_capacity(client, "laoshan", 10)
    visitor = citizen(client, bureau(client), "scenic_annual_pass")
    admitted(scan(client, turnstile(client), fresh_code(client, visitor)))
    for key in day_keys("laoshan", local_date(clock.now)):
        assert 0 < redis_client.ttl(key) <= 25 * 3600, key


def test_redis_down_is_degraded_not_an_error(app: Flask, client: FlaskClient, clock: ScanClock) -> None:
    visitor = citizen(client, bureau(client), "scenic_annual_pass")
    gate = turnstile(client)
    shown = fresh_code(client, visitor)
    with redis_unreachable(app):
        assert scan(client, gate, shown)["reason"] == "degraded"
        assert client.put("/v1/admin/scenic/laoshan", headers=ADMIN, json={"daily_capacity": 1}).status_code == 503
        assert client.get("/v1/scenic/spots").status_code == 503
    assert admitted(scan(client, gate, shown))


def test_state_store_failure_in_scene_is_degraded_and_leaves_code_unused(app: Flask, client: FlaskClient) -> None:
    visitor = citizen(client, bureau(client), "scenic_annual_pass")
    shown = fresh_code(client, visitor)
    rt = runtime_of(app)
    checked = rt.verifier.check(shown)
    broken = dead_redis()
    try:
        decision = ScenicScene(broken, city_config(), leeway=5).decide(
            checked, ScanContext("t", "scenic", {"spot": "laoshan"}, now=rt.scans.clock()))
    finally:
        broken.close()
    assert (decision.decision, decision.reason) == ("deny", "degraded")
    assert admitted(scan(client, turnstile(client), shown))


def test_outside_opening_hours_is_closed(app: Flask, client: FlaskClient) -> None:
    config = ScenicConfig.from_config({"annual_pass_entitlements": ["sap"], "spots": [
        {"spot": "laoshan", "name": "崂山风景区", "daily_capacity": 10, "hours": ["06:00", "18:00"]}]})
    rt = runtime_of(app)
    scene = ScenicScene(rt.redis, config, leeway=5)
    visitor = citizen(client, bureau(client), "scenic_annual_pass")
    noon = 1_780_000_000 - 1_780_000_000 % 86400 + 4 * 3600  # 12:00 in Shanghai (UTC+8)
    for now, expected in ((noon - 7 * 3600, "closed"), (noon + 6 * 3600, "closed"), (noon, "ok")):
        checked = rt.verifier.check(fresh_code(client, visitor))
        decision = scene.decide(checked, ScanContext("t", "scenic", {"spot": "laoshan"}, now=now))
        assert decision.reason == expected


def test_turnstile_at_unconfigured_spot_is_closed_and_leaves_code_unused(
        app: Flask, client: FlaskClient, clock: ScanClock) -> None:
    # Registration refuses unknown spots (422); a spot dropped from a later configuration can
    # still leave such a turnstile behind, which the scene must survive.
    visitor = citizen(client, bureau(client), "scenic_annual_pass")
    shown = fresh_code(client, visitor)
    scans = app.extensions["citycode"].scans
    assert scans.scan(shown, scans.context("trm_stale", "scenic", {"spot": "nowhere"})).reason == "closed"
    assert admitted(scan(client, turnstile(client), shown))


def test_shipped_spots_say_figures_are_illustrative() -> None:
    assert "illustrative" in load("scenic")["_note"].lower()
    assert set(city_config().spots) == set(SPOTS)
