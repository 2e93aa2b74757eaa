"""Hall queues end to end over HTTP: real hall terminals, real Redis, a real database file."""
from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any, Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.city import CITY_TZ
from app.codes.decision import Decision
from app.codes.errors import Degraded
from app.codes.mint import mint
from app.hall import HallDesk, directory
from app.hall.queue import HallQueue
from app.registry.terminals import TerminalInfo
from app.runtime import Runtime
from app.scenes.base import ScanContext
from app.verification.issuing import ISSUER
from tests.hall.conftest import DAY, MORNING, HallDriver, ScanClock
from tests.helpers import bearer, dead_redis, redis_unreachable, terminal

Codes = Callable[[], str]


def issued(driver: HallDriver, scanned: str, service: str = "household") -> dict[str, Any]:
    status, body = driver.ticket(scanned, service)
    assert status == 201, body
    assert (body["decision"], body["reason"]) == ("accept", "ok")
    return body


def denied(driver: HallDriver, scanned: str, service: str = "household") -> str:
    status, body = driver.ticket(scanned, service)
    assert status == 200 and body["decision"] == "deny" and "ticket" not in body, body
    assert set(body["message"]) == {"zh", "en"}
    return body["reason"]  # type: ignore[no-any-return]


# -- taking a number ---------------------------------------------------------------------------
def test_numbers_count_up_per_service_with_the_people_ahead(city_hall: HallDriver, citizen_code: Codes) -> None:
    first = issued(city_hall, citizen_code())
    assert (first["ticket"], first["service"], first["ahead"], first["hall"]) == ("A001", "household", 0, "city")
    assert datetime.fromisoformat(first["issued_at"]) == datetime.fromtimestamp(MORNING, CITY_TZ)
    assert first["issued_at"].endswith("+08:00")
    assert (issued(city_hall, citizen_code())["ticket"], issued(city_hall, citizen_code(), "social_security")["ticket"]) == ("A002", "B001")
    third = issued(city_hall, citizen_code())
    assert (third["ticket"], third["ahead"]) == ("A003", 2)


def test_numbers_restart_the_next_day(city_hall: HallDriver, clock: ScanClock, citizen_code: Codes) -> None:
    assert [issued(city_hall, citizen_code())["ticket"] for _ in range(2)] == ["A001", "A002"]
    clock.advance(DAY)
    tomorrow = issued(city_hall, citizen_code())
    assert (tomorrow["ticket"], tomorrow["ahead"]) == ("A001", 0)


def test_the_day_turns_at_midnight_in_qingdao_not_utc(city_hall: HallDriver, clock: ScanClock,
                                                      citizen_code: Codes) -> None:
    clock.now = datetime(2026, 3, 2, 23, 59, 30, tzinfo=CITY_TZ).timestamp()  # 15:59 UTC
    assert issued(city_hall, citizen_code())["ticket"] == "A001"
    clock.advance(60)  # 00:00:30 in Qingdao, still 2 March in UTC
    assert issued(city_hall, citizen_code())["ticket"] == "A001"


def test_same_citizen_again_gets_the_same_ticket_and_spends_the_code(city_hall: HallDriver, citizen: Codes,
                                                                    citizen_code: Codes) -> None:
    assert issued(city_hall, citizen_code())["ticket"] == "A001"
    mine = issued(city_hall, citizen())
    assert (mine["ticket"], mine["ahead"], mine["existing"]) == ("A002", 1, False)
    second_code = citizen()
    again = issued(city_hall, second_code)
    assert (again["ticket"], again["ahead"], again["existing"]) == ("A002", 1, True)
    assert again["issued_at"] == mine["issued_at"]
    assert denied(city_hall, second_code) == "replayed"
    assert issued(city_hall, citizen(), "tax")["ticket"] == "G001"  # another service: its own number
    assert city_hall.board()["waiting"]["household"] == 2


def test_ahead_shrinks_as_numbers_are_called(city_hall: HallDriver, citizen: Codes, citizen_code: Codes) -> None:
    issued(city_hall, citizen_code())
    assert issued(city_hall, citizen())["ahead"] == 1
    city_hall.act("call", city_hall.counter("1"), counter="1")
    again = issued(city_hall, citizen())
    assert (again["ticket"], again["ahead"]) == ("A002", 0)


def test_a_called_citizen_scanning_again_takes_a_new_number(city_hall: HallDriver, citizen: Codes) -> None:
    assert issued(city_hall, citizen())["ticket"] == "A001"
    status, call = city_hall.act("call", city_hall.counter("1"), counter="1")
    assert (status, call["ticket"]) == (200, "A001")
    assert issued(city_hall, citizen())["ticket"] == "A002"


def test_replayed_code_is_denied_and_takes_no_number(city_hall: HallDriver, citizen_code: Codes) -> None:
    scanned = citizen_code()
    issued(city_hall, scanned)
    assert denied(city_hall, scanned) == "replayed"
    assert denied(city_hall, scanned, "tax") == "replayed"
    assert city_hall.board()["waiting"] == {**{s: 0 for s in city_hall.board()["waiting"]}, "household": 1}


def test_bad_and_expired_codes_are_denied_as_normal_answers(city_hall: HallDriver, runtime: Runtime) -> None:
    assert denied(city_hall, "not-a-code") == "malformed"
    stale = mint(runtime.keys.get(), issuer=ISSUER, subject="p-stale", entitlements=[], ttl_seconds=60,
                 now=time.time() - 3600)
    assert denied(city_hall, stale.code) == "expired"
    assert city_hall.board()["waiting"]["household"] == 0


def test_every_kiosk_scan_reaches_the_scan_observers(city_hall: HallDriver, runtime: Runtime,
                                                    citizen_code: Codes) -> None:
    seen: list[tuple[ScanContext, Decision]] = []
    runtime.scans.observers.append(lambda ctx, decision: seen.append((ctx, decision)))
    scanned = citizen_code()
    issued(city_hall, scanned)
    denied(city_hall, scanned)
    assert [(d.decision, d.reason) for _, d in seen] == [("accept", "ok"), ("deny", "replayed")]
    ctx, accepted = seen[0]
    assert (ctx.kind, ctx.site["hall"], ctx.now) == ("hall", "city", MORNING)
    assert {k: accepted.data[k] for k in ("hall", "service", "ticket")} == {
        "hall": "city", "service": "household", "ticket": "A001"}
    assert accepted.claims is not None and seen[1][1].claims == accepted.claims


# -- who may do what ---------------------------------------------------------------------------
def test_terminal_of_another_hall_or_kind_is_forbidden_and_spends_nothing(
        client: FlaskClient, city_hall: HallDriver, citizen_code: Codes) -> None:
    scanned = citizen_code()
    for other in (terminal(client, "hall", hall="shinan"), terminal(client, "metro", station="五四广场")):
        status, body = city_hall.ticket(scanned, terminal_token=other)
        assert status == 403 and body["status"] == 403, body
        status, _ = city_hall.act("call", other, counter="1")
        assert status == 403
    citizen_app = client.post("/v1/halls/city/tickets", headers=bearer("ccc_not-a-terminal"),
                              json={"code": scanned, "service": "household"})
    assert citizen_app.status_code == 401
    assert issued(city_hall, scanned)["ticket"] == "A001"


def test_unknown_hall_is_404_and_unknown_service_is_422(client: FlaskClient, city_hall: HallDriver,
                                                        citizen_code: Codes) -> None:
    scanned = citizen_code()
    status, body = city_hall.ticket(scanned, hall="atlantis")
    assert status == 404 and body["status"] == 404
    status, body = city_hall.ticket(scanned, "skydiving")
    assert status == 422 and "service" in body["errors"]
    status, body = city_hall.ticket(scanned, "agriculture")  # a township service, not the city hall's
    assert status == 422 and "service" in body["errors"]
    assert client.get("/v1/halls/atlantis/board").status_code == 404
    assert issued(city_hall, scanned)["ticket"] == "A001"


def test_a_counter_terminal_acts_only_for_its_own_counter(city_hall: HallDriver, citizen_code: Codes) -> None:
    issued(city_hall, citizen_code())
    status, body = city_hall.act("call", city_hall.counter("1"), counter="2")
    assert status == 403, body
    status, body = city_hall.act("call", city_hall.counter("2"), counter="2")
    assert (status, body["counter"]) == (200, "2")


def test_malformed_bodies_are_422(city_hall: HallDriver) -> None:
    response = city_hall.client.post("/v1/halls/city/tickets", headers=bearer(city_hall.kiosk),
                                     json={"code": "x", "service": "household", "extra": 1})
    assert response.status_code == 422 and "extra" in response.get_json()["errors"]
    status, body = city_hall.act("call", city_hall.kiosk)
    assert status == 422 and "counter" in body["errors"]


# -- calling, skipping, the board ----------------------------------------------------------------
def test_calls_come_in_arrival_order_then_404_when_nobody_waits(city_hall: HallDriver, citizen_code: Codes) -> None:
    for _ in range(3):
        issued(city_hall, citizen_code())
    window = city_hall.counter("1")
    calls = [city_hall.act("call", window, counter="1") for _ in range(3)]
    assert calls == [(200, {"ticket": t, "counter": "1", "service": "household"}) for t in ("A001", "A002", "A003")]
    response = city_hall.client.post("/v1/halls/city/call", headers=bearer(window), json={"counter": "1"})
    assert response.status_code == 404 and response.mimetype == "application/problem+json"


def test_a_counter_calls_the_oldest_across_the_services_it_serves(city_hall: HallDriver,
                                                                  citizen_code: Codes) -> None:
    issued(city_hall, citizen_code(), "entry_exit")       # H001
    issued(city_hall, citizen_code())                     # A001
    issued(city_hall, citizen_code(), "social_security")  # B001: counter 3 does not serve it
    issued(city_hall, citizen_code(), "entry_exit")       # H002
    window = city_hall.counter("3")  # entry_exit and household
    assert [city_hall.act("call", window, counter="3")[1]["ticket"] for _ in range(3)] == ["H001", "A001", "H002"]
    assert city_hall.act("call", window, counter="3")[0] == 404
    status, body = city_hall.act("call", window, counter="3", service="social_security")
    assert status == 403, body  # not in counter 3's plan: B001 stays for a counter that serves it
    status, body = city_hall.act("call", city_hall.counter("4"), counter="4", service="social_security")
    assert (status, body["ticket"]) == (200, "B001")


def test_board_shows_latest_call_per_counter_and_waiting_counts(city_hall: HallDriver, citizen_code: Codes) -> None:
    for service in ("household", "household", "household", "social_security", "tax"):
        issued(city_hall, citizen_code(), service)
    city_hall.act("call", city_hall.counter("1"), counter="1")
    city_hall.act("call", city_hall.counter("1"), counter="1")
    city_hall.act("call", city_hall.counter("12"), counter="12")
    city_hall.act("call", city_hall.counter("2"), counter="2")
    board = city_hall.board()
    assert board["calling"] == [{"ticket": "A002", "counter": "1"}, {"ticket": "A003", "counter": "2"},
                                {"ticket": "G001", "counter": "12"}]
    assert board["waiting"]["household"] == 0 and board["waiting"]["social_security"] == 1
    assert board["waiting"]["tax"] == 0
    assert set(board["waiting"]) == {s.service for s in directory().get("city").services}


def test_skip_clears_a_no_show_and_recall_repeats_the_call(city_hall: HallDriver, citizen: Codes,
                                                          citizen_code: Codes) -> None:
    issued(city_hall, citizen())
    issued(city_hall, citizen_code())
    window = city_hall.counter("1")
    assert city_hall.act("recall", window, counter="1")[0] == 404
    city_hall.act("call", window, counter="1")
    assert city_hall.act("recall", window, counter="1") == (200, {"ticket": "A001", "counter": "1",
                                                                  "service": "household"})
    assert city_hall.act("skip", window, counter="1") == (200, {"ticket": "A001", "counter": "1",
                                                                "service": "household"})
    assert city_hall.board()["calling"] == []
    assert city_hall.act("skip", window, counter="1")[0] == 404
    assert city_hall.act("recall", window, counter="1")[0] == 404
    assert city_hall.act("call", window, counter="1")[1]["ticket"] == "A002"
    assert issued(city_hall, citizen())["ticket"] == "A003"  # the no-show queues again, at the back


# -- concurrency and failure -------------------------------------------------------------------
def test_parallel_kiosk_scans_get_distinct_consecutive_numbers(app: Flask, city_hall: HallDriver,
                                                               citizen_code: Codes) -> None:
    codes = [citizen_code() for _ in range(20)]
    start = threading.Barrier(len(codes))
    results: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()

    def scan(scanned: str) -> None:
        driver = HallDriver(app.test_client(), "city", city_hall.kiosk)
        start.wait()
        outcome = driver.ticket(scanned)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=scan, args=(scanned,)) for scanned in codes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [status for status, _ in results] == [201] * 20, results
    assert sorted(body["ticket"] for _, body in results) == [f"A{n:03d}" for n in range(1, 21)]
    assert all(body["ahead"] == int(body["ticket"][1:]) - 1 for _, body in results)
    assert city_hall.board()["waiting"]["household"] == 20


def test_redis_down_denies_degraded_and_gives_no_ticket(city_hall: HallDriver, runtime: Runtime,
                                                        citizen_code: Codes) -> None:
    scanned, window = citizen_code(), city_hall.counter("1")
    with redis_unreachable(city_hall.client.application):
        assert denied(city_hall, scanned) == "degraded"
        assert city_hall.client.get("/v1/halls/city/board").status_code == 503
        assert city_hall.act("call", window, counter="1")[0] == 503
    assert city_hall.board()["waiting"]["household"] == 0
    assert issued(city_hall, scanned)["ticket"] == "A001"


def test_queue_store_failure_after_a_good_check_is_a_degraded_deny(runtime: Runtime, clock: ScanClock,
                                                                    citizen_code: Codes) -> None:
    desk = HallDesk(runtime.scans, runtime.verifier, HallQueue(dead_redis()))
    seen: list[Decision] = []
    runtime.scans.observers.append(lambda ctx, decision: seen.append(decision))
    kiosk = TerminalInfo("trm_kiosk", "hall", {"hall": "city"})
    decision = desk.take_number(kiosk, "city", "household", citizen_code())
    assert (decision.decision, decision.reason) == ("deny", "degraded")
    assert "ticket" not in decision.data and seen == [decision]


def test_queue_raises_degraded_when_redis_is_unreachable() -> None:
    hall = directory().get("city")
    with pytest.raises(Degraded):
        HallQueue(dead_redis()).board(hall, MORNING)
