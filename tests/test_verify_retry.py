"""POST /v1/verify with a ``request_id``: a gate that lost the reply and retries gets the first
decision again, and nothing changes a second time (no second claim, fare, trip or audit entry).

Real Redis and a real SQLite file; the concurrency tests hold the first request inside the audit
observer (after the scene's Lua script ran) with a threading event, not with sleeps.
"""
from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.codes.decision import Decision
from app.runtime import Runtime
from app.scenes.base import ScanContext
from app.verification.retries import KEY_PREFIX, Attempt, RetryMemory, fingerprint
from tests.helpers import (ADMIN, DEFAULT_SITES, bearer, code, credential, drain, enrol, issuer,
                           redis_unreachable, terminal)


def _rt(app: Flask) -> Runtime:
    return app.extensions["citycode"]  # type: ignore[no-any-return]


def _verify(client: FlaskClient, gate: str, scanned: str, request_id: str | None = None,
            **extra: Any) -> Any:
    body: dict[str, Any] = {"code": scanned, **extra}
    if request_id is not None:
        body["request_id"] = request_id
    return client.post("/v1/verify", headers=bearer(gate), json=body)


def _decided(client: FlaskClient, gate: str, scanned: str, request_id: str | None = None,
             **extra: Any) -> dict[str, Any]:
    response = _verify(client, gate, scanned, request_id, **extra)
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def _scan_entries(app: Flask) -> int:
    drain(app)  # scans reach the audit log through the record writer
    with _rt(app).db.session() as session:
        return session.scalar(select(func.count()).select_from(AuditEntry)
                              .where(AuditEntry.action == "scan")) or 0


@pytest.fixture
def rider(client: FlaskClient) -> str:
    return enrol(client)["app_token"]  # type: ignore[no-any-return]


def test_lost_bus_reply_retried_gets_the_same_fare_and_is_charged_once(
        app: Flask, client: FlaskClient, rider: str) -> None:
    bus = terminal(client, "bus")
    scanned = code(client, rider)
    first = _decided(client, bus, scanned, "gate-7:0001")
    assert first["decision"] == "accept" and first["fare"]["amount_cents"] > 0
    assert _decided(client, bus, scanned, "gate-7:0001") == first
    assert _decided(client, bus, scanned, "gate-7:0001") == first
    assert _scan_entries(app) == 1
    # The code was claimed exactly once: a new request with it is a replay.
    assert _decided(client, bus, scanned, "gate-7:0002")["reason"] == "replayed"
    assert _decided(client, bus, scanned)["reason"] == "replayed"


def test_metro_entry_and_exit_retried_are_not_passback_or_no_entry(
        app: Flask, client: FlaskClient, rider: str) -> None:
    entry = terminal(client, "metro", station="五四广场")
    leave = terminal(client, "metro", station="青岛站")
    inbound = code(client, rider)
    opened = _decided(client, entry, inbound, "e1", direction="entry")
    assert opened["decision"] == "accept" and opened["trip"]["station"] == "五四广场"
    assert _decided(client, entry, inbound, "e1", direction="entry") == opened
    outbound = code(client, rider)
    closed = _decided(client, leave, outbound, "x1", direction="exit")
    assert closed["decision"] == "accept" and closed["fare"]["from"] == "五四广场"
    assert _decided(client, leave, outbound, "x1", direction="exit") == closed
    assert _scan_entries(app) == 2
    # The trip was closed once: another exit with a fresh code finds no trip.
    assert _decided(client, leave, code(client, rider), direction="exit")["reason"] == "no_entry"


def test_scenic_admission_retried_counts_one_place(app: Flask, client: FlaskClient) -> None:
    visitor = enrol(client)
    culture = issuer(client, "scenic_annual_pass", name="青岛市文化和旅游局")
    credential(client, culture, visitor["citizen_id"], "scenic_annual_pass")
    spot = terminal(client, "scenic")
    scanned = code(client, visitor["app_token"])
    first = _decided(client, spot, scanned, "turnstile-3")
    assert first["decision"] == "accept", first
    assert _decided(client, spot, scanned, "turnstile-3") == first
    other = code(client, enrol(client)["app_token"])  # no pass: denied, but it shows the count
    assert _decided(client, spot, other)["reason"] == "no_reservation"
    count = [key for key in _rt(app).redis.scan_iter("cc:scenic:count:{spot:laoshan}:*")]
    assert len(count) == 1 and _rt(app).redis.get(count[0]) == b"1"


def test_first_answer_is_returned_even_after_the_state_changed(
        client: FlaskClient, rider: str) -> None:
    gate = terminal(client)
    scanned = code(client, rider)
    first = _decided(client, gate, scanned, "r-1")
    assert first["decision"] == "accept"
    assert _decided(client, gate, scanned, "r-2")["reason"] == "replayed"
    assert _decided(client, gate, scanned, "r-1") == first  # not the later `replayed`


def test_deny_for_a_bad_code_is_remembered_too(app: Flask, client: FlaskClient) -> None:
    gate = terminal(client)
    first = _decided(client, gate, "not-a-code", "bad-1")
    assert first["reason"] == "malformed"
    assert _decided(client, gate, "not-a-code", "bad-1") == first
    assert _scan_entries(app) == 1


def test_same_request_id_with_another_code_is_409_and_changes_nothing(
        app: Flask, client: FlaskClient, rider: str) -> None:
    gate = terminal(client, "bus")
    _decided(client, gate, code(client, rider), "dup")
    other = code(client, enrol(client)["app_token"])
    response = _verify(client, gate, other, "dup")
    assert response.status_code == 409 and response.mimetype == "application/problem+json"
    assert "request_id" in response.get_json()["detail"]
    assert _scan_entries(app) == 1
    assert _decided(client, gate, other, "fresh")["decision"] == "accept"  # still unused


def test_same_request_id_with_another_direction_is_409(client: FlaskClient, rider: str) -> None:
    gate = terminal(client, "metro", station="五四广场")
    scanned = code(client, rider)
    _decided(client, gate, scanned, "m-1", direction="entry")
    assert _verify(client, gate, scanned, "m-1", direction="exit").status_code == 409


@pytest.mark.parametrize("bad", ["", "x" * 65, "with space", "tab\t", "line\n", "中文", "a/b", "a+b"])
def test_malformed_request_id_is_422_and_spends_nothing(
        client: FlaskClient, rider: str, bad: str) -> None:
    gate = terminal(client)
    scanned = code(client, rider)
    response = _verify(client, gate, scanned, bad)
    assert response.status_code == 422 and "request_id" in response.get_json()["errors"]
    assert _decided(client, gate, scanned)["decision"] == "accept"


def test_request_id_of_64_allowed_characters_is_taken(client: FlaskClient, rider: str) -> None:
    gate = terminal(client)
    request_id = ("Az09._:-" * 8)[:64]
    assert _decided(client, gate, code(client, rider), request_id)["decision"] == "accept"


def test_request_ids_are_per_terminal(client: FlaskClient, rider: str) -> None:
    one, two = terminal(client), terminal(client)
    scanned = code(client, rider)
    assert _decided(client, one, scanned, "same")["decision"] == "accept"
    # Another terminal's "same" is its own request: it decides, and the code is spent.
    assert _decided(client, two, scanned, "same")["reason"] == "replayed"


def test_keys_hold_no_request_text_and_expire_with_the_code(
        app: Flask, client: FlaskClient, rider: str) -> None:
    gate = terminal(client)
    scanned = code(client, rider)
    _decided(client, gate, scanned, "VISIBLE-id")
    redis = _rt(app).redis
    keys = [key.decode() for key in redis.scan_iter(f"{KEY_PREFIX}*")]
    assert len(keys) == 1 and "VISIBLE" not in keys[0]
    value = redis.get(keys[0])
    assert value is not None and scanned.encode() not in value
    ttl = redis.ttl(keys[0])
    settings = _rt(app).settings
    assert 0 < ttl <= settings.code_ttl_seconds + 2 * settings.clock_leeway_seconds + 31


def test_degraded_answer_is_not_remembered_so_a_retry_decides_once_redis_is_back(
        app: Flask, client: FlaskClient, rider: str) -> None:
    gate = terminal(client, "bus")
    scanned = code(client, rider)
    with redis_unreachable(app):
        assert _decided(client, gate, scanned, "r-down")["reason"] == "degraded"
        assert _decided(client, gate, "garbage", "r-bad")["reason"] == "malformed"
    assert _decided(client, gate, scanned, "r-down")["decision"] == "accept"


def _patient(rt: Runtime) -> None:
    """A memory that waits up to 10 s for a first answer (the default is 0.25 s), so a loaded
    test machine cannot turn "waits for the answer" into "gave up waiting"."""
    memory = rt.scans.retries
    rt.scans.retries = RetryMemory(rt.redis, leeway=memory.leeway,
                                   fallback_seconds=memory.fallback_seconds, wait_seconds=10)


def _hold_first_decision(rt: Runtime) -> tuple[threading.Event, threading.Event]:
    """An observer that parks the first decided scan (its scene script has run) until released."""
    reached, release = threading.Event(), threading.Event()

    def park(ctx: ScanContext, decision: Decision) -> None:
        if not reached.is_set():
            reached.set()
            assert release.wait(10)

    rt.scans.observers.insert(0, park)
    return reached, release


def test_retry_while_the_first_request_is_deciding_waits_for_its_answer(
        app: Flask, rider: str) -> None:
    rt = _rt(app)
    client = app.test_client()
    gate = terminal(client, "bus")
    scanned = code(client, rider)
    reached, release = _hold_first_decision(rt)
    _patient(rt)
    answers: dict[str, Any] = {}

    def first() -> None:
        answers["first"] = _decided(app.test_client(), gate, scanned, "race")

    def retry() -> None:
        answers["retry"] = _decided(app.test_client(), gate, scanned, "race")

    runner = threading.Thread(target=first)
    runner.start()
    assert reached.wait(10)
    retrier = threading.Thread(target=retry)
    retrier.start()
    retrier.join(0.05)
    assert retrier.is_alive()  # waiting for the first answer, not deciding
    release.set()
    runner.join(10)
    retrier.join(10)
    assert answers["first"]["decision"] == "accept"
    assert answers["retry"] == answers["first"]
    assert _scan_entries(app) == 1


def test_many_simultaneous_requests_with_one_request_id_decide_once(app: Flask, rider: str) -> None:
    client = app.test_client()
    gate = terminal(client, "bus")
    scanned = code(client, rider)
    _patient(_rt(app))
    start = threading.Barrier(6)
    answers: list[dict[str, Any]] = []

    def send() -> None:
        local = app.test_client()
        start.wait()
        answers.append(_decided(local, gate, scanned, "burst"))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(answers) == 6 and all(answer == answers[0] for answer in answers)
    assert answers[0]["decision"] == "accept"
    assert _scan_entries(app) == 1


class _WorkerDied(BaseException):
    """Stands for a worker killed between the scene's script and storing the answer."""


class _FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_retry_after_the_first_worker_died_mid_decision_is_degraded_not_replayed(
        app: Flask, client: FlaskClient, rider: str) -> None:
    rt = _rt(app)
    registered = client.post("/v1/admin/terminals", headers=ADMIN,
                             json={"kind": "bus", "site": DEFAULT_SITES["bus"]}).get_json()
    gate_id, gate = registered["terminal_id"], registered["terminal_token"]
    scanned = code(client, rider)
    fake = _FakeTime()
    memory = rt.scans.retries
    rt.scans.retries = RetryMemory(rt.redis, leeway=memory.leeway, fallback_seconds=memory.fallback_seconds,
                                   wait_seconds=1.0, clock=fake.clock, sleep=fake.sleep)

    def die(ctx: ScanContext, decision: Decision) -> None:
        raise _WorkerDied

    rt.scans.observers.insert(0, die)
    info = rt.terminals.get(gate_id)
    ctx = rt.scans.context(info.id, info.kind, info.site)
    with pytest.raises(_WorkerDied):
        rt.scans.answer(scanned, ctx, "crash-1")
    rt.scans.observers.remove(die)
    retried = _decided(client, gate, scanned, "crash-1")
    assert (retried["decision"], retried["reason"]) == ("deny", "degraded")
    assert 1.0 <= fake.now < 1.2 and len(fake.slept) > 1  # waited, bounded, then answered
    assert _decided(client, gate, scanned)["reason"] == "replayed"  # the first did claim it


def test_memory_answers_the_stored_body_without_deciding_again(app: Flask) -> None:
    rt = _rt(app)
    memory = RetryMemory(rt.redis, leeway=5, fallback_seconds=70)
    attempt = Attempt("trm_unit", "u-1", fingerprint("verify", "code-a", None))
    calls: list[int] = []

    def decide() -> dict[str, Any]:
        calls.append(1)
        return {"decision": "accept", "reason": "ok", "message": {"zh": "", "en": ""}, "n": len(calls)}

    until = int(rt.scans.clock()) + 60
    first = memory.once(attempt, until, decide)
    assert memory.once(attempt, until, decide) == first and calls == [1]


def test_openapi_documents_request_id_and_the_409(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    for schema, path in (("VerifyIn", "/v1/verify"), ("HallTicketIn", "/v1/halls/{hall}/tickets")):
        field = spec["components"]["schemas"][schema]["properties"]["request_id"]
        assert (field["pattern"], field["maxLength"]) == ("^[A-Za-z0-9._:-]{1,64}$", 64)
        assert "409" in spec["paths"][path]["post"]["responses"]
