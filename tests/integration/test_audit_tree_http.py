"""The audit tree through a real `citycode serve`: after the supervised record writer drained a
scan, the signed tree head covers it, the citizen's proof verifies with public material only, and
`citycode audit verify` passes on the server's database."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from tests.audit.test_audit_proofs import check_entry_proof
from tests.helpers import bearer
from tests.ids import resident_id

if TYPE_CHECKING:
    from conftest import Server

pytestmark = pytest.mark.slow


def _until(fetch: Any, done: Any, what: str, server: "Server", timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"{what}: {value}\n" + server.stderr_tail()
        time.sleep(0.1)


def test_the_tree_head_covers_scans_drained_by_the_real_writer(server: "Server") -> None:
    admin = server.admin_headers()
    citizen = server.request("POST", "/v1/admin/citizens", headers=admin,
                             json={"name": "王芳", "id_number": resident_id()}).json()
    gate = server.request("POST", "/v1/admin/terminals", headers=admin,
                          json={"kind": "bus", "site": {"line": "321", "vehicle": "鲁B-30003"}}).json()
    app = bearer(citizen["app_token"])
    for _ in range(3):
        code = server.request("POST", "/v1/me/code", headers=app).json()["code"]
        decided = server.request("POST", "/v1/verify", headers=bearer(gate["terminal_token"]), json={"code": code})
        assert decided.status_code == 200  # accepted or denied, every decided scan is recorded
    entries = _until(lambda: server.request("GET", "/v1/me/history", headers=app).json()["entries"],
                     lambda got: sum(e["action"] == "scan" for e in got) == 3, "scans not drained", server)
    seq = entries[0]["seq"]
    proof = _until(lambda: server.fresh("GET", f"/v1/me/history/{seq}/proof", headers=app),
                   lambda got: got.status_code == 200, "no proof", server).json()
    head = server.fresh("GET", "/v1/audit/tree-head").json()
    assert head["tree_size"] >= proof["leaf"]["index"] + 1
    check_entry_proof(proof, server.fresh("GET", "/v1/audit/keys").json())
    verified = server.cli("audit", "verify")
    assert verified.returncode == 0 and verified.stdout.startswith("audit log ok ("), \
        verified.stdout + verified.stderr
