"""The hot paths in the steady state: a verification runs no SQL at all, and minting runs none
for a citizen it has cached — while a suspension or a revocation still takes effect at once,
and a cached entry never outlives the city day or a credential's validity edge."""
from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import date, datetime, time as day_time, timedelta, timezone
from typing import Any, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from app import compose
from app.city import CITY_TZ
from app.codes.wire import b64url_decode, entitlement_names, json_object
from app.errors import PermissionDenied
from app.runtime import Runtime
from app.verification.issuing import usable_until
from tests.helpers import ADMIN, bearer, code, credential, enrol, issuer, terminal


def runtime_of(app: Flask) -> Runtime:
    return app.extensions["citycode"]  # type: ignore[no-any-return]


@contextmanager
def counted_sql(app: Flask) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = runtime_of(app).db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def carried(app: Flask, citizen_id: str, now: float) -> tuple[str, ...]:
    minted = runtime_of(app).minter.code_for(citizen_id, now=now).code
    return entitlement_names(json_object(b64url_decode(minted.split(".")[1].encode()))["ent"])


def test_verifications_in_the_steady_state_run_no_sql(app: Flask, client: FlaskClient) -> None:
    gate, bus = terminal(client), terminal(client, "bus")
    codes = [code(client, enrol(client)["app_token"]) for _ in range(22)]  # a rider each: no passback
    for token in (gate, bus):  # first contact: the token and the terminal are read once
        client.post("/v1/verify", headers=bearer(token), json={"code": codes.pop()})
    with counted_sql(app) as statements:
        for i, scanned in enumerate(codes):
            answer = client.post("/v1/verify", headers=bearer(gate if i % 2 else bus), json={"code": scanned})
            assert answer.get_json()["decision"] == "accept"
    assert statements == []


def test_minting_again_for_a_cached_citizen_runs_no_sql(app: Flask, client: FlaskClient) -> None:
    citizen = enrol(client)
    code(client, citizen["app_token"])
    with counted_sql(app) as statements:
        for _ in range(5):
            code(client, citizen["app_token"])
    assert statements == []


def test_a_suspended_citizen_gets_no_code_at_once_though_cached(client: FlaskClient) -> None:
    citizen = enrol(client)
    code(client, citizen["app_token"])
    client.post(f"/v1/admin/citizens/{citizen['citizen_id']}/suspend", headers=ADMIN, json={})
    assert client.post("/v1/me/code", headers=bearer(citizen["app_token"])).status_code == 403
    client.post(f"/v1/admin/citizens/{citizen['citizen_id']}/restore", headers=ADMIN, json={})
    assert client.post("/v1/me/code", headers=bearer(citizen["app_token"])).status_code == 201


def test_a_suspension_announced_by_another_worker_is_seen_at_once(app: Flask, client: FlaskClient) -> None:
    citizen = enrol(client)
    now = time.time()
    carried(app, citizen["citizen_id"], now)
    other = Flask("another-worker")
    other.extensions["citycode"] = compose.build(runtime_of(app).settings)
    try:
        with other.test_request_context(), runtime_of(other).db.session() as session:
            from app.registry import citizens

            citizens.set_status(session, citizen["citizen_id"], citizens.SUSPENDED, None, admin_id="admin")
        runtime_of(other).trust_changed()
    finally:
        runtime_of(other).close()
    with pytest.raises(PermissionDenied):
        carried(app, citizen["citizen_id"], now + 1)


def test_a_revoked_entitlement_is_gone_from_the_next_code_and_a_new_one_comes_within_the_bound(
        app: Flask, client: FlaskClient) -> None:
    citizen = enrol(client)
    education = issuer(client, "student_card", "senior_card")
    card = credential(client, education, citizen["citizen_id"], "student_card")
    now = time.time()
    assert carried(app, citizen["citizen_id"], now) == ("stu",)
    client.post(f"/v1/issuer/credentials/{card['credential_id']}/revoke", headers=bearer(education), json={})
    assert carried(app, citizen["citizen_id"], now + 1) == ()
    credential(client, education, citizen["citizen_id"], "senior_card", number="L2026000999")
    bound = runtime_of(app).settings.mint_cache_seconds
    assert carried(app, citizen["citizen_id"], now + 2) == ()  # cached: additions wait ...
    assert carried(app, citizen["citizen_id"], now + bound + 1) == ("sen",)  # ... for the bound


def test_a_cached_entry_ends_at_the_city_midnight(app: Flask, client: FlaskClient) -> None:
    citizen = enrol(client)
    tourism = issuer(client, "scenic_reservation", name="青岛市文化和旅游局")
    tomorrow = datetime.now(CITY_TZ).date() + timedelta(days=1)
    credential(client, tourism, citizen["citizen_id"], "scenic_reservation", spot="laoshan",
               date=tomorrow.isoformat())
    midnight = datetime.combine(tomorrow, day_time(0), CITY_TZ).timestamp()
    assert carried(app, citizen["citizen_id"], midnight - 1) == ()
    assert carried(app, citizen["citizen_id"], midnight) == ("rla",)


def test_a_cached_entry_ends_when_a_credential_becomes_valid_or_lapses() -> None:
    now = datetime(2027, 5, 1, 10, 0, tzinfo=CITY_TZ)
    starts, ends = now + timedelta(seconds=20), now + timedelta(seconds=30)
    assert usable_until(now.timestamp(), 60, [(starts, None)]) == starts.timestamp()
    assert usable_until(now.timestamp(), 60, [(None, ends.replace(tzinfo=None) - timedelta(hours=8))]) \
        == ends.timestamp()  # SQLite's naive datetimes are UTC
    assert usable_until(now.timestamp(), 60, [(now - timedelta(days=1), None)]) == now.timestamp() + 60
    late = datetime(2027, 5, 1, 23, 59, 30, tzinfo=CITY_TZ)
    assert usable_until(late.timestamp(), 60, []) == datetime.combine(
        date(2027, 5, 2), day_time(0), CITY_TZ).timestamp()
    assert datetime.fromtimestamp(usable_until(late.timestamp(), 60, []), timezone.utc).tzinfo


def test_a_not_yet_valid_credential_shows_from_its_valid_from(app: Flask, client: FlaskClient) -> None:
    citizen = enrol(client)
    education = issuer(client, "student_card")
    starts = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=20)
    response = client.post("/v1/issuer/credentials", headers=bearer(education), json={
        "citizen_id": citizen["citizen_id"], "type": "student_card", "number": "S2026000777",
        "attributes": {}, "valid_from": starts.isoformat()})
    assert response.status_code == 201, response.get_json()
    assert carried(app, citizen["citizen_id"], starts.timestamp() - 5) == ()
    assert carried(app, citizen["citizen_id"], starts.timestamp()) == ("stu",)
