"""Tap uploads through a real `citycode serve` (gunicorn, two workers, embedded Redis, SQLite file):
an acknowledged batch is committed — it survives SIGKILL of the whole server at once — and two
readers uploading one code's accepts at the same moment through two workers meet in one anomaly."""
from __future__ import annotations

import base64
import json
import threading
import time
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

from tests.helpers import bearer
from tests.ids import resident_id

if TYPE_CHECKING:
    from conftest import Server, ServerFactory

pytestmark = pytest.mark.slow


def _bus(srv: "Server", vehicle: str) -> str:
    response = srv.request("POST", "/v1/admin/terminals", headers=srv.admin_headers(),
                           json={"kind": "bus", "site": {"line": "321", "vehicle": vehicle}})
    assert response.status_code == 201, response.text
    return response.json()["terminal_token"]  # type: ignore[no-any-return]


def _rider_sub(srv: "Server") -> str:
    """Enrol a citizen and read their pseudonym from one of their codes (what a reader sees)."""
    response = srv.request("POST", "/v1/admin/citizens", headers=srv.admin_headers(),
                           json={"name": "王芳", "id_number": resident_id()})
    assert response.status_code == 201, response.text
    code = srv.request("POST", "/v1/me/code", headers=bearer(response.json()["app_token"])).json()["code"]
    payload = code.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims["sub"]  # type: ignore[no-any-return]


def _journal(sub: str, reader: str, shared_jti: str) -> list[dict[str, Any]]:
    start = time.time() - 3600
    records = [{"seq": seq, "jti": f"{reader}-{seq}", "sub": sub, "scanned_at": start + seq * 6,
                "decision": "accept", "reason": "ok", "ent": ["stu"], "trust_age_s": 30.0,
                "result": {"fare": {"amount_cents": 100, "category": "student"}}}
               for seq in range(1, 501)]
    records[249]["jti"] = shared_jti
    return records


def test_acknowledged_uploads_survive_a_sigkill_and_concurrent_readers_meet_in_one_anomaly(
        server_factory: "ServerFactory", serving: ModuleType) -> None:
    srv = server_factory.start()
    readers = {"A": _bus(srv, "鲁B-10001"), "B": _bus(srv, "鲁B-20002")}
    sub = _rider_sub(srv)
    journals = {name: _journal(sub, name, "the-same-code") for name in readers}
    answers: dict[str, Any] = {}
    start = threading.Barrier(len(readers))

    def send(name: str) -> None:
        start.wait()
        answers[name] = srv.fresh("POST", "/v1/taps", headers=bearer(readers[name]),
                                  json={"records": journals[name]})

    threads = [threading.Thread(target=send, args=(name,)) for name in readers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # The moment both answers are in, kill everything (master, workers, redis) without warning.
    workers = srv.worker_pids()
    srv.proc.kill()
    srv.proc.wait()
    assert serving.wait_gone(workers + serving.redis_pids_for(srv.data_dir), 10) == []

    for name, response in answers.items():
        assert response.status_code == 200, response.text
        assert (response.json()["stored"], response.json()["duplicates"]) == (500, 0)
    found = [a for response in answers.values() for a in response.json()["anomalies"]]
    assert [(a["kind"], a["jti"]) for a in found] == [("double_use", "the-same-code")]

    again = server_factory.start(srv.data_dir)
    for name, token in readers.items():
        response = again.request("POST", "/v1/taps", headers=bearer(token),
                                 json={"records": journals[name]})
        assert response.status_code == 200, response.text
        assert response.json() == {"stored": 0, "duplicates": 500, "anomalies": [], "superseded": 0}
    listed = again.request("GET", "/v1/admin/anomalies", headers=again.admin_headers()).json()
    assert [a["kind"] for a in listed["anomalies"]] == ["double_use"]
