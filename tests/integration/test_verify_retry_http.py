"""A verify retry through a real `citycode serve` (two gunicorn workers, embedded Redis): requests
with one ``request_id`` landing on different workers at once get one decision between them."""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pytest

from tests.helpers import bearer
from tests.ids import resident_id

if TYPE_CHECKING:
    from conftest import Server

pytestmark = pytest.mark.slow


def test_parallel_retries_across_workers_get_the_one_first_decision(srv: "Server") -> None:
    citizen = srv.request("POST", "/v1/admin/citizens", headers=srv.admin_headers(),
                          json={"name": "韩梅梅", "id_number": resident_id()}).json()
    gate = srv.request("POST", "/v1/admin/terminals", headers=srv.admin_headers(),
                       json={"kind": "bus", "site": {"line": "321", "vehicle": "鲁B-20002"}}).json()
    headers = bearer(gate["terminal_token"])
    for attempt in range(5):
        code = srv.request("POST", "/v1/me/code", headers=bearer(citizen["app_token"])).json()["code"]
        body = {"code": code, "request_id": f"bus-20002:{attempt}"}
        barrier = threading.Barrier(6)
        answers: list[tuple[int, Any]] = []

        def send() -> None:
            barrier.wait()
            response = srv.fresh("POST", "/v1/verify", headers=headers, json=body)  # any worker
            answers.append((response.status_code, response.json()))

        threads = [threading.Thread(target=send) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(answers) == 6 and all(answer == answers[0] for answer in answers), answers
        status, first = answers[0]
        assert status == 200 and first["reason"] in ("ok", "duplicate_tap"), first
        again = srv.fresh("POST", "/v1/verify", headers=headers, json={"code": code})
        assert again.json()["reason"] == "replayed"
