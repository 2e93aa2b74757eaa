"""GET /v1/me/history: the scans of a citizen's codes, from the audit log, over HTTP.

Every citizen's history starts with their enrolment (``citizen_enrolled``, by the admin)."""
from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.audit import log as audit
from app.audit.models import AuditEntry
from tests.helpers import ADMIN, bearer, code, drain, enrol


def _terminal(client: FlaskClient, kind: str, **site: str) -> tuple[str, str]:
    response = client.post("/v1/admin/terminals", headers=ADMIN, json={"kind": kind, "site": site})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    return body["terminal_token"], body["terminal_id"]


def _scan(client: FlaskClient, terminal_token: str, scanned: str) -> dict[str, Any]:
    response = client.post("/v1/verify", headers=bearer(terminal_token), json={"code": scanned})
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def _history(client: FlaskClient, app_token: str, **query: Any) -> dict[str, Any]:
    drain(client.application)  # scans reach the audit log through the record writer
    response = client.get("/v1/me/history", headers=bearer(app_token), query_string=query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def _entries(app: Flask) -> list[AuditEntry]:
    drain(app)
    with app.extensions["citycode"].db.session() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))


def test_a_scan_via_verify_appears_in_the_citizens_history(client: FlaskClient) -> None:
    citizen = enrol(client)
    token, terminal_id = _terminal(client, "hall", hall="city", counter="7")
    assert _scan(client, token, code(client, citizen["app_token"]))["decision"] == "accept"
    entry, enrolled = _history(client, citizen["app_token"])["entries"]
    assert enrolled["action"] == "citizen_enrolled"
    assert entry["action"] == "scan" and entry["actor"] == "terminal"
    assert entry["terminal_id"] == terminal_id
    assert entry["where"] == {"kind": "hall", "hall": "city", "counter": "7"}
    assert (entry["decision"], entry["reason"]) == ("accept", "ok")
    assert entry["at"].endswith(("Z", "+00:00"))


def test_denied_scans_of_my_code_are_in_my_history_too_newest_first(client: FlaskClient) -> None:
    citizen = enrol(client)
    token, _ = _terminal(client, "hall", hall="city")
    scanned = code(client, citizen["app_token"])
    _scan(client, token, scanned)
    assert _scan(client, token, scanned)["reason"] == "replayed"
    *entries, enrolled = _history(client, citizen["app_token"])["entries"]
    assert enrolled["action"] == "citizen_enrolled"
    assert [(e["decision"], e["reason"]) for e in entries] == [("deny", "replayed"), ("accept", "ok")]
    assert entries[0]["seq"] > entries[1]["seq"]


def test_a_bus_scan_shows_where_it_happened(client: FlaskClient) -> None:
    citizen = enrol(client)
    token, terminal_id = _terminal(client, "bus", line="1", vehicle="鲁B-12345")
    decided = _scan(client, token, code(client, citizen["app_token"]))
    entry, enrolled = _history(client, citizen["app_token"])["entries"]
    assert enrolled["action"] == "citizen_enrolled"
    assert entry["where"] == {"kind": "bus", "line": "1", "vehicle": "鲁B-12345"}
    assert (entry["terminal_id"], entry["decision"]) == (terminal_id, decided["decision"])
    if "fare" in decided:
        assert entry["fare"] == decided["fare"]


def test_history_shows_only_my_own_entries(app: Flask, client: FlaskClient) -> None:
    me, other = enrol(client), enrol(client)
    token, _ = _terminal(client, "hall", hall="city")
    _scan(client, token, code(client, other["app_token"]))
    _scan(client, token, "not-a-code")  # unauthenticated: audited without a subject
    assert [e["action"] for e in _history(client, me["app_token"])["entries"]] == ["citizen_enrolled"]
    assert [e["action"] for e in _history(client, other["app_token"])["entries"]] == ["scan", "citizen_enrolled"]
    assert [(e.action, e.subject, e.reason) for e in _entries(app)][-1] == ("scan", None, "malformed")


def test_history_pages_backwards_with_before(client: FlaskClient) -> None:
    citizen = enrol(client)
    token, _ = _terminal(client, "hall", hall="city")
    for _ in range(5):
        _scan(client, token, code(client, citizen["app_token"]))
    seen: list[int] = []
    page = _history(client, citizen["app_token"], limit=2)
    while True:
        seen += [e["seq"] for e in page["entries"]]
        if page["next_before"] is None:
            break
        page = _history(client, citizen["app_token"], limit=2, before=page["next_before"])
    assert len(seen) == 6 and seen == sorted(seen, reverse=True)  # 5 scans and the enrolment
    assert len(_history(client, citizen["app_token"])["entries"]) == 6


def test_bad_paging_arguments_are_422(client: FlaskClient) -> None:
    citizen = enrol(client)
    for query in ({"limit": 0}, {"limit": 201}, {"before": 0}, {"limit": "many"}):
        response = client.get("/v1/me/history", headers=bearer(citizen["app_token"]), query_string=query)
        assert response.status_code == 422, query
        assert response.mimetype == "application/problem+json"


def test_before_beyond_the_seq_column_is_422_not_a_database_error(client: FlaskClient) -> None:
    citizen = enrol(client)
    headers = bearer(citizen["app_token"])
    largest = _history(client, citizen["app_token"], before=2**63 - 1)
    assert [e["action"] for e in largest["entries"]] == ["citizen_enrolled"]
    for before in (2**63, 10**40):  # SQLite cannot bind these (was a 500)
        response = client.get("/v1/me/history", headers=headers, query_string={"before": before})
        assert response.status_code == 422, before
        assert response.mimetype == "application/problem+json"
        assert "before" in response.get_json()["errors"]


def test_history_is_for_citizens_only(client: FlaskClient) -> None:
    token, _ = _terminal(client, "hall", hall="city")
    assert client.get("/v1/me/history", headers=bearer(token)).status_code == 403
    assert client.get("/v1/me/history").status_code == 401


def test_scans_keep_the_chain_valid(app: Flask, client: FlaskClient) -> None:
    citizen = enrol(client)
    token, _ = _terminal(client, "hall", hall="city")
    for _ in range(3):
        _scan(client, token, code(client, citizen["app_token"]))
    with app.extensions["citycode"].db.session() as session:
        assert audit.verify_chain(session) == (True, None)
