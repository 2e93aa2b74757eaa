"""Two `citycode serve` instances over one PostgreSQL and one Redis, as a scaled-out deployment
runs them (deploy/README.md).

The set-up is tests/scaled_support.py: one throw-away PostgreSQL, one external redis-server, two
instances (own ports and data dirs) sharing ``DATABASE_URL``, ``REDIS_URL``, the admin token and
one keys folder, launched at the same moment on an empty database and keys folder.

What must hold across instances, with the delay each one documents (deploy/README.md):
- one code sent to both at once is accepted exactly once (the replay claim is in the shared Redis);
- keys rotated on one: codes signed with the new key verify on the other at once (it was
  published as ``next`` before), and the other signs with it within 1 s (``KeyRingCache`` re-reads
  the shared folder once a second);
- a citizen suspended on one is denied on the other from the next scan (the trust-feed generation
  in Redis is compared in the scan's own script; 5 s if an announcement were lost);
- a terminal token revoked on one is refused by every worker of the other as soon as the revoke
  call answered (pub/sub on ``cc:auth:revoked`` reaches every worker subscribed to the one Redis);
- both instances run a record writer in one consumer group: every scan lands in the audit log once
  and the hash chain stays whole.
"""
from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import requests

from app.records.stream import record_streams
from tests.helpers import bearer
from tests.ids import resident_id
from tests.pg_support import PostgresServer, postgres_server  # noqa: F401
from tests.scaled_support import Pair, start_pair

if TYPE_CHECKING:
    from conftest import Server

pytestmark = pytest.mark.slow

KEY_RING_CHECK_SECONDS = 1.0  # app.signing.keyring.KeyRingCache.check_interval
GATES_PER_INSTANCE = 3


@pytest.fixture(scope="module")
def pair(postgres_server: PostgresServer, serving: ModuleType) -> Iterator[Pair]:  # noqa: F811
    with start_pair(postgres_server, serving) as started:
        yield started


def _enrol(srv: "Server") -> dict[str, Any]:
    response = srv.request("POST", "/v1/admin/citizens", headers=srv.admin_headers(),
                           json={"name": "李雷", "id_number": resident_id()})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _hall_gate(srv: "Server", counter: int = 1) -> dict[str, Any]:
    """A hall terminal: at /v1/verify it applies no scene policy, only the core's decision."""
    response = srv.request("POST", "/v1/admin/terminals", headers=srv.admin_headers(),
                           json={"kind": "hall", "site": {"hall": "city", "counter": str(counter)}})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _code(srv: "Server", app_token: str) -> str:
    response = srv.fresh("POST", "/v1/me/code", headers=bearer(app_token))
    assert response.status_code == 201, response.text
    return response.json()["code"]  # type: ignore[no-any-return]


def _verify(srv: "Server", gate_token: str, code: str) -> dict[str, Any]:
    response = srv.fresh("POST", "/v1/verify", headers=bearer(gate_token), json={"code": code})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _kid(code: str) -> str:
    head = code.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"]  # type: ignore[no-any-return]


def test_both_instances_started_at_once_share_one_schema_and_one_key_ring(pair: Pair) -> None:
    jwks = [srv.fresh("GET", "/.well-known/jwks.json").json() for srv in pair.both]
    assert jwks[0] == jwks[1] and len(jwks[0]["keys"]) == 2
    with psycopg.connect(pair.database_url) as connection:
        (heads,) = connection.execute("SELECT count(*) FROM alembic_version").fetchone()  # type: ignore[misc]
    assert heads == 1


def test_same_code_sent_to_both_instances_at_once_is_accepted_exactly_once(pair: Pair) -> None:
    citizen = _enrol(pair.a)
    gates = [(srv, _hall_gate(srv, n + 1)["terminal_token"])  # registered on each: the other knows it
             for srv in pair.both for n in range(GATES_PER_INSTANCE)]
    for _ in range(12):
        code = _code(pair.a, citizen["app_token"])
        barrier = threading.Barrier(len(gates))
        answers: list[tuple[int, str]] = []

        def scan(srv: "Server", token: str) -> None:
            with requests.Session() as session:
                barrier.wait()
                response = session.post(srv.url("/v1/verify"), headers=bearer(token), json={"code": code},
                                        timeout=10)
            answers.append((srv.port, response.json()["reason"]))

        threads = [threading.Thread(target=scan, args=gate) for gate in gates]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        reasons = sorted(reason for _, reason in answers)
        assert reasons == ["ok"] + ["replayed"] * (len(gates) - 1), answers


def test_keys_rotated_on_one_instance_sign_and_verify_on_the_other(pair: Pair) -> None:
    citizen = _enrol(pair.a)
    gate_a, gate_b = _hall_gate(pair.a)["terminal_token"], _hall_gate(pair.b)["terminal_token"]
    before_b = _code(pair.b, citizen["app_token"])  # signed with the key about to retire

    rotated = pair.a.request("POST", "/v1/admin/keys/rotate", headers=pair.a.admin_headers())
    assert rotated.status_code == 200, rotated.text
    new_kid = rotated.json()["current_kid"]
    assert _kid(before_b) != new_kid and _kid(before_b) in rotated.json()["published_kids"]

    # Every worker of either instance signs with the new key within the key ring's check interval
    # (the shared folder is re-read once a second); the other instance verifies such a code at once:
    # the new current key was published as `next` on both before the rotation.
    for signer, checker, gate in ((pair.a, pair.b, gate_b), (pair.b, pair.a, gate_a)):
        code = _signed_with(signer, citizen["app_token"], new_kid)
        assert _verify(checker, gate, code)["reason"] == "ok"
    assert _verify(pair.a, gate_a, before_b)["reason"] == "ok"  # the retired key stays published
    deadline = time.monotonic() + KEY_RING_CHECK_SECONDS + 2.0
    while True:  # every worker of both publishes the same ring (fresh connections: any worker answers)
        jwks = [srv.fresh("GET", "/.well-known/jwks.json").json() for srv in pair.both * 3]
        if all(keys == jwks[0] for keys in jwks) and len(jwks[0]["keys"]) == 3:
            break
        assert time.monotonic() < deadline, jwks
        time.sleep(0.1)


def _signed_with(srv: "Server", app_token: str, kid: str) -> str:
    deadline = time.monotonic() + KEY_RING_CHECK_SECONDS + 2.0  # 2 s of slack on a loaded machine
    while _kid(code := _code(srv, app_token)) != kid:
        assert time.monotonic() < deadline, f"instance on port {srv.port} still signs with {_kid(code)}"
        time.sleep(0.05)
    return code


def test_citizen_suspended_on_one_instance_is_denied_on_the_other_at_the_next_scan(pair: Pair) -> None:
    citizen = _enrol(pair.a)
    gate_b = _hall_gate(pair.b)["terminal_token"]
    warm = _code(pair.b, citizen["app_token"])
    assert _verify(pair.b, gate_b, warm)["reason"] == "ok"  # B's workers hold a trust state now
    codes = [_code(pair.a, citizen["app_token"]) for _ in range(4)]  # minted before the suspension

    suspended = pair.a.request("POST", f"/v1/admin/citizens/{citizen['citizen_id']}/suspend",
                               headers=pair.a.admin_headers(), json={"reason": "test"})
    assert suspended.status_code == 200, suspended.text

    answers = [_verify(pair.b, gate_b, code) for code in codes]  # fresh connections: both workers
    assert [(a["decision"], a["reason"]) for a in answers] == [("deny", "suspended")] * len(codes)
    minted = pair.b.fresh("POST", "/v1/me/code", headers=bearer(citizen["app_token"]))
    assert minted.status_code != 201, minted.text


def test_terminal_token_revoked_on_one_instance_is_refused_by_the_other_at_once(pair: Pair) -> None:
    gate = _hall_gate(pair.a)
    token = gate["terminal_token"]
    for _ in range(3):  # every worker of B authenticates (and caches) the token; listeners subscribe
        statuses = _parallel(pair.b, "GET", "/v1/terminals/me", token)
        assert statuses == [200] * len(statuses)
        time.sleep(0.3)

    revoked = pair.a.request("POST", f"/v1/admin/terminals/{gate['terminal_id']}/revoke",
                             headers=pair.a.admin_headers(), json={"reason": "stolen"})
    assert revoked.status_code == 200 and revoked.json()["revoked_tokens"] == 1, revoked.text
    statuses = _parallel(pair.b, "GET", "/v1/terminals/me", token)
    assert statuses == [401] * len(statuses)


def _parallel(srv: "Server", method: str, path: str, token: str, count: int = 12) -> list[int]:
    """``count`` requests at once on fresh connections, so every worker takes some."""
    barrier = threading.Barrier(count)
    statuses: list[int] = []

    def send() -> None:
        barrier.wait()
        statuses.append(srv.fresh(method, path, headers=bearer(token)).status_code)

    threads = [threading.Thread(target=send) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return statuses


def test_two_record_writers_in_one_group_store_every_scan_once(pair: Pair) -> None:
    citizen = _enrol(pair.a)
    gates = {srv.port: _hall_gate(srv)["terminal_token"] for srv in pair.both}
    _drained(pair)
    before = _scan_rows(pair)
    sent = 0
    for n in range(40):
        srv = pair.both[n % 2]
        code = _code(srv, citizen["app_token"])
        assert _verify(srv, gates[srv.port], code)["reason"] == "ok"
        other = pair.both[(n + 1) % 2]
        assert _verify(other, gates[other.port], code)["reason"] == "replayed"
        sent += 2
    _drained(pair)
    assert _scan_rows(pair) - before == sent
    consumers = {c["name"] for name in record_streams("cc:scans")
                 for c in pair.redis.xinfo_consumers(name, "audit-writer")}
    assert len(consumers) >= 2, consumers  # one writer per instance, in the same group
    checked = pair.a.cli("audit", "verify", timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _drained(pair: Pair, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        streams = record_streams("cc:scans")
        pending = sum(pair.redis.xpending(name, "audit-writer")["pending"] for name in streams)
        if sum(pair.redis.xlen(name) for name in streams) == 0 and pending == 0:
            return
        assert time.monotonic() < deadline, "the record writers did not drain the stream"
        time.sleep(0.1)


def _scan_rows(pair: Pair) -> int:
    with psycopg.connect(pair.database_url) as connection:
        (count,) = connection.execute("SELECT count(*) FROM audit_log WHERE action = 'scan'").fetchone()  # type: ignore[misc]
    return int(count)
