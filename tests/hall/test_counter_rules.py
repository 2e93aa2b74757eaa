"""Who may call, skip and recall, and for what: only counters the hall's configuration names
(422 otherwise, so no other text ever reaches the public board), only from that counter's own
terminal (a kiosk may not, 403), and only the services of the counter's plan (403)."""
from __future__ import annotations

from typing import Callable

import pytest
import redis
from flask.testing import FlaskClient

from app.errors import InvalidInput, PermissionDenied
from app.hall import directory
from app.hall.queue import HallQueue
from tests.hall.conftest import MORNING, HallDriver, ScanClock
from tests.helpers import terminal

Codes = Callable[[], str]
MARKUP = "<img src=x onerror=alert(1)>"
ACTIONS = ("call", "skip", "recall")


def waiting(driver: HallDriver, scanned: str, service: str = "household") -> str:
    status, body = driver.ticket(scanned, service)
    assert status == 201, body
    return body["ticket"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("action", ACTIONS)
def test_a_counter_the_hall_does_not_configure_is_422_and_never_reaches_the_board(
        city_hall: HallDriver, citizen_code: Codes, action: str) -> None:
    waiting(city_hall, citizen_code())
    window = city_hall.counter("1")
    for counter in (MARKUP, "99", "1 ", "０１"):
        status, body = city_hall.act(action, window, counter=counter)
        assert status == 422 and body["status"] == 422, body
        assert "counter" in body["errors"], body
        assert MARKUP not in body["detail"]
    board = city_hall.board()
    assert board["calling"] == [] and board["waiting"]["household"] == 1


@pytest.mark.parametrize("action", ACTIONS)
def test_a_kiosk_may_not_act_for_any_counter(city_hall: HallDriver, citizen_code: Codes, action: str) -> None:
    waiting(city_hall, citizen_code())
    for counter in ("1", "12", MARKUP):
        status, body = city_hall.act(action, city_hall.kiosk, counter=counter)
        assert status == 403 and body["status"] == 403, body
    board = city_hall.board()
    assert board["calling"] == [] and board["waiting"]["household"] == 1


def test_a_kiosk_still_takes_numbers_and_its_counter_calls_them(city_hall: HallDriver, citizen_code: Codes) -> None:
    ticket = waiting(city_hall, citizen_code())
    assert city_hall.act("call", city_hall.counter("1"), counter="1") == (
        200, {"ticket": ticket, "counter": "1", "service": "household"})


def test_a_counter_calls_only_the_services_of_its_plan(city_hall: HallDriver, citizen_code: Codes) -> None:
    tax = waiting(city_hall, citizen_code(), "tax")
    window = city_hall.counter("1")  # household only
    status, body = city_hall.act("call", window, counter="1", service="tax")
    assert status == 403 and body["status"] == 403, body
    status, body = city_hall.act("call", window, counter="1", service="skydiving")
    assert status == 422 and "service" in body["errors"], body
    assert city_hall.board() == {"calling": [], "waiting": {**city_hall.board()["waiting"], "tax": 1}}
    status, body = city_hall.act("call", city_hall.counter("12"), counter="12", service="tax")
    assert (status, body["ticket"]) == (200, tax)


def test_a_general_window_calls_any_service_of_its_hall(client: FlaskClient, clock: ScanClock,
                                                        citizen_code: Codes) -> None:
    shinan = HallDriver(client, "shinan", terminal(client, "hall", hall="shinan"))
    business = waiting(shinan, citizen_code(), "business")
    status, body = shinan.act("call", shinan.counter("7"), counter="7", service="business")  # "*"
    assert (status, body["ticket"]) == (200, business)


def test_the_board_shows_only_configured_counters_whatever_redis_holds(
        city_hall: HallDriver, citizen_code: Codes, redis_client: "redis.Redis[bytes]") -> None:
    ticket = waiting(city_hall, citizen_code())
    city_hall.act("call", city_hall.counter("1"), counter="1")
    (calling,) = redis_client.keys("cc:hall:{hall:city}:*:calling")
    redis_client.hset(calling, MARKUP, "A999")  # e.g. written before counters were checked
    assert city_hall.board()["calling"] == [{"ticket": ticket, "counter": "1"}]
    shown = HallQueue(redis_client).board(directory().get("city"), MORNING).calling
    assert [call.counter for call in shown] == ["1"]


def test_the_plan_decides_what_a_counter_may_call() -> None:
    city = directory().get("city")
    assert [s.service for s in city.callable_by("5")] == ["social_security", "medical_insurance"]
    assert [s.service for s in city.callable_by("5", "medical_insurance")] == ["medical_insurance"]
    with pytest.raises(PermissionDenied):
        city.callable_by("5", "tax")
    with pytest.raises(InvalidInput) as unknown_counter:
        city.callable_by(MARKUP)
    assert "counter" in unknown_counter.value.errors
    with pytest.raises(InvalidInput) as unknown_service:
        city.callable_by("5", "agriculture")
    assert "service" in unknown_service.value.errors
