"""Codes through a real `citycode serve`: parallel terminals, interop via JWKS, Redis outage."""
from __future__ import annotations

import os
import signal
import threading
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.helpers import bearer
from tests.ids import resident_id

if TYPE_CHECKING:
    from conftest import Server

pytestmark = pytest.mark.slow


def _citizen(srv: "Server") -> str:
    response = srv.request("POST", "/v1/admin/citizens", headers=srv.admin_headers(),
                           json={"name": "李雷", "id_number": resident_id()})
    assert response.status_code == 201, response.text
    return response.json()["app_token"]  # type: ignore[no-any-return]


def _terminals(srv: "Server", count: int) -> list[str]:
    tokens = []
    for n in range(count):
        # Hall terminals: at /v1/verify they apply no scene policy, only the core's decision.
        response = srv.request("POST", "/v1/admin/terminals", headers=srv.admin_headers(),
                               json={"kind": "hall", "site": {"hall": "city", "counter": str(n + 1)}})
        assert response.status_code == 201, response.text
        tokens.append(response.json()["terminal_token"])
    return tokens


def _code(srv: "Server", app_token: str) -> str:
    response = srv.request("POST", "/v1/me/code", headers=bearer(app_token))
    assert response.status_code == 201, response.text
    return response.json()["code"]  # type: ignore[no-any-return]


def test_same_code_at_many_gates_in_parallel_is_accepted_exactly_once(srv: "Server") -> None:
    app_token = _citizen(srv)
    gates = _terminals(srv, 8)
    sessions = [requests.Session() for _ in gates]
    try:
        for _ in range(15):
            code = _code(srv, app_token)
            barrier = threading.Barrier(len(gates))
            answers: list[dict[str, Any]] = []

            def scan(session: requests.Session, token: str) -> None:
                barrier.wait()
                response = session.post(srv.url("/v1/verify"), headers=bearer(token),
                                        json={"code": code}, timeout=10)
                answers.append(response.json())

            threads = [threading.Thread(target=scan, args=pair) for pair in zip(sessions, gates)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            reasons = sorted(a["reason"] for a in answers)
            assert reasons == ["ok"] + ["replayed"] * (len(gates) - 1), reasons
    finally:
        for session in sessions:
            session.close()


def test_code_verifies_with_an_independent_jose_library_using_only_the_jwks(srv: "Server") -> None:
    code = _code(srv, _citizen(srv))
    jwks = srv.fresh("GET", "/.well-known/jwks.json").json()
    token = jwt.decode(code, KeySet.import_key_set(jwks), algorithms=["ES256"])
    assert token.header["typ"] == "cc" and token.header["alg"] == "ES256"
    assert set(token.claims) == {"iss", "sub", "iat", "exp", "jti", "ent"}
    jwt.JWTClaimsRegistry(exp={"essential": True}, jti={"essential": True}).validate(token.claims)


def test_verify_says_degraded_when_redis_is_gone_and_still_catches_forgeries(
        server_factory: Any, serving: ModuleType) -> None:
    server = server_factory.start(env={"CITYCODE_REDIS_RESTART_SECONDS": "300"})  # stays down
    app_token = _citizen(server)
    (gate,) = _terminals(server, 1)
    code = _code(server, app_token)
    head, payload, signature = code.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    os.kill(server.redis_pid(), signal.SIGTERM)
    assert serving.wait_gone([server.redis_pid()], 10) == []
    for _ in range(4):  # fresh connections, so both workers answer
        genuine = server.fresh("POST", "/v1/verify", headers=bearer(gate), json={"code": code})
        assert genuine.status_code == 200 and genuine.json()["reason"] == "degraded", genuine.text
        forged = server.fresh("POST", "/v1/verify", headers=bearer(gate),
                              json={"code": f"{head}.{payload}.{flipped}"})
        assert forged.status_code == 200 and forged.json()["reason"] == "bad_signature", forged.text
