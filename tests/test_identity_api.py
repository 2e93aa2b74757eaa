"""Enrolment, issuers, the citizen's own view: contract behaviour over the Flask test client."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from app.config import Settings
from tests.helpers import ADMIN, bearer, credential, enrol, issuer
from tests.ids import resident_id


def test_enrolment_returns_citizen_id_and_app_token(client: FlaskClient) -> None:
    body = enrol(client)
    assert body["citizen_id"].startswith("cit_")
    assert body["app_token"].startswith("ccc_")


def test_second_enrolment_of_the_same_id_number_is_409(client: FlaskClient) -> None:
    number = resident_id()
    enrol(client, id_number=number)
    response = client.post("/v1/admin/citizens", headers=ADMIN, json={"name": "李四", "id_number": number.lower()})
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"


def test_invalid_id_number_is_422_naming_the_field(client: FlaskClient) -> None:
    response = client.post("/v1/admin/citizens", headers=ADMIN, json={"name": "王五", "id_number": "110105194912310021"})
    assert response.status_code == 422
    assert "id_number" in response.get_json()["errors"]


def test_me_shows_masked_values_only(client: FlaskClient) -> None:
    number = resident_id()
    citizen = enrol(client, name="张三丰", id_number=number)
    me = client.get("/v1/me", headers=bearer(citizen["app_token"])).get_json()
    assert me["name_masked"] == "张**"
    assert me["id_number_masked"] == number[:6] + "*" * 10 + number[-2:]
    assert me["status"] == "active" and me["entitlements"] == []
    assert number not in str(me) and "三丰" not in str(me)


def test_personal_data_is_not_stored_in_clear(client: FlaskClient, settings: Settings) -> None:
    number = resident_id()
    enrol(client, name="欧阳娜娜", id_number=number, phone="13912345678")
    raw = b"".join(p.read_bytes() for p in Path(settings.data_dir).glob("citycode.sqlite3*"))
    for secret in (number, "欧阳娜娜", "13912345678"):
        assert secret.encode() not in raw


def test_issuer_may_issue_only_its_own_types(client: FlaskClient) -> None:
    citizen = enrol(client)
    education = issuer(client, "student_card")
    response = client.post("/v1/issuer/credentials", headers=bearer(education),
                           json={"citizen_id": citizen["citizen_id"], "type": "senior_card", "number": "X1"})
    assert response.status_code == 403


def test_credential_gives_entitlement_and_revocation_takes_it_away(client: FlaskClient) -> None:
    citizen = enrol(client)
    education = issuer(client, "student_card")
    card = credential(client, education, citizen["citizen_id"], "student_card", number="STU20260001")
    me = client.get("/v1/me", headers=bearer(citizen["app_token"])).get_json()
    assert me["entitlements"] == ["stu"]
    mine = client.get("/v1/me/credentials", headers=bearer(citizen["app_token"])).get_json()
    assert mine[0]["number_masked"] == "STU2***0001"
    assert mine[0]["issuer"] == "青岛市教育局" and mine[0]["status"] == "active"
    revoked = client.post(f"/v1/issuer/credentials/{card['credential_id']}/revoke", headers=bearer(education), json={})
    assert revoked.status_code == 200 and revoked.get_json()["status"] == "revoked"
    assert client.get("/v1/me", headers=bearer(citizen["app_token"])).get_json()["entitlements"] == []


def test_validity_times_keep_their_offset_and_are_answered_in_utc(client: FlaskClient) -> None:
    citizen = enrol(client)
    education = issuer(client, "student_card")
    until = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=2)
    honolulu = until.astimezone(timezone(timedelta(hours=-10)))  # wall time 8 h before now
    response = client.post("/v1/issuer/credentials", headers=bearer(education), json={
        "citizen_id": citizen["citizen_id"], "type": "student_card", "number": "STU1",
        "valid_until": honolulu.isoformat()})
    assert response.status_code == 201, response.get_json()
    # Still valid for two hours (the offset was dropped on SQLite: it looked expired)...
    assert client.get("/v1/me", headers=bearer(citizen["app_token"])).get_json()["entitlements"] == ["stu"]
    # ...and answered as an RFC 3339 time with its offset (it was a naive "YYYY-MM-DDTHH:MM:SS").
    mine = client.get("/v1/me/credentials", headers=bearer(citizen["app_token"])).get_json()
    shown = datetime.fromisoformat(mine[0]["valid_until"])
    assert shown == until and shown.utcoffset() == timedelta(0)


def test_validity_time_utc_cannot_represent_is_422_and_stores_nothing(client: FlaskClient) -> None:
    citizen = enrol(client)
    education = issuer(client, "student_card")
    for field, moment in (("valid_from", "0001-01-01T00:00:00+14:00"),
                          ("valid_until", "9999-12-31T23:59:59-14:00")):
        response = client.post("/v1/issuer/credentials", headers=bearer(education), json={
            "citizen_id": citizen["citizen_id"], "type": "student_card", "number": "STU1", field: moment})
        assert response.status_code == 422, response.get_json()
        assert response.mimetype == "application/problem+json"
        assert field in response.get_json()["errors"]
    assert client.get("/v1/me/credentials", headers=bearer(citizen["app_token"])).get_json() == []


def test_another_issuer_cannot_revoke_a_credential(client: FlaskClient) -> None:
    citizen = enrol(client)
    education = issuer(client, "student_card")
    other = issuer(client, "student_card", name="另一个局")
    card = credential(client, education, citizen["citizen_id"], "student_card")
    response = client.post(f"/v1/issuer/credentials/{card['credential_id']}/revoke", headers=bearer(other), json={})
    assert response.status_code == 404


def test_health_code_needs_a_valid_status(client: FlaskClient) -> None:
    citizen = enrol(client)
    health = issuer(client, "health_code", name="青岛市卫健委")
    response = client.post("/v1/issuer/credentials", headers=bearer(health),
                           json={"citizen_id": citizen["citizen_id"], "type": "health_code", "number": "H1",
                                 "attributes": {"status": "purple"}})
    assert response.status_code == 422 and "attributes" in response.get_json()["errors"]


def test_suspended_citizen_gets_no_code_until_restored(client: FlaskClient) -> None:
    citizen = enrol(client)
    headers = bearer(citizen["app_token"])
    assert client.post(f"/v1/admin/citizens/{citizen['citizen_id']}/suspend", headers=ADMIN,
                       json={"reason": "lost phone"}).status_code == 200
    assert client.get("/v1/me", headers=headers).get_json()["status"] == "suspended"
    assert client.post("/v1/me/code", headers=headers).status_code == 403
    assert client.post(f"/v1/admin/citizens/{citizen['citizen_id']}/restore", headers=ADMIN, json={}).status_code == 200
    assert client.post("/v1/me/code", headers=headers).status_code == 201


def test_unknown_citizen_is_404_for_admin_actions(client: FlaskClient) -> None:
    assert client.post("/v1/admin/citizens/cit_nobody/suspend", headers=ADMIN, json={}).status_code == 404


def test_citizen_token_cannot_use_issuer_or_admin_endpoints(client: FlaskClient, app: Flask) -> None:
    citizen = enrol(client)
    headers = bearer(citizen["app_token"])
    assert client.post("/v1/issuer/credentials", headers=headers, json={}).status_code == 403
    assert client.post("/v1/admin/citizens", headers=headers, json={}).status_code == 403


def test_code_claims_pass_the_personal_data_allowlist(client: FlaskClient) -> None:
    import base64
    import json

    number = resident_id()
    citizen = enrol(client, name="张三丰", id_number=number, phone="13800138000")
    health = issuer(client, "health_code", name="青岛市卫健委")
    credential(client, health, citizen["citizen_id"], "health_code", number="H-2026-1", status="green")
    from tests.helpers import code

    header_b64, payload_b64, _ = code(client, citizen["app_token"]).split(".")
    header = json.loads(base64.urlsafe_b64decode(header_b64 + "=" * (-len(header_b64) % 4)))
    claims = json.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
    assert set(header) == {"alg", "kid", "typ"}
    assert set(claims) == {"iss", "sub", "iat", "exp", "jti", "ent"}
    assert claims["ent"] == "g"  # one-letter wire codes: g = health code green (app.codes.wire)
    text = json.dumps(claims, ensure_ascii=False)
    for personal in (number, number[6:14], "张三丰", "13800138000", citizen["citizen_id"], "H-2026-1"):
        assert personal not in text
    assert len(claims["jti"]) >= 12  # ≥ 72 random bits
