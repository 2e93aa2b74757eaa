"""POST /v1/halls/{hall}/tickets with a ``request_id``: a kiosk that lost the reply and retries
gets the same ticket back (status, number, ``ahead`` as it was) and no second number is taken."""
from __future__ import annotations

import threading
from typing import Any, Callable

from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.runtime import Runtime
from app.verification.retries import RetryMemory
from tests.hall.conftest import HallDriver
from tests.helpers import bearer, drain, redis_unreachable

Codes = Callable[[], str]


def _ticket(driver: HallDriver, scanned: str, request_id: str | None, service: str = "household",
            client: FlaskClient | None = None) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"code": scanned, "service": service}
    if request_id is not None:
        body["request_id"] = request_id
    response = (client or driver.client).post(f"/v1/halls/{driver.hall}/tickets",
                                              headers=bearer(driver.kiosk), json=body)
    return response.status_code, response.get_json()


def _scan_entries(runtime: Runtime) -> int:
    drain(runtime)  # scans reach the audit log through the record writer
    with runtime.db.session() as session:
        return session.scalar(select(func.count()).select_from(AuditEntry)
                              .where(AuditEntry.action == "scan")) or 0


def test_lost_ticket_reply_retried_gets_the_same_ticket_and_takes_no_second_number(
        city_hall: HallDriver, citizen_code: Codes, runtime: Runtime) -> None:
    scanned = citizen_code()
    status, first = _ticket(city_hall, scanned, "kiosk-1:0001")
    assert status == 201 and first["ticket"] == "A001"
    _ticket(city_hall, citizen_code(), None)  # someone else takes A002 meanwhile
    assert _ticket(city_hall, scanned, "kiosk-1:0001") == (201, first)  # `ahead` as it was
    assert city_hall.board()["waiting"]["household"] == 2
    assert _scan_entries(runtime) == 2
    assert _ticket(city_hall, scanned, "kiosk-1:0002")[1]["reason"] == "replayed"


def test_denied_ticket_retried_is_the_same_deny(city_hall: HallDriver) -> None:
    first = _ticket(city_hall, "garbage", "k-bad")
    assert first[0] == 200 and first[1]["reason"] == "malformed"
    assert _ticket(city_hall, "garbage", "k-bad") == first


def test_same_request_id_for_another_code_or_service_is_409(
        city_hall: HallDriver, citizen_code: Codes) -> None:
    scanned, other = citizen_code(), citizen_code()
    assert _ticket(city_hall, scanned, "k-7")[0] == 201
    for status, body in (_ticket(city_hall, other, "k-7"),
                         _ticket(city_hall, scanned, "k-7", "social_security")):
        assert status == 409 and body["status"] == 409 and "request_id" in body["detail"]
    assert _ticket(city_hall, other, "k-8")[1]["ticket"] == "A002"  # the other code is unused


def test_malformed_request_id_is_422_and_takes_no_number(
        city_hall: HallDriver, citizen_code: Codes) -> None:
    scanned = citizen_code()
    status, body = _ticket(city_hall, scanned, "no spaces allowed")
    assert status == 422 and "request_id" in body["errors"]
    assert _ticket(city_hall, scanned, None)[1]["ticket"] == "A001"


def test_request_errors_come_before_the_request_id_is_remembered(
        city_hall: HallDriver, citizen_code: Codes) -> None:
    scanned = citizen_code()
    assert _ticket(city_hall, scanned, "k-1", "no_such_service")[0] == 422
    assert _ticket(city_hall, scanned, "k-1")[0] == 201  # the id was not spent on the 422


def test_queues_unreachable_is_degraded_and_a_retry_later_takes_the_number(
        app: Any, city_hall: HallDriver, citizen_code: Codes) -> None:
    scanned = citizen_code()
    with redis_unreachable(app):
        status, body = _ticket(city_hall, scanned, "k-down")
        assert (status, body["reason"]) == (200, "degraded")
    status, body = _ticket(city_hall, scanned, "k-down")
    assert (status, body["ticket"]) == (201, "A001")


def test_two_kiosk_requests_with_one_request_id_at_once_take_one_number(
        app: Any, city_hall: HallDriver, citizen_code: Codes, runtime: Runtime) -> None:
    memory = runtime.scans.retries
    runtime.scans.retries = RetryMemory(runtime.redis, leeway=memory.leeway,
                                        fallback_seconds=memory.fallback_seconds, wait_seconds=10)
    reached, release = threading.Event(), threading.Event()

    def park(ctx: Any, decision: Any) -> None:  # the first decision waits here, number taken
        if not reached.is_set():
            reached.set()
            assert release.wait(10)

    runtime.scans.observers.insert(0, park)
    scanned = citizen_code()
    answers: list[tuple[int, dict[str, Any]]] = []

    def send() -> None:
        answers.append(_ticket(city_hall, scanned, "k-race", client=app.test_client()))

    first = threading.Thread(target=send)
    first.start()
    assert reached.wait(10)
    second = threading.Thread(target=send)
    second.start()
    second.join(0.05)
    assert second.is_alive()
    release.set()
    first.join(10)
    second.join(10)
    assert len(answers) == 2 and answers[0] == answers[1] and answers[0][0] == 201
    assert city_hall.board()["waiting"]["household"] == 1
    assert _scan_entries(runtime) == 1
