"""POST /v1/verify end to end over the Flask test client, with real Redis and a real database."""
from __future__ import annotations

import io

import zxingcpp
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from tests.helpers import ADMIN, bearer, code, credential, enrol, issuer, redis_unreachable, terminal


def _verify(client: FlaskClient, terminal_token: str, scanned: object) -> dict:  # type: ignore[type-arg]
    response = client.post("/v1/verify", headers=bearer(terminal_token), json={"code": scanned})
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def test_fresh_code_is_accepted_once_then_replayed(client: FlaskClient) -> None:
    citizen = enrol(client)
    gate = terminal(client)
    scanned = code(client, citizen["app_token"])
    first = _verify(client, gate, scanned)
    assert (first["decision"], first["reason"]) == ("accept", "ok")
    assert set(first["message"]) == {"zh", "en"}
    second = _verify(client, gate, scanned)
    assert (second["decision"], second["reason"]) == ("deny", "replayed")


def test_garbage_code_is_a_deny_not_an_error(client: FlaskClient) -> None:
    gate = terminal(client)
    for scanned in ("", "not-a-code", "a.b.c", "x" * 5000):
        assert _verify(client, gate, scanned)["reason"] == "malformed"


def test_wrong_body_type_is_422(client: FlaskClient) -> None:
    gate = terminal(client)
    response = client.post("/v1/verify", headers=bearer(gate), json={"code": 123})
    assert response.status_code == 422 and "code" in response.get_json()["errors"]


def test_only_terminals_may_verify(client: FlaskClient) -> None:
    citizen = enrol(client)
    response = client.post("/v1/verify", headers=bearer(citizen["app_token"]), json={"code": "x"})
    assert response.status_code == 403


def test_suspension_denies_codes_already_issued(client: FlaskClient) -> None:
    citizen = enrol(client)
    gate = terminal(client)
    scanned = code(client, citizen["app_token"])
    client.post(f"/v1/admin/citizens/{citizen['citizen_id']}/suspend", headers=ADMIN, json={})
    assert _verify(client, gate, scanned)["reason"] == "suspended"
    client.post(f"/v1/admin/citizens/{citizen['citizen_id']}/restore", headers=ADMIN, json={})
    assert _verify(client, gate, scanned)["decision"] == "accept"


def test_revoked_credential_stops_entitlement_at_once(app: Flask, client: FlaskClient) -> None:
    citizen = enrol(client)
    education = issuer(client, "student_card")
    card = credential(client, education, citizen["citizen_id"], "student_card")
    scanned = code(client, citizen["app_token"])
    client.post(f"/v1/issuer/credentials/{card['credential_id']}/revoke", headers=bearer(education), json={})
    decision = app.extensions["citycode"].verifier.check(scanned)
    assert decision.accepted and decision.claims.ent == ()


def test_redis_down_gives_degraded_for_genuine_and_bad_signature_for_forged(app: Flask, client: FlaskClient) -> None:
    citizen = enrol(client)
    gate = terminal(client)
    scanned = code(client, citizen["app_token"])
    with redis_unreachable(app):
        head, payload, signature = scanned.split(".")
        forged = f"{head}.{payload}.{signature[:-4]}AAAA"
        assert _verify(client, gate, forged)["reason"] == "bad_signature"
        assert _verify(client, gate, scanned)["reason"] == "degraded"
    assert _verify(client, gate, scanned)["decision"] == "accept"


def test_code_png_decodes_to_the_code_and_svg_is_served(client: FlaskClient) -> None:
    citizen = enrol(client)
    headers = bearer(citizen["app_token"])
    png = client.get("/v1/me/code.png", headers=headers)
    assert png.status_code == 200 and png.mimetype == "image/png"
    assert png.headers["X-Code-Expires-At"].endswith("Z")
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.get_data())), formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(decoded) == 1
    gate = terminal(client)
    assert _verify(client, gate, decoded[0].text)["decision"] == "accept"
    svg = client.get("/v1/me/code.svg", headers=headers)
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml" and b"<svg" in svg.get_data()


def test_code_response_reports_qr_version_within_budget(client: FlaskClient) -> None:
    citizen = enrol(client)
    body = client.post("/v1/me/code", headers=bearer(citizen["app_token"])).get_json()
    assert 1 <= body["qr_version"] <= 12
    assert body["refresh_after"] < body["expires_at"]


def test_scenes_and_plain_verification_claim_the_same_replay_record(app: Flask) -> None:
    from app.codes.decision import CodeClaims
    from app.codes.replay import RedisReplayStore
    from app.scenes.atomic import replay_expiry, replay_key_for

    claims = CodeClaims("cc", "sub12345678", 1_790_000_000, 1_790_000_060, "jtiJtiJti012", (), "kid00001")
    store = RedisReplayStore(app.extensions["citycode"].redis)
    leeway = app.extensions["citycode"].settings.clock_leeway_seconds
    assert replay_key_for(claims) == store.key(claims.iss, claims.jti, claims.sub)
    assert replay_expiry(claims, leeway) == store.expire_at(claims.exp + leeway)
