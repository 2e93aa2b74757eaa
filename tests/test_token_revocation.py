"""Token lifecycle (issue #9): deregistering a terminal, rotating terminal and issuer tokens, a
citizen's new app token after a lost phone, the citizen's own token list with last use. A
revocation counts from the next request on every worker, though each caches principals for 10 s:
two apps over one database and one Redis stand for two gunicorn workers."""
from __future__ import annotations

import time
from typing import Any, Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app import create_app
from app.audit.models import AuditEntry
from app.auth import LAST_USED_KEY, Principal, PrincipalCache, Role
from app.config import Settings
from app.db.models import ApiToken
from app.runtime import Runtime
from tests.helpers import ADMIN, NO_REDIS_URL, bearer, code, enrol, issuer, listening, terminal
from tests.pg_support import database, postgres_server, postgres_url  # noqa: F401  (fixtures)

REASON = "王小明 reported reader 鲁B-10001 stolen"  # free text: must not reach the audit log


def rt_of(app: Flask) -> Runtime:
    return app.extensions["citycode"]  # type: ignore[no-any-return]


@pytest.fixture
def second(app: Flask, settings: Settings) -> Iterator[Flask]:
    """A second worker: its own runtime and principal cache, the same database and Redis."""
    worker = create_app(settings)
    worker.config["TESTING"] = True
    try:
        yield worker
    finally:
        rt_of(worker).close()


@pytest.fixture
def other(app: Flask, second: Flask) -> FlaskClient:
    """A client of the second worker; both workers hear revocations (the steady state)."""
    listening(rt_of(app).principals, rt_of(second).principals)
    return second.test_client()


def actions(app: Flask) -> list[AuditEntry]:
    with rt_of(app).db.session() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.actor_kind.in_(("admin", "citizen")))
                                    .order_by(AuditEntry.seq)))


def terminal_id_of(client: FlaskClient, token: str) -> str:
    response = client.get("/v1/terminals/me", headers=bearer(token))
    assert response.status_code == 200
    return response.get_json()["terminal_id"]  # type: ignore[no-any-return]


def me_status(client: FlaskClient, token: str) -> int:
    return client.get("/v1/me", headers=bearer(token)).status_code


# --- terminals ---------------------------------------------------------------------------------

def test_a_deregistered_terminal_is_refused_at_its_next_request_on_another_worker(
        client: FlaskClient, other: FlaskClient) -> None:
    gate = terminal(client, "bus")
    terminal_id = terminal_id_of(other, gate)  # the other worker has it cached now
    assert other.get("/v1/terminals/me", headers=bearer(gate)).status_code == 200

    answer = client.post(f"/v1/admin/terminals/{terminal_id}/revoke", headers=ADMIN, json={"reason": REASON})

    assert answer.status_code == 200
    assert answer.get_json() == {"terminal_id": terminal_id, "status": "deregistered", "revoked_tokens": 1}
    refused = other.post("/v1/verify", headers=bearer(gate), json={"code": "x"})
    assert refused.status_code == 401 and refused.mimetype == "application/problem+json"
    assert client.get("/v1/terminals/me", headers=bearer(gate)).status_code == 401


def test_a_deregistered_terminal_gets_no_new_token_and_a_second_deregistration_changes_nothing(
        client: FlaskClient, app: Flask) -> None:
    gate = terminal(client)
    terminal_id = terminal_id_of(client, gate)
    client.post(f"/v1/admin/terminals/{terminal_id}/revoke", headers=ADMIN)
    entries = len(actions(app))

    again = client.post(f"/v1/admin/terminals/{terminal_id}/revoke", headers=ADMIN)
    rotated = client.post(f"/v1/admin/terminals/{terminal_id}/token", headers=ADMIN)

    assert again.status_code == 200 and again.get_json()["revoked_tokens"] == 0
    assert rotated.status_code == 409 and rotated.mimetype == "application/problem+json"
    assert len(actions(app)) == entries


def test_a_rotated_terminal_token_works_at_once_and_the_old_one_is_refused_on_every_worker(
        client: FlaskClient, other: FlaskClient) -> None:
    gate = terminal(client, "bus")
    terminal_id = terminal_id_of(other, gate)
    rider = enrol(client)["app_token"]

    rotated = client.post(f"/v1/admin/terminals/{terminal_id}/token", headers=ADMIN)

    assert rotated.status_code == 201
    body = rotated.get_json()
    assert body["terminal_id"] == terminal_id and body["revoked_tokens"] == 1
    new = body["terminal_token"]
    assert new != gate and new.startswith("cct_")
    assert other.get("/v1/terminals/me", headers=bearer(gate)).status_code == 401
    scan = other.post("/v1/verify", headers=bearer(new), json={"code": code(client, rider)})
    assert scan.status_code == 200 and scan.get_json()["decision"] == "accept"


def test_unknown_terminals_and_issuers_are_404_problems(client: FlaskClient) -> None:
    for path in ("/v1/admin/terminals/trm_nope/revoke", "/v1/admin/terminals/trm_nope/token",
                 "/v1/admin/issuers/iss_nope/revoke", "/v1/admin/issuers/iss_nope/token",
                 "/v1/admin/citizens/cit_nope/app-tokens"):
        answer = client.post(path, headers=ADMIN)
        assert answer.status_code == 404 and answer.mimetype == "application/problem+json", path
    assert client.get("/v1/admin/citizens/cit_nope/app-tokens", headers=ADMIN).status_code == 404


# --- issuers -----------------------------------------------------------------------------------

def _issuer_id(app: Flask, token: str) -> str:
    from app.auth import token_hash

    with rt_of(app).db.session() as session:
        return session.scalars(select(ApiToken.principal_id)
                               .where(ApiToken.token_hash == token_hash(token))).one()


def _issue(client: FlaskClient, token: str, citizen_id: str) -> int:
    return client.post("/v1/issuer/credentials", headers=bearer(token), json={
        "citizen_id": citizen_id, "type": "student_card", "number": "S2026000123"}).status_code


def test_a_revoked_issuer_token_is_refused_on_every_worker_until_a_new_one_is_issued(
        app: Flask, client: FlaskClient, other: FlaskClient) -> None:
    bureau = issuer(client, "student_card")
    issuer_id = _issuer_id(app, bureau)
    citizen_id = enrol(client)["citizen_id"]
    assert _issue(other, bureau, citizen_id) == 201  # cached by the other worker

    revoked = client.post(f"/v1/admin/issuers/{issuer_id}/revoke", headers=ADMIN, json={})
    assert revoked.status_code == 200 and revoked.get_json() == {"issuer_id": issuer_id, "revoked_tokens": 1}
    assert _issue(other, bureau, citizen_id) == 401

    fresh = client.post(f"/v1/admin/issuers/{issuer_id}/token", headers=ADMIN)
    assert fresh.status_code == 201
    new = fresh.get_json()["issuer_token"]
    assert fresh.get_json()["revoked_tokens"] == 0
    assert _issue(other, new, enrol(client)["citizen_id"]) == 201
    assert _issue(other, bureau, citizen_id) == 401


def test_an_issuer_token_rotation_refuses_the_leaked_one(app: Flask, client: FlaskClient,
                                                         other: FlaskClient) -> None:
    leaked = issuer(client, "student_card")
    citizen_id = enrol(client)["citizen_id"]
    assert _issue(other, leaked, citizen_id) == 201
    rotated = client.post(f"/v1/admin/issuers/{_issuer_id(app, leaked)}/token", headers=ADMIN)
    assert rotated.get_json()["revoked_tokens"] == 1
    assert _issue(other, leaked, citizen_id) == 401
    assert _issue(other, rotated.get_json()["issuer_token"], enrol(client)["citizen_id"]) == 201


# --- citizens ----------------------------------------------------------------------------------

def test_a_lost_phone_new_app_token_refuses_the_old_one_on_every_worker(
        client: FlaskClient, other: FlaskClient) -> None:
    citizen = enrol(client)
    old = citizen["app_token"]
    assert other.post("/v1/me/code", headers=bearer(old)).status_code == 201  # cached there

    answer = client.post(f"/v1/admin/citizens/{citizen['citizen_id']}/app-tokens", headers=ADMIN,
                         json={"label": "new phone"})

    assert answer.status_code == 201
    body = answer.get_json()
    assert body["citizen_id"] == citizen["citizen_id"] and body["revoked_tokens"] == 1
    new = body["app_token"]
    assert new.startswith("ccc_") and new != old
    assert other.post("/v1/me/code", headers=bearer(old)).status_code == 401
    assert other.post("/v1/me/code", headers=bearer(new)).status_code == 201
    listed = other.get("/v1/me/tokens", headers=bearer(new)).get_json()
    assert [(t["token_id"], t["label"], t["current"]) for t in listed] == [(body["token_id"], "new phone", True)]


def test_suspending_and_restoring_a_citizen_does_not_revive_a_revoked_app_token(
        client: FlaskClient, other: FlaskClient) -> None:
    citizen = enrol(client)
    stolen = citizen["app_token"]
    base = f"/v1/admin/citizens/{citizen['citizen_id']}"
    new = client.post(f"{base}/app-tokens", headers=ADMIN).get_json()["app_token"]

    assert client.post(f"{base}/suspend", headers=ADMIN, json={}).status_code == 200
    assert client.post(f"{base}/restore", headers=ADMIN, json={}).status_code == 200

    assert me_status(other, stolen) == 401 and me_status(client, stolen) == 401
    assert other.post("/v1/me/code", headers=bearer(new)).status_code == 201


def test_a_second_device_keeps_the_first_and_the_citizen_can_revoke_either(
        client: FlaskClient, other: FlaskClient) -> None:
    citizen = enrol(client)
    phone = citizen["app_token"]
    added = client.post(f"/v1/admin/citizens/{citizen['citizen_id']}/app-tokens", headers=ADMIN,
                        json={"label": "tablet", "revoke_others": False}).get_json()
    assert added["revoked_tokens"] == 0
    tablet = added["app_token"]
    assert me_status(other, phone) == 200 and me_status(other, tablet) == 200

    listed = client.get("/v1/me/tokens", headers=bearer(phone)).get_json()
    assert [t["current"] for t in listed] == [True, False] and listed[1]["label"] == "tablet"
    gone = client.delete(f"/v1/me/tokens/{added['token_id']}", headers=bearer(phone))

    assert gone.status_code == 204
    assert me_status(other, tablet) == 401 and me_status(other, phone) == 200
    again = client.delete(f"/v1/me/tokens/{added['token_id']}", headers=bearer(phone))
    assert again.status_code == 404 and again.mimetype == "application/problem+json"


def test_a_citizen_cannot_revoke_another_citizen_s_token(client: FlaskClient) -> None:
    mine, theirs = enrol(client), enrol(client)
    their_tokens = client.get("/v1/me/tokens", headers=bearer(theirs["app_token"])).get_json()
    answer = client.delete(f"/v1/me/tokens/{their_tokens[0]['token_id']}", headers=bearer(mine["app_token"]))
    assert answer.status_code == 404
    assert me_status(client, theirs["app_token"]) == 200


def test_the_admin_revokes_one_app_token_and_lists_all_with_revoked_ones(client: FlaskClient) -> None:
    citizen = enrol(client)
    base = f"/v1/admin/citizens/{citizen['citizen_id']}/app-tokens"
    first = client.get(base, headers=ADMIN).get_json()[0]
    revoked = client.post(f"{base}/{first['token_id']}/revoke", headers=ADMIN, json={"reason": REASON})
    assert revoked.status_code == 200 and revoked.get_json()["status"] == "revoked"
    assert me_status(client, citizen["app_token"]) == 401
    listed = client.get(base, headers=ADMIN).get_json()
    assert [(t["token_id"], t["revoked_at"] is not None) for t in listed] == [(first["token_id"], True)]
    assert client.post(f"{base}/{first['token_id']}/revoke", headers=ADMIN).status_code == 404


def test_bad_input_is_a_422_problem_and_changes_nothing(client: FlaskClient) -> None:
    citizen = enrol(client)
    base = f"/v1/admin/citizens/{citizen['citizen_id']}/app-tokens"
    for body in ({"label": "x" * 65}, {"revoke_others": "perhaps"}, {"label": ""}, {"reason": "x"}):
        answer = client.post(base, headers=ADMIN, json=body)
        assert answer.status_code == 422 and answer.mimetype == "application/problem+json", body
    assert len(client.get(base, headers=ADMIN).get_json()) == 1
    assert me_status(client, citizen["app_token"]) == 200


# --- last use ----------------------------------------------------------------------------------

def test_the_token_list_shows_last_use_and_never_the_token(client: FlaskClient) -> None:
    citizen = enrol(client)
    spare = client.post(f"/v1/admin/citizens/{citizen['citizen_id']}/app-tokens", headers=ADMIN,
                        json={"revoke_others": False}).get_json()
    before = time.time()
    listed = client.get("/v1/me/tokens", headers=bearer(citizen["app_token"])).get_json()

    used, unused = listed
    assert used["current"] and used["last_used_at"] is not None
    assert abs(_epoch(used["last_used_at"]) - before) < 5
    assert unused["token_id"] == spare["token_id"] and unused["last_used_at"] is None
    text = str(listed) + str(client.get(f"/v1/admin/citizens/{citizen['citizen_id']}/app-tokens",
                                        headers=ADMIN).get_json())
    assert citizen["app_token"] not in text and spare["app_token"] not in text


def _epoch(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_last_use_is_written_at_most_once_a_minute_per_token_and_worker(
        app: Flask, client: FlaskClient, redis_client: "redis.Redis[bytes]") -> None:
    citizen = enrol(client)
    headers = bearer(citizen["app_token"])
    client.get("/v1/me", headers=headers)
    stamped = redis_client.hgetall(LAST_USED_KEY)
    assert len(stamped) == 1
    redis_client.delete(LAST_USED_KEY)
    for _ in range(5):
        assert client.get("/v1/me", headers=headers).status_code == 200
    assert redis_client.hgetall(LAST_USED_KEY) == {}  # within the minute: not written again


# --- the cache itself --------------------------------------------------------------------------

def test_workers_that_do_not_listen_see_a_revocation_by_the_generation_at_their_next_request(
        app: Flask, second: Flask) -> None:
    for worker in (app, second):
        rt_of(worker).principals.listen = False
    client, other = app.test_client(), second.test_client()
    gate = terminal(client)
    terminal_id = terminal_id_of(other, gate)
    assert other.get("/v1/terminals/me", headers=bearer(gate)).status_code == 200
    client.post(f"/v1/admin/terminals/{terminal_id}/revoke", headers=ADMIN)
    assert other.get("/v1/terminals/me", headers=bearer(gate)).status_code == 401
    assert not rt_of(second).principals.listening


def test_a_cache_hit_costs_no_redis_command_once_listening(
        app: Flask, client: FlaskClient, redis_client: "redis.Redis[bytes]") -> None:
    gate = terminal(client)
    listening(rt_of(app).principals)
    assert client.get("/v1/terminals/me", headers=bearer(gate)).status_code == 200  # cached, stamped

    def commands() -> int:
        stats = redis_client.info("commandstats")
        return sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_info",))

    before = commands()
    for _ in range(20):
        rt_of(app).principals.resolve(gate, lambda: pytest.fail("the database was asked"))  # type: ignore[arg-type,return-value]
    assert commands() == before


def test_announce_waits_for_every_listener_and_says_when_one_did_not_answer(
        redis_client: "redis.Redis[bytes]", redis_server: Any) -> None:
    from app.auth import CHANNEL, announce

    client = redis.Redis.from_url(redis_server.url)
    caches = [PrincipalCache(client=client), PrincipalCache(client=client)]
    listening(*caches)
    principal = Principal(Role.TERMINAL, "trm_1", "tok_1")
    for cache in caches:
        cache.resolve("cct_abc", lambda: principal)

    assert announce(redis_client)
    assert all(cache.resolve("cct_abc", lambda: None) is None for cache in caches)

    deaf = redis_client.pubsub()
    deaf.subscribe(CHANNEL)  # subscribed, never acknowledges
    started = time.monotonic()
    assert not announce(redis_client, wait=0.2)
    assert 0.2 <= time.monotonic() - started < 2
    deaf.close()
    for cache in caches:
        cache.close()
    client.close()


def test_a_cached_principal_stops_counting_when_the_auth_generation_moves(
        redis_client: "redis.Redis[bytes]", redis_server: Any) -> None:
    from app.auth import announce

    client = redis.Redis.from_url(redis_server.url)
    cache = PrincipalCache(client=client, listen=False)
    loads: list[int] = []

    def load() -> Principal:
        loads.append(1)
        return Principal(Role.TERMINAL, "trm_1", "tok_1")

    for _ in range(3):
        assert cache.resolve("cct_abc", load) == Principal(Role.TERMINAL, "trm_1")
    assert len(loads) == 1
    assert announce(redis_client)
    cache.resolve("cct_abc", load)
    assert len(loads) == 2
    client.close()


def test_without_redis_every_request_asks_the_database() -> None:
    cache = PrincipalCache(client=redis.Redis.from_url(NO_REDIS_URL, socket_connect_timeout=0.2))
    assert not cache.listening
    loads: list[int] = []

    def load() -> Principal:
        loads.append(1)
        return Principal(Role.CITIZEN, "cit_1", "tok_1")

    for _ in range(3):
        assert cache.resolve("ccc_abc", load) == Principal(Role.CITIZEN, "cit_1")
    assert len(loads) == 3


# --- audit -------------------------------------------------------------------------------------

def test_every_token_action_is_audited_without_tokens_or_free_text(app: Flask, client: FlaskClient) -> None:
    gate, spare = terminal(client), terminal(client)
    bureau = issuer(client, "student_card")
    citizen = enrol(client)
    start = len(actions(app))
    gate_id, spare_id, issuer_id = terminal_id_of(client, gate), terminal_id_of(client, spare), _issuer_id(app, bureau)
    base = f"/v1/admin/citizens/{citizen['citizen_id']}/app-tokens"
    rotated = client.post(f"/v1/admin/terminals/{spare_id}/token", headers=ADMIN).get_json()["terminal_token"]
    client.post(f"/v1/admin/terminals/{gate_id}/revoke", headers=ADMIN, json={"reason": REASON})
    issued = client.post(f"/v1/admin/issuers/{issuer_id}/token", headers=ADMIN).get_json()["issuer_token"]
    client.post(f"/v1/admin/issuers/{issuer_id}/revoke", headers=ADMIN, json={"reason": REASON})
    phone = client.post(base, headers=ADMIN, json={"revoke_others": False}).get_json()
    tablet = client.post(base, headers=ADMIN, json={"revoke_others": False}).get_json()
    client.post(f"{base}/{tablet['token_id']}/revoke", headers=ADMIN, json={"reason": REASON})
    client.delete(f"/v1/me/tokens/{phone['token_id']}", headers=bearer(citizen["app_token"]))

    entries = actions(app)[start:]

    assert [(e.actor_kind, e.action) for e in entries] == [
        ("admin", "terminal_token_rotated"), ("admin", "terminal_deregistered"),
        ("admin", "issuer_token_rotated"), ("admin", "issuer_tokens_revoked"),
        ("admin", "app_token_issued"), ("admin", "app_token_issued"), ("admin", "app_token_revoked"),
        ("citizen", "app_token_revoked")]
    assert entries[0].details["terminal_id"] == spare_id and entries[1].details["terminal_id"] == gate_id
    assert entries[1].site is not None and len(entries[1].details["revoked_tokens"]) == 1
    assert entries[3].details == {"issuer_id": issuer_id, "revoked_tokens": [entries[2].details["token_id"]]}
    assert entries[6].details["token_id"] == tablet["token_id"]
    assert entries[7].actor_id == citizen["citizen_id"] and entries[7].details["token_id"] == phone["token_id"]
    assert all(e.subject for e in entries[4:])  # the citizen's pseudonym
    text = " ".join(str((e.subject, e.site, e.reason, e.details)) for e in entries)
    for secret in (gate, spare, rotated, bureau, issued, phone["app_token"], tablet["app_token"], REASON):
        assert secret not in text


# --- the document ------------------------------------------------------------------------------

def test_token_lifecycle_answers_match_the_openapi_document(app: Flask, client: FlaskClient) -> None:
    from tests.test_openapi_contract import _assert_as_documented, _spec

    spec = _spec(client)
    gate, spare = terminal(client), terminal(client)
    bureau = issuer(client, "student_card")
    citizen = enrol(client)
    gate_id, spare_id, issuer_id = terminal_id_of(client, gate), terminal_id_of(client, spare), _issuer_id(app, bureau)
    cit = citizen["citizen_id"]

    def call(method: str, template: str, path: str, headers: dict[str, str], body: Any = None) -> Any:
        response = client.open(path, method=method.upper(), headers=headers, json=body)
        assert response.status_code < 300, (path, response.get_json())
        if response.status_code == 204:
            assert "204" in spec["paths"][template][method]["responses"] and not response.data
        else:
            _assert_as_documented(spec, template, method, response)
        return response.get_json(silent=True)

    call("post", "/v1/admin/terminals/{terminal_id}/token", f"/v1/admin/terminals/{spare_id}/token", ADMIN)
    call("post", "/v1/admin/terminals/{terminal_id}/revoke", f"/v1/admin/terminals/{gate_id}/revoke", ADMIN, {})
    call("post", "/v1/admin/issuers/{issuer_id}/token", f"/v1/admin/issuers/{issuer_id}/token", ADMIN)
    call("post", "/v1/admin/issuers/{issuer_id}/revoke", f"/v1/admin/issuers/{issuer_id}/revoke", ADMIN)
    added = call("post", "/v1/admin/citizens/{citizen_id}/app-tokens", f"/v1/admin/citizens/{cit}/app-tokens",
                 ADMIN, {"label": "tablet", "revoke_others": False})
    call("get", "/v1/admin/citizens/{citizen_id}/app-tokens", f"/v1/admin/citizens/{cit}/app-tokens", ADMIN)
    call("get", "/v1/me/tokens", "/v1/me/tokens", bearer(citizen["app_token"]))
    call("post", "/v1/admin/citizens/{citizen_id}/app-tokens/{token_id}/revoke",
         f"/v1/admin/citizens/{cit}/app-tokens/{added['token_id']}/revoke", ADMIN)
    mine = client.get("/v1/me/tokens", headers=bearer(citizen["app_token"])).get_json()[0]["token_id"]
    call("delete", "/v1/me/tokens/{token_id}", f"/v1/me/tokens/{mine}", bearer(citizen["app_token"]))


# --- the registry on both databases ------------------------------------------------------------

def test_rotation_and_deregistration_leave_exactly_the_expected_live_tokens(database: Any) -> None:
    from app.auth import authenticate
    from app.registry import enrolment, tokens

    with database.session() as session:
        first = enrolment.register_terminal(session, "metro", {"station": "五四广场"}, admin_id="admin")
    with database.session() as session:
        rotated = tokens.rotate_terminal_token(session, first.id, admin_id="admin")
    with database.session() as session:
        assert authenticate(session, first.token, None) is None
        assert authenticate(session, rotated.issued.token, None) == Principal(Role.TERMINAL, first.id)
        assert [t.id for t in tokens.tokens_of(session, Role.TERMINAL, first.id)] == [rotated.issued.token_id]
        assert len(tokens.tokens_of(session, Role.TERMINAL, first.id, include_revoked=True)) == 2
    with database.session() as session:
        assert tokens.deregister_terminal(session, first.id, "stolen", admin_id="admin").token_ids == (
            rotated.issued.token_id,)
    with database.session() as session:
        assert tokens.tokens_of(session, Role.TERMINAL, first.id) == []
        assert authenticate(session, rotated.issued.token, None) is None
