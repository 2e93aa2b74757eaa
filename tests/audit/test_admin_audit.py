"""Admin and issuer actions in the audit log: one entry each, written in the transaction that makes
the change, naming who acted and (by pseudonym) whom it concerns, with ids and types only."""
from __future__ import annotations

from typing import Any, Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from app.audit import log as audit
from app.audit.models import AuditEntry
from app.db.models import Citizen, Credential
from app.runtime import Runtime
from tests.helpers import ADMIN, bearer, credential, enrol, terminal
from tests.ids import resident_id

NAME, PHONE, CARD_NUMBER = "王小明", "13700001111", "S2026999888"
REASON = "王小明 lost his card 370202199001011234"  # free text: must not reach the audit log

NewEntries = Callable[[], list[AuditEntry]]


@pytest.fixture
def rt(app: Flask) -> Runtime:
    return app.extensions["citycode"]  # type: ignore[no-any-return]


@pytest.fixture
def new_entries(rt: Runtime) -> NewEntries:
    """Each call: the entries appended since the previous call, oldest first."""
    seen = [0]

    def since() -> list[AuditEntry]:
        with rt.db.session() as session:
            rows = list(session.scalars(select(AuditEntry).where(AuditEntry.seq > seen[0])
                                        .order_by(AuditEntry.seq)))
        seen[0] = rows[-1].seq if rows else seen[0]
        return rows

    return since


@pytest.fixture
def citizen(client: FlaskClient, new_entries: NewEntries) -> dict[str, Any]:
    """An enrolled citizen (with ``id_number``); their enrolment entry already seen."""
    id_number = resident_id()
    enrolled = enrol(client, name=NAME, id_number=id_number, phone=PHONE)
    new_entries()
    return {**enrolled, "id_number": id_number}


def _pseudonym(rt: Runtime, citizen_id: str) -> str:
    with rt.db.session() as session:
        return session.get(Citizen, citizen_id).pseudonym  # type: ignore[union-attr]


def _issuer(client: FlaskClient, *types: str) -> tuple[str, str]:
    response = client.post("/v1/admin/issuers", headers=ADMIN,
                           json={"name": "青岛市人社局", "credential_types": list(types)})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["issuer_id"], response.get_json()["issuer_token"]


def _who(entry: AuditEntry) -> tuple[str, str, str, str | None]:
    return entry.actor_kind, entry.actor_id, entry.action, entry.subject


def test_enrolling_a_citizen_is_one_admin_entry_about_their_pseudonym(
        rt: Runtime, client: FlaskClient, new_entries: NewEntries) -> None:
    enrolled = enrol(client, name=NAME, phone=PHONE)
    [entry] = new_entries()
    assert _who(entry) == ("admin", "admin", "citizen_enrolled", _pseudonym(rt, enrolled["citizen_id"]))
    assert entry.details == {"citizen_id": enrolled["citizen_id"]}
    assert (entry.site, entry.purpose, entry.reason) == (None, None, None)


def test_suspending_and_restoring_are_one_entry_each_and_a_no_op_is_none(
        rt: Runtime, client: FlaskClient, citizen: dict[str, Any], new_entries: NewEntries) -> None:
    pseudonym, cid = _pseudonym(rt, citizen["citizen_id"]), citizen["citizen_id"]
    suspend = f"/v1/admin/citizens/{cid}/suspend"
    assert client.post(suspend, headers=ADMIN, json={"reason": REASON}).status_code == 200
    [suspended] = new_entries()
    assert _who(suspended) == ("admin", "admin", "citizen_suspended", pseudonym)
    assert suspended.details == {"citizen_id": cid}
    assert client.post(suspend, headers=ADMIN, json={"reason": REASON}).status_code == 200
    assert new_entries() == []  # already suspended: nothing changed, nothing to audit
    assert client.post(f"/v1/admin/citizens/{cid}/restore", headers=ADMIN, json={}).status_code == 200
    [restored] = new_entries()
    assert _who(restored) == ("admin", "admin", "citizen_restored", pseudonym)


def test_registering_an_issuer_and_a_terminal_are_one_admin_entry_each(
        client: FlaskClient, new_entries: NewEntries) -> None:
    issuer_id, _ = _issuer(client, "student_card", "social_security_card")
    [registered] = new_entries()
    assert _who(registered) == ("admin", "admin", "issuer_registered", None)
    assert registered.details == {"issuer_id": issuer_id,
                                  "credential_types": ["social_security_card", "student_card"]}
    response = client.post("/v1/admin/terminals", headers=ADMIN,
                           json={"kind": "hall", "site": {"hall": "city", "counter": "2"}})
    [installed] = new_entries()
    assert _who(installed) == ("admin", "admin", "terminal_registered", None)
    assert installed.details == {"terminal_id": response.get_json()["terminal_id"], "kind": "hall"}
    assert installed.site == {"kind": "hall", "hall": "city", "counter": "2"}


def test_issuing_and_revoking_are_one_issuer_entry_each_by_id_and_type(
        rt: Runtime, client: FlaskClient, citizen: dict[str, Any], new_entries: NewEntries) -> None:
    issuer_id, token = _issuer(client, "social_security_card")
    new_entries()
    card = credential(client, token, citizen["citizen_id"], "social_security_card", CARD_NUMBER, bank="青岛银行")
    [issued] = new_entries()
    pseudonym = _pseudonym(rt, citizen["citizen_id"])
    assert _who(issued) == ("issuer", issuer_id, "credential_issued", pseudonym)
    assert issued.details == {"credential_id": card["credential_id"], "credential_types": ["social_security_card"]}
    revoke = f"/v1/issuer/credentials/{card['credential_id']}/revoke"
    for _ in range(2):
        assert client.post(revoke, headers=bearer(token), json={"reason": REASON}).status_code == 200
    [revoked] = new_entries()  # the second revocation changed nothing
    assert _who(revoked) == ("issuer", issuer_id, "credential_revoked", pseudonym)
    assert revoked.details == issued.details


def test_rotating_the_keys_is_one_admin_entry_naming_the_new_kids(
        client: FlaskClient, new_entries: NewEntries) -> None:
    new_entries()
    response = client.post("/v1/admin/keys/rotate", headers=ADMIN)
    assert response.status_code == 200, response.get_json()
    [rotated] = new_entries()
    assert _who(rotated) == ("admin", "admin", "keys_rotated", None)
    assert rotated.details == response.get_json()


def test_refused_actions_append_nothing(
        client: FlaskClient, citizen: dict[str, Any], new_entries: NewEntries) -> None:
    _, token = _issuer(client, "student_card")
    new_entries()
    response = client.post("/v1/issuer/credentials", headers=bearer(token), json={
        "citizen_id": citizen["citizen_id"], "type": "social_security_card", "number": CARD_NUMBER})
    assert response.status_code == 403
    assert client.post("/v1/admin/citizens/cit_nobody/suspend", headers=ADMIN, json={}).status_code == 404
    assert client.post("/v1/admin/terminals", headers=ADMIN,
                       json={"kind": "metro", "site": {"station": "nowhere"}}).status_code == 422
    assert new_entries() == []


def test_the_change_and_its_entry_commit_together(
        rt: Runtime, client: FlaskClient, citizen: dict[str, Any], new_entries: NewEntries,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _, token = _issuer(client, "student_card")
    new_entries()

    def failing_append(session: Any, **fields: Any) -> Any:
        raise OperationalError("INSERT", {}, Exception("disk full"))

    monkeypatch.setattr(audit, "append", failing_append)
    response = client.post("/v1/issuer/credentials", headers=bearer(token), json={
        "citizen_id": citizen["citizen_id"], "type": "student_card", "number": CARD_NUMBER})
    assert response.status_code == 500
    suspended = client.post(f"/v1/admin/citizens/{citizen['citizen_id']}/suspend", headers=ADMIN, json={})
    assert suspended.status_code == 500
    monkeypatch.undo()
    with rt.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Credential)) == 0
        assert session.get(Citizen, citizen["citizen_id"]).status == "active"  # type: ignore[union-attr]
    assert new_entries() == []


def test_my_history_shows_what_issuers_and_the_admin_did_about_me(
        client: FlaskClient, citizen: dict[str, Any]) -> None:
    _, token = _issuer(client, "student_card")
    card = credential(client, token, citizen["citizen_id"], "student_card", CARD_NUMBER)
    client.post(f"/v1/issuer/credentials/{card['credential_id']}/revoke", headers=bearer(token), json={})
    for action in ("suspend", "restore"):
        client.post(f"/v1/admin/citizens/{citizen['citizen_id']}/{action}", headers=ADMIN, json={"reason": REASON})
    response = client.get("/v1/me/history", headers=bearer(citizen["app_token"]))
    assert response.status_code == 200, response.get_json()
    entries = response.get_json()["entries"]
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("citizen_restored", "admin"), ("citizen_suspended", "admin"), ("credential_revoked", "issuer"),
        ("credential_issued", "issuer"), ("citizen_enrolled", "admin")]
    for entry in entries[2:4]:
        assert (entry["credential_id"], entry["credential_types"]) == (card["credential_id"], ["student_card"])
    assert all(set(e) == {"seq", "at", "action", "actor", "where"} for e in entries[:2] + entries[4:])
    assert all(e["where"] == {} and e["at"].endswith(("Z", "+00:00")) for e in entries)


def test_the_chain_verifies_and_no_row_holds_personal_data(
        rt: Runtime, client: FlaskClient, citizen: dict[str, Any]) -> None:
    _, token = _issuer(client, "social_security_card")
    card = credential(client, token, citizen["citizen_id"], "social_security_card", CARD_NUMBER, bank="青岛银行")
    client.post(f"/v1/issuer/credentials/{card['credential_id']}/revoke", headers=bearer(token),
                json={"reason": REASON})
    client.post(f"/v1/admin/citizens/{citizen['citizen_id']}/suspend", headers=ADMIN, json={"reason": REASON})
    terminal(client, "bus")
    client.post("/v1/admin/keys/rotate", headers=ADMIN)
    with rt.db.session() as session:
        assert audit.verify_chain(session) == (True, None)
        rows = list(session.scalars(select(AuditEntry)))
    assert {e.action for e in rows} == {"citizen_enrolled", "issuer_registered", "credential_issued",
                                        "credential_revoked", "citizen_suspended", "terminal_registered",
                                        "keys_rotated"}
    text = "".join(audit.canonical_json([e.actor_id, e.subject, e.site, e.purpose, e.reason, e.details])
                   for e in rows)
    for secret in (NAME, PHONE, citizen["id_number"], CARD_NUMBER, "青岛银行", "lost his card", "青岛市人社局"):
        assert secret not in text
