"""Every decided scan is recorded in Redis by the script that decides it, in one round trip, and
the drained record says what the terminal was told (real Redis, real SQLite, Flask test client)."""
from __future__ import annotations

import threading
from typing import Any, Iterator

import pytest
import redis.connection
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.audit import log as audit
from app.audit.models import AuditEntry
from app.codes.decision import Decision
from app.records.sink import UNRECORDED
from app.runtime import Runtime
from app.scenes.base import ScanContext
from tests.helpers import ADMIN, bearer, drain, redis_unreachable, terminal
from tests.records.support import stream_length
from tests.scenes.metro_support import mint_code


def _rt(app: Flask) -> Runtime:
    return app.extensions["citycode"]  # type: ignore[no-any-return]


def _verify(client: FlaskClient, token: str, scanned: str, **extra: Any) -> dict[str, Any]:
    response = client.post("/v1/verify", headers=bearer(token), json={"code": scanned, **extra})
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def _scans(app: Flask) -> list[AuditEntry]:
    with _rt(app).db.session() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == "scan")
                                    .order_by(AuditEntry.seq)))


def _stream_length(app: Flask) -> int:
    return stream_length(_rt(app))


class RoundTrips:
    """Counts what the test's thread sends to Redis: one send is one round trip (a pipeline is
    one). Not counted: background threads (the token-revocation listener), and a script's reload
    after ``NOSCRIPT`` with its retry (a server that has not seen the script yet, e.g. a replica
    promoted by an earlier test: the server's state, not the scan's path)."""

    def __init__(self) -> None:
        self.count = 0
        self.thread = threading.get_ident()
        self.retry_due = False


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[RoundTrips]:
    counter = RoundTrips()
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        if threading.get_ident() == counter.thread:
            head = bytes(command[0] if isinstance(command, (list, tuple)) else command)[:40]
            if counter.retry_due:
                counter.retry_due = False
            elif b"\r\nSCRIPT\r\n" in head and b"\r\nLOAD\r\n" in head:
                counter.retry_due = True
            else:
                counter.count += 1
        original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    yield counter


def _told(body: dict[str, Any]) -> dict[str, Any]:
    """The scene data of an answer (what the audit entry's details repeat)."""
    return {k: v for k, v in body.items() if k not in ("decision", "reason", "message")}


def test_each_scene_records_what_the_terminal_was_told(app: Flask, client: FlaskClient) -> None:
    rider = "p_rec_told"
    bus = terminal(client, "bus")
    enter, leave = terminal(client, "metro", station="五四广场"), terminal(client, "metro", station="青岛站")
    hall = terminal(client, "hall")
    answers = [
        ("bus", None, _verify(client, bus, mint_code(app, rider, ("stu",)))),
        ("metro", "entry", _verify(client, enter, mint_code(app, rider), direction="entry")),
        ("metro", "exit", _verify(client, leave, mint_code(app, rider, ("sen",)), direction="exit")),
        ("metro", "exit", _verify(client, leave, mint_code(app, rider), direction="exit")),  # no_entry
        ("hall", None, _verify(client, hall, mint_code(app, rider))),
        ("hall", None, _verify(client, hall, "not-a-code")),
    ]
    kiosk = terminal(client, "hall", hall="city")
    ticket = client.post("/v1/halls/city/tickets", headers=bearer(kiosk),
                         json={"code": mint_code(app, rider), "service": "household"}).get_json()
    answers.append(("hall", None, ticket))
    assert [a[2]["reason"] for a in answers] == ["ok", "ok", "ok", "no_entry", "ok", "malformed", "ok"]
    assert _scans(app) == []  # nothing in SQL on the scan path
    assert _stream_length(app) == len(answers)

    assert drain(app) == len(answers)
    entries = _scans(app)
    assert [(e.site["kind"], e.details.get("direction")) for e in entries] == [(k, d) for k, d, _ in answers]
    for entry, (_, _, body) in zip(entries, answers):
        assert (entry.details["decision"], entry.reason) == (body["decision"], body["reason"])
        assert {k: v for k, v in entry.details.items() if k not in ("decision", "direction", "jti")} == _told(body)
    assert entries[2].details["fare"]["from"] == "五四广场"  # the exit priced from the drained entry
    assert [e.subject for e in entries] == [rider] * 5 + [None, rider]
    with _rt(app).db.session() as session:
        assert audit.verify_chain(session) == (True, None)
    assert _stream_length(app) == 0  # acknowledged and deleted once committed


def test_scenic_admission_record_carries_the_places_left(app: Flask, client: FlaskClient) -> None:
    spot = terminal(client, "scenic")
    admitted = _verify(client, spot, mint_code(app, "p_rec_scenic", ("sap",)))
    refused = _verify(client, spot, mint_code(app, "p_rec_scenic_none"))
    assert (admitted["reason"], refused["reason"]) == ("ok", "no_reservation")
    drain(app)
    first, second = _scans(app)
    assert first.details["admission"] == admitted["admission"]
    assert (second.reason, second.details) == ("no_reservation", {"decision": "deny", "jti": second.details["jti"]})


@pytest.mark.parametrize(("kind", "site", "extra"), [
    ("bus", {"line": "321", "vehicle": "鲁B-10001"}, {}),
    ("metro", {"station": "五四广场"}, {"direction": "entry"}),
    ("scenic", {"spot": "laoshan"}, {}),
    ("hall", {"hall": "city"}, {}),
])
def test_a_scan_is_one_redis_round_trip(app: Flask, client: FlaskClient, round_trips: RoundTrips,
                                        kind: str, site: dict[str, str], extra: dict[str, str]) -> None:
    token = terminal(client, kind, **site)
    _verify(client, token, mint_code(app, "p_rt_warm", ("sap",)), **extra)  # loads scripts, trust
    for n in range(3):
        before = round_trips.count
        body = _verify(client, token, mint_code(app, f"p_rt_{kind}{n}", ("sap",)), **extra)
        assert body["decision"] == "accept", body
        assert round_trips.count - before == 1
    before = round_trips.count
    assert _verify(client, token, "not-a-code")["reason"] == "malformed"
    assert round_trips.count - before == 1  # a deny decided before any scene: one XADD


def test_a_revocation_announced_meanwhile_is_caught_up_in_the_same_scan(
        app: Flask, client: FlaskClient, round_trips: RoundTrips) -> None:
    citizen = client.post("/v1/admin/citizens", headers=ADMIN,
                          json={"name": "李四", "id_number": "370202199001011237"}).get_json()
    gate = terminal(client)
    app_token = bearer(citizen["app_token"])
    fresh = lambda: client.post("/v1/me/code", headers=app_token).get_json()["code"]  # noqa: E731
    assert _verify(client, gate, fresh())["decision"] == "accept"
    shown = fresh()
    response = client.post(f"/v1/admin/citizens/{citizen['citizen_id']}/suspend", headers=ADMIN,
                           json={"reason": "test"})
    assert response.status_code in (200, 204), response.get_json()
    before = round_trips.count
    assert _verify(client, gate, shown)["reason"] == "suspended"  # not the stale accept
    assert round_trips.count - before == 2  # the script said "moved", the catch-up decided again
    rt = _rt(app)
    assert rt.verifier.check(shown).reason == "suspended"
    drain(app)
    assert [e.reason for e in _scans(app)] == ["ok", "suspended"]


def test_a_worker_dying_between_script_and_reply_leaves_the_record(app: Flask, client: FlaskClient) -> None:
    class Died(BaseException):
        pass

    def die(ctx: ScanContext, decision: Decision) -> None:
        raise Died

    rt = _rt(app)
    rt.scans.observers.insert(0, die)
    ctx = rt.scans.context("trm_dies", "bus", {"line": "1", "vehicle": "鲁B-70007"})
    with pytest.raises(Died):
        rt.scans.answer(mint_code(app, "p_rec_died"), ctx)
    rt.scans.observers.remove(die)
    assert _stream_length(app) == 1
    drain(app)
    [entry] = _scans(app)
    assert (entry.actor_id, entry.reason, entry.details["fare"]["amount_cents"]) == ("trm_dies", "ok", 200)


def test_a_degraded_answer_is_counted_and_not_recorded(app: Flask, client: FlaskClient) -> None:
    bus = terminal(client, "bus")
    scanned = mint_code(app, "p_rec_degraded")
    before = UNRECORDED.labels("bus.tap")._value.get()
    with redis_unreachable(app):
        assert _verify(client, bus, scanned)["reason"] == "degraded"
    assert UNRECORDED.labels("bus.tap")._value.get() == before + 1
    assert _stream_length(app) == 0
    assert _verify(client, bus, scanned)["decision"] == "accept"  # nothing was spent
    assert drain(app) == 1
