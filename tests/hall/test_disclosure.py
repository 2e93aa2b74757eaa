"""Consent-based disclosure (扫码亮证) over HTTP: a hall officer's scan asks, the citizen answers
in the app, the requesting terminal reads an approval exactly once; all of it audited.

Real Redis and a real SQLite file; the desk's clock is injected so expiry needs no sleeping.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from app import compose
from app.audit import log as audit
from app.audit.models import AuditEntry
from app.config import Settings
from app.db.models import Citizen
from app.errors import Conflict, Gone
from app.hall.disclosure import DisclosureDesk
from app.hall.disclosure_store import DisclosureStore
from app.registry import citizens
from app.runtime import Runtime
from tests.helpers import ADMIN, bearer, code, credential, drain, enrol, issuer, redis_unreachable
from tests.ids import resident_id

TTL = 300
NAME, PHONE = "李四光", "13912345678"
SOCIAL_NUMBER, LICENCE_NUMBER = "SS370200987654", "91370200MA3C7XYZ9Q"
PURPOSE = "办理户籍迁入 (household registration)"


class DeskClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Holder:
    app_token: str
    citizen_id: str
    id_number: str
    credential_ids: dict[str, str]
    issuer_tokens: dict[str, str]


@dataclass
class Officer:
    token: str
    terminal_id: str


def _terminal(client: FlaskClient, kind: str, **site: str) -> Officer:
    response = client.post("/v1/admin/terminals", headers=ADMIN, json={"kind": kind, "site": site})
    assert response.status_code == 201, response.get_json()
    return Officer(response.get_json()["terminal_token"], response.get_json()["terminal_id"])


@pytest.fixture
def rt(app: Flask) -> Runtime:
    return app.extensions["citycode"]  # type: ignore[no-any-return]


@pytest.fixture
def desk_clock(rt: Runtime) -> DeskClock:
    """Replace the runtime's desk with one on an injected clock (before the first request)."""
    clock = DeskClock(time.time())
    rt.disclosures = DisclosureDesk(rt.scans, rt.verifier, rt.records, DisclosureStore(rt.redis), rt.db, rt.vault,
                                    ttl_seconds=TTL, clock=clock)
    return clock


@pytest.fixture
def holder(client: FlaskClient) -> Holder:
    id_number = resident_id()
    enrolled = enrol(client, name=NAME, id_number=id_number, phone=PHONE)
    police = issuer(client, "id_card", name="青岛市公安局")
    social = issuer(client, "social_security_card", "business_licence", name="青岛市人社局")
    cid = enrolled["citizen_id"]
    ids = {"id_card": credential(client, police, cid, "id_card", id_number)["credential_id"],
           "social_security_card": credential(client, social, cid, "social_security_card", SOCIAL_NUMBER,
                                              bank="青岛银行")["credential_id"],
           "business_licence": credential(client, social, cid, "business_licence",
                                          LICENCE_NUMBER)["credential_id"]}
    return Holder(enrolled["app_token"], cid, id_number, ids,
                  {"id_card": police, "social_security_card": social, "business_licence": social})


@pytest.fixture
def officer(client: FlaskClient) -> Officer:
    return _terminal(client, "hall", hall="city", counter="3")


def _ask(client: FlaskClient, officer: Officer, scanned: str, types: Any = ("id_card",),
         purpose: str = PURPOSE, fields: Any = None) -> Any:
    body = {"code": scanned, "credential_types": list(types), "purpose": purpose}
    if fields is not None:
        body["fields"] = fields
    return client.post("/v1/disclosures", headers=bearer(officer.token), json=body)


def _request(client: FlaskClient, officer: Officer, holder: Holder,
             types: Any = ("id_card", "social_security_card"), fields: Any = None) -> str:
    response = _ask(client, officer, code(client, holder.app_token), types, fields=fields)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["status"] == "pending" and body["expires_at"]
    return body["disclosure_id"]  # type: ignore[no-any-return]


def _read(client: FlaskClient, officer: Officer, disclosure_id: str) -> Any:
    return client.get(f"/v1/disclosures/{disclosure_id}", headers=bearer(officer.token))


def _answer(client: FlaskClient, app_token: str, disclosure_id: str, verb: str) -> Any:
    return client.post(f"/v1/me/disclosures/{disclosure_id}/{verb}", headers=bearer(app_token))


def _pending(client: FlaskClient, app_token: str) -> list[dict[str, Any]]:
    response = client.get("/v1/me/disclosures?status=pending", headers=bearer(app_token))
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def _audit(rt: Runtime, holder: Holder) -> list[AuditEntry]:
    """The entries about the holder from scans and disclosures (not the admin's and issuers')."""
    drain(rt)  # scans reach the audit log through the record writer
    with rt.db.session() as session:
        pseudonym = session.get(Citizen, holder.citizen_id).pseudonym  # type: ignore[union-attr]
        return list(session.scalars(select(AuditEntry)
                                    .where(AuditEntry.subject == pseudonym,
                                           AuditEntry.actor_kind.not_in(["admin", "issuer"]))
                                    .order_by(AuditEntry.seq)))


def _history(client: FlaskClient, holder: Holder) -> list[dict[str, Any]]:
    drain(client.application)
    response = client.get("/v1/me/history", headers=bearer(holder.app_token))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["entries"]  # type: ignore[no-any-return]


# -- the happy path ------------------------------------------------------------------------------
def test_approved_request_is_read_once_with_decrypted_data_then_gone(
        client: FlaskClient, officer: Officer, holder: Holder) -> None:
    disclosure_id = _request(client, officer, holder)
    assert disclosure_id.startswith("dsc_") and len(disclosure_id) >= 4 + 22  # ≥ 128 random bits
    assert _read(client, officer, disclosure_id).get_json()["status"] == "pending"

    [waiting] = _pending(client, holder.app_token)
    assert waiting["disclosure_id"] == disclosure_id
    assert waiting["where"] == {"kind": "hall", "hall": "city", "counter": "3"}
    assert waiting["terminal_id"] == officer.terminal_id
    assert (waiting["credential_types"], waiting["purpose"]) == (["id_card", "social_security_card"], PURPOSE)
    assert waiting["expires_at"]

    approved = _answer(client, holder.app_token, disclosure_id, "approve")
    assert approved.status_code == 200 and approved.get_json() == {
        "disclosure_id": disclosure_id, "status": "approved"}
    assert _pending(client, holder.app_token) == []

    first = _read(client, officer, disclosure_id)
    assert first.status_code == 200
    body = first.get_json()
    assert body["status"] == "approved"
    by_type = {c["type"]: c for c in body["credentials"]}
    assert set(by_type) == {"id_card", "social_security_card"}  # business_licence was not asked for
    assert by_type["id_card"]["number"] == holder.id_number
    assert by_type["id_card"]["issuer"] == "青岛市公安局"
    social = by_type["social_security_card"]
    assert (social["number"], social["attributes"], social["issuer"]) == (SOCIAL_NUMBER, {"bank": "青岛银行"}, "青岛市人社局")
    assert by_type["id_card"]["holder"] == {"name": NAME, "id_number": holder.id_number}
    assert "holder" not in social  # the holder's identity comes with the ID card, not with every card

    second = _read(client, officer, disclosure_id)
    assert second.status_code == 410 and second.mimetype == "application/problem+json"
    assert _answer(client, holder.app_token, disclosure_id, "approve").status_code == 409


def test_every_step_is_audited_and_in_the_citizens_history(
        rt: Runtime, client: FlaskClient, officer: Officer, holder: Holder) -> None:
    disclosure_id = _request(client, officer, holder)
    _answer(client, holder.app_token, disclosure_id, "approve")
    _read(client, officer, disclosure_id)
    entries = _audit(rt, holder)
    assert [e.action for e in entries] == ["disclosure_requested", "disclosure_approved", "disclosure_read"]
    assert [e.actor_kind for e in entries] == ["terminal", "citizen", "terminal"]
    assert all(e.purpose == PURPOSE and e.details["disclosure_id"] == disclosure_id for e in entries)
    read = entries[-1].details
    assert read["withheld_types"] == []
    assert {d["type"]: d["credential_id"] for d in read["disclosed"]} == {
        t: holder.credential_ids[t] for t in ("id_card", "social_security_card")}
    with rt.db.session() as session:
        assert audit.verify_chain(session) == (True, None)

    full = _history(client, holder)
    history = full[:3]
    assert [h["action"] for h in history] == ["disclosure_read", "disclosure_approved", "disclosure_requested"]
    assert [h["action"] for h in full[3:]] == ["credential_issued"] * 3 + ["citizen_enrolled"]  # the fixture's
    for item in history:
        assert item["terminal_id"] == officer.terminal_id
        assert item["where"] == {"kind": "hall", "hall": "city", "counter": "3"}
        assert (item["purpose"], item["credential_types"]) == (PURPOSE, ["id_card", "social_security_card"])
    assert history[0]["disclosed_types"] == ["id_card", "social_security_card"]


def test_no_personal_data_reaches_the_database_file_or_redis_in_clear(
        rt: Runtime, settings: Settings, client: FlaskClient, officer: Officer, holder: Holder,
        redis_client: "redis.Redis[bytes]") -> None:
    disclosure_id = _request(client, officer, holder, ("id_card", "social_security_card", "business_licence"))
    _answer(client, holder.app_token, disclosure_id, "approve")
    assert _read(client, officer, disclosure_id).status_code == 200
    denied = _request(client, officer, holder)
    _answer(client, holder.app_token, denied, "deny")
    _read(client, officer, denied)

    secrets_ = [s.encode() for s in (NAME, holder.id_number, PHONE, SOCIAL_NUMBER, LICENCE_NUMBER)]
    database_file = Path(settings.resolved_database_url[len("sqlite:///"):])
    files = [p for p in (database_file, Path(f"{database_file}-wal")) if p.exists()]
    raw = b"".join(p.read_bytes() for p in files)
    assert raw and all(secret not in raw for secret in secrets_)
    with rt.db.session() as session:
        rows = [audit.canonical_json([e.site, e.details, e.purpose, e.subject]).encode()
                for e in session.scalars(select(AuditEntry))]
    # 5 from the two requests; 7 from enrolling the holder, registering 2 issuers and the officer's
    # terminal, and issuing 3 credentials
    assert len(rows) == 12 and not any(secret in row for row in rows for secret in secrets_)
    stored = b"".join(b"".join(k + v for k, v in redis_client.hgetall(key).items())
                      for key in redis_client.scan_iter(match="cc:disclosure:*"))
    assert stored and all(secret not in stored for secret in secrets_)


def test_the_request_lifetime_comes_from_the_settings(
        rt: Runtime, client: FlaskClient, officer: Officer, holder: Holder) -> None:
    rt.settings = rt.settings.with_overrides(disclosure_ttl_seconds=120)
    rt.disclosures = compose.assemble(rt.settings, db=rt.db, client=rt.redis, keystore=rt.keystore, keys=rt.keys,
                                      vault=rt.vault).disclosures
    before = time.time()
    response = _ask(client, officer, code(client, holder.app_token))
    expires_at = datetime.fromisoformat(response.get_json()["expires_at"]).timestamp()
    assert before + 119 <= expires_at <= time.time() + 121


# -- refusals -----------------------------------------------------------------------------------
def test_denied_request_tells_the_terminal_only_that(
        rt: Runtime, client: FlaskClient, officer: Officer, holder: Holder) -> None:
    disclosure_id = _request(client, officer, holder)
    assert _answer(client, holder.app_token, disclosure_id, "deny").get_json()["status"] == "denied"
    for _ in range(2):
        assert _read(client, officer, disclosure_id).get_json() == {"disclosure_id": disclosure_id, "status": "denied"}
    assert _answer(client, holder.app_token, disclosure_id, "approve").status_code == 409
    assert [e.action for e in _audit(rt, holder)] == ["disclosure_requested", "disclosure_denied"]
    assert _history(client, holder)[0]["action"] == "disclosure_denied"


def test_unanswered_request_expires_and_can_no_longer_be_approved(
        rt: Runtime, client: FlaskClient, officer: Officer, holder: Holder, desk_clock: DeskClock) -> None:
    disclosure_id = _request(client, officer, holder)
    desk_clock.now += TTL + 1
    assert _pending(client, holder.app_token) == []
    assert _read(client, officer, disclosure_id).get_json() == {"disclosure_id": disclosure_id, "status": "expired"}
    response = _answer(client, holder.app_token, disclosure_id, "approve")
    assert response.status_code == 409 and "expired" in response.get_json()["detail"]
    actions = [e.action for e in _audit(rt, holder)]
    assert actions == ["disclosure_requested", "disclosure_expired"]  # noticed once, however often seen
    assert _history(client, holder)[0]["action"] == "disclosure_expired"


def test_approved_but_unread_request_expires_without_revealing_anything(
        client: FlaskClient, officer: Officer, holder: Holder, desk_clock: DeskClock) -> None:
    disclosure_id = _request(client, officer, holder)
    _answer(client, holder.app_token, disclosure_id, "approve")
    desk_clock.now += TTL
    body = _read(client, officer, disclosure_id).get_json()
    assert body == {"disclosure_id": disclosure_id, "status": "expired"}


def test_another_citizen_can_neither_see_nor_answer_the_request(
        client: FlaskClient, officer: Officer, holder: Holder) -> None:
    disclosure_id = _request(client, officer, holder)
    stranger = enrol(client)["app_token"]
    assert _pending(client, stranger) == []
    for verb in ("approve", "deny"):
        response = _answer(client, stranger, disclosure_id, verb)
        assert response.status_code == 404 and response.mimetype == "application/problem+json"
    assert _answer(client, holder.app_token, "dsc_does-not-exist", "approve").status_code == 404
    assert _read(client, officer, disclosure_id).get_json()["status"] == "pending"


def test_another_terminal_cannot_read_and_does_not_spend_the_read(
        client: FlaskClient, officer: Officer, holder: Holder) -> None:
    disclosure_id = _request(client, officer, holder)
    _answer(client, holder.app_token, disclosure_id, "approve")
    other_counter = _terminal(client, "hall", hall="city", counter="4")
    assert _read(client, other_counter, disclosure_id).status_code == 404
    assert _read(client, officer, "dsc_" + "x" * 200).status_code == 404
    assert _read(client, officer, disclosure_id).get_json()["status"] == "approved"


def test_only_hall_terminals_may_request_and_the_code_is_not_spent(
        client: FlaskClient, officer: Officer, holder: Holder) -> None:
    gate = _terminal(client, "metro", station="五四广场")
    scanned = code(client, holder.app_token)
    assert _ask(client, gate, scanned).status_code == 403
    assert client.post("/v1/disclosures", headers=bearer(holder.app_token),
                       json={"code": scanned, "credential_types": ["id_card"], "purpose": "x"}).status_code == 403
    assert _ask(client, officer, scanned).status_code == 201


@pytest.mark.parametrize(("types", "purpose", "field"), [
    (["passport_of_mars"], PURPOSE, "credential_types"), ([], PURPOSE, "credential_types"),
    (["id_card"] * 6, PURPOSE, "credential_types"), (["id_card"], "", "purpose"),
    (["id_card"], "x" * 201, "purpose"), (["id_card"], "   ", "purpose")])
def test_bad_requests_are_422_and_do_not_spend_the_code(
        client: FlaskClient, officer: Officer, holder: Holder, types: list[str], purpose: str, field: str) -> None:
    scanned = code(client, holder.app_token)
    response = _ask(client, officer, scanned, types, purpose)
    assert response.status_code == 422 and field in response.get_json()["errors"]
    assert _ask(client, officer, scanned).status_code == 201


def test_unknown_fields_are_422(client: FlaskClient, officer: Officer, holder: Holder) -> None:
    response = client.post("/v1/disclosures", headers=bearer(officer.token), json={
        "code": code(client, holder.app_token), "credential_types": ["id_card"], "purpose": "x", "all": True})
    assert response.status_code == 422


def test_a_replayed_or_bad_code_is_a_deny_answer(
        rt: Runtime, client: FlaskClient, officer: Officer, holder: Holder) -> None:
    scanned = code(client, holder.app_token)
    assert _ask(client, officer, scanned).status_code == 201
    replayed = _ask(client, officer, scanned)
    assert replayed.status_code == 200
    assert (replayed.get_json()["decision"], replayed.get_json()["reason"]) == ("deny", "replayed")
    garbage = _ask(client, officer, "not-a-code")
    assert (garbage.status_code, garbage.get_json()["reason"]) == (200, "malformed")
    scan = [e for e in _audit(rt, holder) if e.action == "scan"]
    assert [(e.reason, e.actor_id) for e in scan] == [("replayed", officer.terminal_id)]
    assert len(_pending(client, holder.app_token)) == 1


def test_a_code_used_at_a_gate_cannot_then_request_disclosure(
        client: FlaskClient, officer: Officer, holder: Holder) -> None:
    scanned = code(client, holder.app_token)
    kiosk = _terminal(client, "hall", hall="city")
    assert client.post("/v1/verify", headers=bearer(kiosk.token), json={"code": scanned}).get_json()["decision"] == "accept"
    assert _ask(client, officer, scanned).get_json()["reason"] == "replayed"


def test_a_credential_revoked_between_approval_and_read_is_left_out(
        rt: Runtime, client: FlaskClient, officer: Officer, holder: Holder) -> None:
    disclosure_id = _request(client, officer, holder)
    _answer(client, holder.app_token, disclosure_id, "approve")
    token = holder.issuer_tokens["social_security_card"]
    revoked = client.post(f"/v1/issuer/credentials/{holder.credential_ids['social_security_card']}/revoke",
                          headers=bearer(token), json={"reason": "card replaced"})
    assert revoked.status_code == 200, revoked.get_json()
    body = _read(client, officer, disclosure_id).get_json()
    assert [c["type"] for c in body["credentials"]] == ["id_card"]
    read = _audit(rt, holder)[-1]
    assert read.action == "disclosure_read" and read.details["withheld_types"] == ["social_security_card"]


def test_roles_are_enforced(client: FlaskClient, officer: Officer, holder: Holder) -> None:
    disclosure_id = _request(client, officer, holder)
    assert client.get(f"/v1/disclosures/{disclosure_id}", headers=bearer(holder.app_token)).status_code == 403
    assert client.get("/v1/me/disclosures", headers=bearer(officer.token)).status_code == 403
    assert _answer(client, officer.token, disclosure_id, "approve").status_code == 403
    assert client.get(f"/v1/disclosures/{disclosure_id}").status_code == 401
    assert client.get("/v1/me/disclosures?status=approved", headers=bearer(holder.app_token)).status_code == 422


# -- Redis down: fail closed ----------------------------------------------------------------------
@pytest.fixture
def redis_down(app: Flask) -> Iterator[None]:
    with redis_unreachable(app):
        yield


def test_redis_down_denies_degraded_and_citizen_views_answer_503(
        client: FlaskClient, officer: Officer, holder: Holder, redis_down: None) -> None:
    response = _ask(client, officer, code(client, holder.app_token))
    assert response.status_code == 200
    assert (response.get_json()["decision"], response.get_json()["reason"]) == ("deny", "degraded")
    listing = client.get("/v1/me/disclosures", headers=bearer(holder.app_token))
    assert listing.status_code == 503 and listing.mimetype == "application/problem+json"
    assert _answer(client, holder.app_token, "dsc_whatever", "approve").status_code == 503
    assert _read(client, officer, "dsc_whatever").status_code == 503


# -- exactly once, and never unaudited --------------------------------------------------------------
def test_concurrent_reads_release_the_data_exactly_once(
        rt: Runtime, client: FlaskClient, officer: Officer, holder: Holder) -> None:
    disclosure_id = _request(client, officer, holder)
    _answer(client, holder.app_token, disclosure_id, "approve")
    desk = rt.disclosures
    start = threading.Barrier(8)
    outcomes: list[str] = []

    def reader() -> None:
        start.wait()
        try:
            release = desk.read(officer.terminal_id, disclosure_id)
        except Gone:
            outcomes.append("gone")
        else:
            outcomes.append("data" if release.credentials else release.disclosure.status)

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["data"] + ["gone"] * 7


def test_a_read_that_cannot_be_audited_discloses_nothing_and_is_not_lost(
        rt: Runtime, client: FlaskClient, officer: Officer, holder: Holder,
        monkeypatch: pytest.MonkeyPatch) -> None:
    disclosure_id = _request(client, officer, holder)
    _answer(client, holder.app_token, disclosure_id, "approve")
    real_append = audit.append

    def failing_append(session: Any, **fields: Any) -> Any:
        if fields["action"] == "disclosure_read":
            raise OperationalError("INSERT", {}, Exception("disk full"))
        return real_append(session, **fields)

    monkeypatch.setattr(audit, "append", failing_append)
    failed = _read(client, officer, disclosure_id)
    assert failed.status_code == 500 and "credentials" not in failed.get_json()
    monkeypatch.setattr(audit, "append", real_append)
    assert _read(client, officer, disclosure_id).get_json()["status"] == "approved"
    assert [e.action for e in _audit(rt, holder)].count("disclosure_read") == 1


# -- exactly what was asked for, seen and approved ---------------------------------------------------
def _approved_read(client: FlaskClient, officer: Officer, holder: Holder, types: Any,
                   fields: Any = None) -> tuple[str, dict[str, dict[str, Any]], str]:
    disclosure_id = _request(client, officer, holder, types, fields)
    assert _answer(client, holder.app_token, disclosure_id, "approve").status_code == 200
    response = _read(client, officer, disclosure_id)
    assert response.status_code == 200 and response.get_json()["status"] == "approved"
    return disclosure_id, {c["type"]: c for c in response.get_json()["credentials"]}, response.get_data(as_text=True)


def test_a_read_releases_only_the_named_fields(client: FlaskClient, officer: Officer, holder: Holder) -> None:
    _, by_type, raw = _approved_read(client, officer, holder, ("id_card", "social_security_card"),
                                     ["social_security_card.number", "id_card.holder.name"])
    assert by_type == {
        "id_card": {"credential_id": holder.credential_ids["id_card"], "type": "id_card", "holder": {"name": NAME}},
        "social_security_card": {"credential_id": holder.credential_ids["social_security_card"],
                                 "type": "social_security_card", "number": SOCIAL_NUMBER}}
    assert holder.id_number not in raw and "青岛银行" not in raw and "青岛市" not in raw


def test_types_alone_release_no_holder_identity_unless_the_type_is_the_id_card(
        client: FlaskClient, officer: Officer, holder: Holder) -> None:
    _, by_type, raw = _approved_read(client, officer, holder, ("social_security_card", "business_licence"))
    assert set(by_type) == {"social_security_card", "business_licence"}
    for item in by_type.values():
        assert set(item) == {"credential_id", "type", "number", "issuer", "valid_until", "attributes"}
    assert NAME not in raw and holder.id_number not in raw

    _, by_type, _ = _approved_read(client, officer, holder, ("id_card",))
    assert by_type["id_card"]["holder"] == {"name": NAME, "id_number": holder.id_number}


def test_holder_identity_can_be_asked_for_with_any_credential(
        client: FlaskClient, officer: Officer, holder: Holder) -> None:
    _, by_type, _ = _approved_read(client, officer, holder, ("business_licence",),
                                   ["business_licence.number", "business_licence.holder.id_number"])
    assert by_type["business_licence"] == {
        "credential_id": holder.credential_ids["business_licence"], "type": "business_licence",
        "number": LICENCE_NUMBER, "holder": {"id_number": holder.id_number}}


def test_the_pending_request_lists_exactly_the_fields_asked_for(
        client: FlaskClient, officer: Officer, holder: Holder) -> None:
    asked = _ask(client, officer, code(client, holder.app_token), ("id_card", "social_security_card"),
                 fields=["social_security_card.number", "id_card.holder.name", "id_card.holder.name"])
    assert asked.status_code == 201, asked.get_json()
    in_order = ["id_card.holder.name", "social_security_card.number"]  # type order, duplicates dropped
    assert asked.get_json()["fields"] == in_order
    disclosure_id = _request(client, officer, holder, ("social_security_card",))
    shown = {d["disclosure_id"]: d for d in _pending(client, holder.app_token)}
    assert shown[asked.get_json()["disclosure_id"]]["fields"] == in_order
    assert shown[disclosure_id]["fields"] == [  # the defaults, shown as such: no holder identity
        "social_security_card.number", "social_security_card.issuer", "social_security_card.valid_until",
        "social_security_card.attributes"]
    assert _read(client, officer, disclosure_id).get_json()["fields"] == shown[disclosure_id]["fields"]


def test_the_audit_log_and_history_record_which_fields_left(
        rt: Runtime, client: FlaskClient, officer: Officer, holder: Holder) -> None:
    fields = ["id_card.number", "id_card.holder.name", "id_card.holder.id_number", "social_security_card.number"]
    disclosure_id, _, _ = _approved_read(client, officer, holder, ("id_card", "social_security_card"), fields)
    entries = _audit(rt, holder)
    assert [e.action for e in entries] == ["disclosure_requested", "disclosure_approved", "disclosure_read"]
    assert all(e.details["fields"] == fields for e in entries)
    assert entries[-1].details["disclosed"] == [
        {"type": "id_card", "credential_id": holder.credential_ids["id_card"],
         "fields": ["number", "holder.name", "holder.id_number"]},
        {"type": "social_security_card", "credential_id": holder.credential_ids["social_security_card"],
         "fields": ["number"]}]
    read, approved, requested = _history(client, holder)[:3]
    assert (read["action"], read["disclosure_id"]) == ("disclosure_read", disclosure_id)
    assert read["disclosed_fields"] == fields
    assert approved["fields"] == requested["fields"] == read["fields"] == fields


def test_a_credential_gone_by_the_read_is_not_counted_as_released(
        rt: Runtime, client: FlaskClient, officer: Officer, holder: Holder) -> None:
    disclosure_id = _request(client, officer, holder, ("id_card", "social_security_card"),
                             ["id_card.holder.name", "social_security_card.number"])
    _answer(client, holder.app_token, disclosure_id, "approve")
    client.post(f"/v1/issuer/credentials/{holder.credential_ids['social_security_card']}/revoke",
                headers=bearer(holder.issuer_tokens["social_security_card"]), json={})
    assert [c["type"] for c in _read(client, officer, disclosure_id).get_json()["credentials"]] == ["id_card"]
    assert _history(client, holder)[0]["disclosed_fields"] == ["id_card.holder.name"]


@pytest.mark.parametrize(("types", "fields", "problem"), [
    (["id_card"], ["id_card.password"], "unknown field: id_card.password"),
    (["id_card"], ["passport_of_mars.number"], "unknown field"), (["id_card"], ["holder.name"], "unknown field"),
    (["id_card"], ["id_card"], "unknown field"), (["id_card"], ["id_card.holder"], "unknown field"),
    (["id_card"], ["business_licence.number"], "not among the requested credential_types"),
    (["id_card", "social_security_card"], ["id_card.number"], "at least one field of social_security_card"),
    (["id_card"], [], ""), (["id_card"], [""], ""), (["id_card"], [3], ""), (["id_card"], "id_card.number", "")])
def test_unknown_or_foreign_fields_are_422_and_do_not_spend_the_code(
        client: FlaskClient, officer: Officer, holder: Holder, types: list[str], fields: Any, problem: str) -> None:
    scanned = code(client, holder.app_token)
    response = _ask(client, officer, scanned, types, fields=fields)
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    assert problem in str(response.get_json()["errors"]["fields"])
    asked = _ask(client, officer, scanned, ["id_card"], fields=["id_card.number"])
    assert asked.status_code == 201, asked.get_json()


# -- suspension withdraws what has not left ------------------------------------------------------------
def _suspend(client: FlaskClient, holder: Holder) -> None:
    response = client.post(f"/v1/admin/citizens/{holder.citizen_id}/suspend", headers=ADMIN, json={})
    assert response.status_code == 200, response.get_json()


def test_suspending_the_citizen_withdraws_pending_and_approved_unread_requests(
        rt: Runtime, client: FlaskClient, officer: Officer, holder: Holder) -> None:
    already_read = _request(client, officer, holder)
    _answer(client, holder.app_token, already_read, "approve")
    assert _read(client, officer, already_read).status_code == 200
    approved = _request(client, officer, holder)
    _answer(client, holder.app_token, approved, "approve")
    pending = _request(client, officer, holder)

    _suspend(client, holder)
    assert rt.disclosures.pending_for(holder.citizen_id) == []
    assert _read(client, officer, approved).get_json() == {"disclosure_id": approved, "status": "withdrawn"}
    assert _read(client, officer, pending).get_json() == {"disclosure_id": pending, "status": "withdrawn"}
    with pytest.raises(Conflict, match="withdrawn"):
        rt.disclosures.answer(holder.citizen_id, pending, True)
    assert _read(client, officer, already_read).status_code == 410
    with rt.db.session() as session:
        withdrawn = list(session.scalars(select(AuditEntry).where(AuditEntry.action == "disclosure_withdrawn")))
    assert sorted(e.details["disclosure_id"] for e in withdrawn) == sorted([approved, pending])
    assert all((e.actor_kind, e.reason) == ("admin", "citizen_suspended") for e in withdrawn)

    client.post(f"/v1/admin/citizens/{holder.citizen_id}/restore", headers=ADMIN, json={})
    assert _read(client, officer, approved).get_json()["status"] == "withdrawn"  # restoring revives nothing
    shown = [h for h in _history(client, holder) if h["action"] == "disclosure_withdrawn"]
    assert sorted(h["disclosure_id"] for h in shown) == sorted([approved, pending])


def test_a_read_after_suspension_releases_nothing_even_if_the_withdrawal_was_missed(
        rt: Runtime, client: FlaskClient, officer: Officer, holder: Holder) -> None:
    disclosure_id = _request(client, officer, holder)
    _answer(client, holder.app_token, disclosure_id, "approve")
    with rt.db.session() as session:  # suspended while Redis was away: nothing withdrawn there
        citizens.set_status(session, holder.citizen_id, citizens.SUSPENDED, None, admin_id="admin")
    body = _read(client, officer, disclosure_id).get_json()
    assert body == {"disclosure_id": disclosure_id, "status": "withdrawn"}
    assert _read(client, officer, disclosure_id).get_json()["status"] == "withdrawn"
    last = _audit(rt, holder)[-1]
    assert (last.action, last.actor_kind, last.reason) == ("disclosure_withdrawn", "system", "citizen_suspended")
    assert "disclosure_read" not in [e.action for e in _audit(rt, holder)]


def test_a_request_stored_before_fields_were_named_reads_with_the_type_defaults(
        rt: Runtime, client: FlaskClient, officer: Officer, holder: Holder,
        redis_client: "redis.Redis[bytes]") -> None:
    disclosure_id = _request(client, officer, holder, ("social_security_card",))
    redis_client.hdel(f"cc:disclosure:{disclosure_id}", "fields")
    _answer(client, holder.app_token, disclosure_id, "approve")
    [item] = _read(client, officer, disclosure_id).get_json()["credentials"]
    assert set(item) == {"credential_id", "type", "number", "issuer", "valid_until", "attributes"}
