"""A reader whose POST /v1/verify reply was lost after the server decided, and which then accepted
the same code offline with the same request_id: the offline tap is stored but superseded by the
online decision — no anomaly, not settled, shown as superseded in the rider's history."""
from __future__ import annotations

import time
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.taps.models import Tap
from tests.helpers import bearer, drain
from tests.taps.support import (Reader, Rider, anomalies, bus, code_for, gate, record, rider,
                                runtime_of, trips, uploaded)

HOURS = 3600
FROM, TO, FULL = "五四广场", "李村", 300


def _verify(client: FlaskClient, at: Reader, code: str, request_id: str,
            direction: str | None = None) -> dict[str, Any]:
    body = {"code": code, "request_id": request_id, **({"direction": direction} if direction else {})}
    response = client.post("/v1/verify", headers=bearer(at.token), json=body)
    assert response.status_code == 200, response.get_json()
    answer: dict[str, Any] = response.get_json()
    assert answer["decision"] == "accept", answer
    return answer


def _superseded(app: Flask) -> list[tuple[str, int, bool]]:
    with runtime_of(app).db.session() as session:
        return [(t.terminal_id, t.seq, t.superseded)
                for t in session.scalars(select(Tap).order_by(Tap.id))]


def _history(client: FlaskClient, who: Rider) -> dict[str, Any]:
    response = client.get("/v1/me/history", headers=bearer(who.app_token))
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def _fallback(seq: int, who: Rider, jti: str, request_id: str, answer: dict[str, Any],
              **fields: Any) -> dict[str, Any]:
    """The offline accept a reader journals after its online attempt timed out."""
    return record(seq, who.sub, time.time() + 0.3, jti=jti, request_id=request_id, mode="offline",
                  result={"fare": answer["fare"]}, **fields)


def test_a_bus_fallback_after_a_lost_reply_is_stored_superseded_and_not_a_second_ride(
        app: Flask, client: FlaskClient) -> None:
    vehicle, someone = bus(client), rider(app, client)
    code, jti = code_for(app, someone)
    online = _verify(client, vehicle, code, "bus-r-1")
    assert online["fare"]["amount_cents"] > 0
    drain(app)
    fallback = _fallback(1, someone, jti, "bus-r-1", online)
    answer = uploaded(client, vehicle, [fallback])
    assert (answer["stored"], answer["superseded"], answer["anomalies"]) == (1, 1, [])
    assert _superseded(app) == [(vehicle.terminal_id, 1, True)]
    history = _history(client, someone)
    scans = [e for e in history["entries"] if e["action"] == "scan"]
    assert [(e["decision"], e["fare"]) for e in scans] == [("accept", online["fare"])]
    (tap,) = history["taps"]
    assert (tap["seq"], tap["mode"], tap["superseded"]) == (1, "offline", True)
    # A resend is a duplicate and stays superseded.
    again = uploaded(client, vehicle, [fallback])
    assert (again["stored"], again["duplicates"], again["superseded"]) == (0, 1, 0)
    assert anomalies(app) == []


def test_a_metro_exit_fallback_leaves_settlement_to_the_online_exit(
        app: Flask, client: FlaskClient) -> None:
    entry, leave, someone = gate(client, FROM), gate(client, TO), rider(app, client)
    uploaded(client, entry, [record(1, someone.sub, time.time() - 600, direction="entry")])
    code, jti = code_for(app, someone)
    online = _verify(client, leave, code, "gate-r-7", "exit")
    assert online["fare"]["amount_cents"] == FULL
    drain(app)
    answer = uploaded(client, leave, [_fallback(3, someone, jti, "gate-r-7", online,
                                                direction="exit")])
    assert (answer["superseded"], answer["anomalies"]) == (1, [])
    runtime_of(app).taps.settle(time.time())
    runtime_of(app).taps.settle(time.time() + 10 * HOURS, due_only=True)
    assert [(t.status, t.exit_tap_id, t.amount_cents, t.priced_by) for t in trips(app)] == [
        ("settled", None, FULL, "online_gate")]  # never an unpaired exit charged on top
    with runtime_of(app).db.session() as session:
        assert session.scalar(select(Tap.pending_since).where(Tap.seq == 3)) is None


def test_the_same_code_offline_at_another_terminal_is_still_an_anomaly(
        app: Flask, client: FlaskClient) -> None:
    first, second, someone = bus(client, "鲁B-10001"), bus(client, "鲁B-20002"), rider(app, client)
    code, jti = code_for(app, someone)
    online = _verify(client, first, code, "bus-r-2")
    drain(app)
    answer = uploaded(client, second, [_fallback(1, someone, jti, "bus-r-2", online)])
    assert answer["superseded"] == 0
    assert [a["kind"] for a in answer["anomalies"]] == ["used_after_online"]
    assert _superseded(app) == [(second.terminal_id, 1, False)]


def test_a_fallback_without_its_request_id_is_not_superseded(app: Flask, client: FlaskClient) -> None:
    vehicle, someone = bus(client), rider(app, client)
    code, jti = code_for(app, someone)
    online = _verify(client, vehicle, code, "bus-r-3")
    drain(app)
    plain = record(1, someone.sub, time.time() + 1, jti=jti, result={"fare": online["fare"]})
    answer = uploaded(client, vehicle, [plain])
    assert answer["superseded"] == 0
    assert [a["kind"] for a in answer["anomalies"]] == ["used_after_online"]


def test_an_online_scan_written_after_the_upload_supersedes_at_the_next_settlement_run(
        app: Flask, client: FlaskClient) -> None:
    """The record writer had not drained the online scan when the tap arrived."""
    entry, leave, someone = gate(client, FROM), gate(client, TO), rider(app, client)
    uploaded(client, entry, [record(1, someone.sub, time.time() - 600, direction="entry")])
    code, jti = code_for(app, someone)
    online = _verify(client, leave, code, "gate-r-9", "exit")
    answer = uploaded(client, leave, [_fallback(4, someone, jti, "gate-r-9", online,
                                                direction="exit")])
    assert answer["superseded"] == 0  # nothing online known yet: an ordinary offline exit
    assert [t.exit_tap_id is not None for t in trips(app)] == [True]
    drain(app)
    runtime_of(app).taps.settle(time.time())
    assert _superseded(app)[-1] == (leave.terminal_id, 4, True)
    runtime_of(app).taps.settle(time.time() + 10 * HOURS, due_only=True)
    assert [(t.exit_tap_id, t.amount_cents, t.priced_by) for t in trips(app)] == [
        (None, FULL, "online_gate")]


def test_a_later_upload_also_supersedes_a_tap_that_came_before_its_online_scan(
        app: Flask, client: FlaskClient) -> None:
    vehicle, someone = bus(client), rider(app, client)
    code, jti = code_for(app, someone)
    online = _verify(client, vehicle, code, "bus-r-4")
    assert uploaded(client, vehicle, [_fallback(1, someone, jti, "bus-r-4", online)])["superseded"] == 0
    drain(app)
    later = uploaded(client, vehicle, [record(2, someone.sub, time.time() + 5, decision="deny",
                                              reason="replayed", jti=jti)])
    assert later["superseded"] == 0  # counts this batch's records only
    assert _superseded(app) == [(vehicle.terminal_id, 1, True), (vehicle.terminal_id, 2, False)]
