"""Token revocation through a real `citycode serve` (two gunicorn workers, embedded Redis): a token
both workers have cached is refused by every request sent after the revocation answered, well
inside the principal cache's 10 s."""
from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import pytest

from tests.helpers import bearer
from tests.ids import resident_id

if TYPE_CHECKING:
    from conftest import Server

pytestmark = pytest.mark.slow

PARALLEL = 16  # fresh connections at once: both workers take some


def _statuses(srv: "Server", method: str, path: str, token: str) -> list[int]:
    barrier = threading.Barrier(PARALLEL)
    statuses: list[int] = []

    def send() -> None:
        barrier.wait()
        statuses.append(srv.fresh(method, path, headers=bearer(token)).status_code)

    threads = [threading.Thread(target=send) for _ in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return statuses


def test_revoked_tokens_are_refused_at_once_by_every_worker(srv: "Server") -> None:
    admin = srv.admin_headers()
    gate = srv.request("POST", "/v1/admin/terminals", headers=admin,
                       json={"kind": "bus", "site": {"line": "321", "vehicle": "鲁B-30003"}}).json()
    citizen = srv.request("POST", "/v1/admin/citizens", headers=admin,
                          json={"name": "李雷", "id_number": resident_id()}).json()
    warmed = time.monotonic()
    for _ in range(2):  # the first requests start each worker's revocation listener
        assert _statuses(srv, "GET", "/v1/terminals/me", gate["terminal_token"]) == [200] * PARALLEL
        assert _statuses(srv, "GET", "/v1/me", citizen["app_token"]) == [200] * PARALLEL
        time.sleep(0.3)

    rotated = srv.request("POST", f"/v1/admin/terminals/{gate['terminal_id']}/token", headers=admin)
    replaced = srv.request("POST", f"/v1/admin/citizens/{citizen['citizen_id']}/app-tokens", headers=admin,
                           json={"label": "new phone"})
    assert rotated.status_code == 201 and replaced.status_code == 201

    assert _statuses(srv, "GET", "/v1/terminals/me", gate["terminal_token"]) == [401] * PARALLEL
    assert _statuses(srv, "GET", "/v1/me", citizen["app_token"]) == [401] * PARALLEL
    assert time.monotonic() - warmed < 10, "too slow to tell revocation from the cache's expiry"
    assert _statuses(srv, "GET", "/v1/terminals/me", rotated.json()["terminal_token"]) == [200] * PARALLEL
    assert _statuses(srv, "GET", "/v1/me", replaced.json()["app_token"]) == [200] * PARALLEL

    deregistered = srv.request("POST", f"/v1/admin/terminals/{gate['terminal_id']}/revoke", headers=admin)
    assert deregistered.json()["revoked_tokens"] == 1
    assert _statuses(srv, "GET", "/v1/terminals/me", rotated.json()["terminal_token"]) == [401] * PARALLEL
