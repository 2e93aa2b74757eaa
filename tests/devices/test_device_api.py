"""Device registration and certificates over the API, and the codes a phone mints from them going
through POST /v1/verify (real Redis, real database file)."""
from __future__ import annotations

import base64
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from flask.testing import FlaskClient

from app.codes import cbor
from app.codes.device import cose_key, mint_device_code, possession_proof, public_jwk
from tests.helpers import ADMIN, bearer, credential, enrol, issuer, terminal


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def register(client: FlaskClient, citizen: dict[str, Any], key: ec.EllipticCurvePrivateKey,
             public_key: object = None, signed_at: int | None = None) -> Any:
    signed_at = int(time.time()) if signed_at is None else signed_at
    body = {"public_key": public_jwk(key.public_key()) if public_key is None else public_key,
            "proof": {"signed_at": signed_at,
                      "signature": possession_proof(key, "register", citizen["citizen_id"], signed_at)},
            "label": "my phone"}
    return client.post("/v1/me/devices", headers=bearer(citizen["app_token"]), json=body)


def certificate_of(response: Any) -> bytes:
    assert response.status_code in (200, 201), response.get_json()
    raw = response.get_json()["certificate"]
    return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))


def verify(client: FlaskClient, gate: str, code: str) -> dict[str, Any]:
    response = client.post("/v1/verify", headers=bearer(gate), json={"code": code})
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def test_registered_device_mints_codes_a_bus_reader_charges_by_entitlement(client: FlaskClient) -> None:
    citizen = enrol(client)
    credential(client, issuer(client, "senior_card"), citizen["citizen_id"], "senior_card")
    key = ec.generate_private_key(ec.SECP256R1())
    response = register(client, citizen, key)
    assert response.status_code == 201
    body = response.get_json()
    assert body["code_prefix"] == "CC2:" and body["expires_at"] > body["issued_at"]
    cert = certificate_of(response)
    bus = terminal(client, "bus", line="1", vehicle="鲁B-20001")
    code = mint_device_code(cert, key, now=time.time()).code
    answer = verify(client, bus, code)
    assert (answer["decision"], answer["fare"]["category"], answer["fare"]["amount_cents"]) == ("accept", "senior", 0)
    assert verify(client, bus, code)["reason"] == "replayed"


def test_cose_key_registration_is_accepted(client: FlaskClient) -> None:
    citizen = enrol(client)
    key = ec.generate_private_key(ec.SECP256R1())
    response = register(client, citizen, key, public_key=_b64(cbor.dumps(cose_key(key.public_key()))))
    assert response.status_code == 201, response.get_json()


def test_proof_by_another_key_is_refused(client: FlaskClient) -> None:
    citizen = enrol(client)
    key, other = (ec.generate_private_key(ec.SECP256R1()) for _ in range(2))
    response = register(client, citizen, other, public_key=public_jwk(key.public_key()))
    assert response.status_code == 422 and "proof" in response.get_json()["errors"]


def test_stale_proof_is_refused(client: FlaskClient) -> None:
    citizen = enrol(client)
    response = register(client, citizen, ec.generate_private_key(ec.SECP256R1()),
                        signed_at=int(time.time()) - 3600)
    assert response.status_code == 422


def test_proof_made_for_another_citizen_is_refused(client: FlaskClient) -> None:
    alice, bob = enrol(client), enrol(client, name="李四")
    key = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    body = {"public_key": public_jwk(key.public_key()),
            "proof": {"signed_at": now, "signature": possession_proof(key, "register", alice["citizen_id"], now)}}
    response = client.post("/v1/me/devices", headers=bearer(bob["app_token"]), json=body)
    assert response.status_code == 422


def test_suspended_citizen_gets_no_certificate(client: FlaskClient) -> None:
    citizen = enrol(client)
    client.post(f"/v1/admin/citizens/{citizen['citizen_id']}/suspend", headers=ADMIN, json={})
    response = register(client, citizen, ec.generate_private_key(ec.SECP256R1()))
    assert response.status_code in (401, 403)


def test_refresh_list_and_remove_revokes_the_certificates(client: FlaskClient) -> None:
    citizen = enrol(client)
    key = ec.generate_private_key(ec.SECP256R1())
    first = register(client, citizen, key)
    device_id = first.get_json()["device_id"]
    now = int(time.time())
    refreshed = client.post(f"/v1/me/devices/{device_id}/certificate", headers=bearer(citizen["app_token"]),
                            json={"proof": {"signed_at": now, "signature": possession_proof(
                                key, "refresh", citizen["citizen_id"], now)}})
    assert refreshed.status_code == 200
    assert refreshed.get_json()["certificate_id"] != first.get_json()["certificate_id"]
    listed = client.get("/v1/me/devices", headers=bearer(citizen["app_token"])).get_json()
    assert [d["device_id"] for d in listed] == [device_id]
    gate = terminal(client)
    old_code = mint_device_code(certificate_of(first), key, now=time.time()).code
    new_code = mint_device_code(certificate_of(refreshed), key, now=time.time()).code
    removed = client.delete(f"/v1/me/devices/{device_id}", headers=bearer(citizen["app_token"]))
    assert removed.status_code == 204
    assert verify(client, gate, old_code)["reason"] == "revoked"
    assert verify(client, gate, new_code)["reason"] == "revoked"
    assert client.get("/v1/me/devices", headers=bearer(citizen["app_token"])).get_json() == []
    feed = client.get("/v1/trust/revocations?since=0", headers=bearer(gate)).get_json()
    assert {e["id"] for e in feed["entries"] if e["kind"] == "code_revoked"} == {
        f"cc/{answer[name]}" for answer in (first.get_json(), refreshed.get_json())
        for name in ("certificate_id", "sealed_certificate_id")}


def test_another_citizens_device_cannot_be_removed(client: FlaskClient) -> None:
    alice, bob = enrol(client), enrol(client, name="李四")
    device_id = register(client, alice, ec.generate_private_key(ec.SECP256R1())).get_json()["device_id"]
    assert client.delete(f"/v1/me/devices/{device_id}", headers=bearer(bob["app_token"])).status_code == 404


def test_terminal_cannot_register_devices(client: FlaskClient) -> None:
    gate = terminal(client)
    assert client.post("/v1/me/devices", headers=bearer(gate), json={}).status_code == 403


def test_device_codes_open_metro_gates_and_scenic_turnstiles(client: FlaskClient) -> None:
    citizen = enrol(client)
    credential(client, issuer(client, "senior_card"), citizen["citizen_id"], "senior_card")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate_of(register(client, citizen, key))
    line = client.get("/v1/network/metro").get_json()["lines"][0]["stations"]
    entry, exit_ = terminal(client, "metro", station=line[0]), terminal(client, "metro", station=line[3])

    def scan(gate: str, direction: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"code": mint_device_code(cert, key, now=time.time()).code}
        if direction:
            body["direction"] = direction
        response = client.post("/v1/verify", headers=bearer(gate), json=body)
        assert response.status_code == 200
        return response.get_json()  # type: ignore[no-any-return]

    entered = scan(entry, "entry")
    assert (entered["decision"], entered["trip"]["station"]) == ("accept", line[0]), entered
    left = scan(exit_, "exit")
    assert (left["decision"], left["fare"]["from"], left["fare"]["to"]) == ("accept", line[0], line[3]), left
    admitted = scan(terminal(client, "scenic", spot="zhanshan_temple"))
    assert (admitted["decision"], admitted["admission"]["spot"]) == ("accept", "zhanshan_temple"), admitted


def test_sealed_code_from_the_registration_answer_is_accepted_online_and_keys_stay_where_they_belong(
        client: FlaskClient) -> None:
    import base64

    from app.codes.device import mint_sealed_code
    from app.codes.device_verify import is_device_code
    from app.codes.wire import b64url_decode
    from app.codes.device import public_key_from_jwk

    citizen = enrol(client)
    key = ec.generate_private_key(ec.SECP256R1())
    answer = register(client, citizen, key).get_json()
    assert answer["sealed_code_prefix"] == "CC3:"
    readers = answer["reader_keys"]
    assert len(readers) == 2 and readers[0]["valid_until"] == readers[1]["valid_from"]
    assert all("d" not in r["public_key"] and "private_key" not in r for r in readers)  # phones: public only
    current = readers[0]
    sealed = base64.urlsafe_b64decode(answer["sealed_certificate"] + "==")
    code = mint_sealed_code(sealed, key, b64url_decode(current["kid"].encode()),
                            public_key_from_jwk(current["public_key"]), now=time.time()).code
    assert is_device_code(code) and len(code) == 418
    gate = terminal(client)
    assert verify(client, gate, code)["reason"] == "ok"
    assert verify(client, gate, code)["reason"] == "replayed"
    held = client.get("/v1/terminals/me/reader-keys", headers=bearer(gate)).get_json()["keys"]
    assert {k["kid"] for k in held} == {r["kid"] for r in readers}
    assert all(k["private_key"]["d"] for k in held)
    denied = client.get("/v1/terminals/me/reader-keys", headers=bearer(citizen["app_token"]))
    assert denied.status_code == 403
