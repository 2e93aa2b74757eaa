"""The issue's "done when": a device registered while online mints codes with the network cut,
and an offline reader (scanners/) provisioned from the service's own JWKS and feed accepts them
and charges the citizen's fare; removing the device reaches the reader through its feed."""
from __future__ import annotations

import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from flask.testing import FlaskClient

from app.codes.device import mint_device_code
from scanners.reader import Reader
from tests.devices.test_device_api import certificate_of, register
from tests.helpers import bearer, credential, enrol, issuer, terminal


def provisioned_bus_reader(client: FlaskClient, data_dir: Path) -> Reader:
    gate = terminal(client, "bus", line="1", vehicle="鲁B-30001")
    me = client.get("/v1/terminals/me", headers=bearer(gate)).get_json()
    jwks = client.get("/.well-known/jwks.json").get_json()
    feed = client.get("/v1/trust/revocations?since=0", headers=bearer(gate)).get_json()
    feed["full"] = True
    return Reader.provision(data_dir, me=me, jwks=jwks, feed=feed, base_url="http://127.0.0.1:9",
                            terminal_token=gate, now=time.time(), offline=True)


def test_offline_reader_charges_a_device_code_minted_without_network(client: FlaskClient, tmp_path: Path) -> None:
    citizen = enrol(client)
    credential(client, issuer(client, "student_card"), citizen["citizen_id"], "student_card")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate_of(register(client, citizen, key))
    reader = provisioned_bus_reader(client, tmp_path / "reader")
    try:
        code = mint_device_code(cert, key, now=time.time()).code  # the phone, offline
        first = reader.scan(code, offline=True)
        assert (first.decision, first.reason, first.mode) == ("accept", "ok", "offline")
        assert first.data["fare"]["category"] == "student"
        assert reader.scan(code, offline=True).reason == "replayed"
    finally:
        reader.close()


def test_removed_device_is_denied_by_a_reader_whose_feed_carries_it(client: FlaskClient, tmp_path: Path) -> None:
    citizen = enrol(client)
    key = ec.generate_private_key(ec.SECP256R1())
    registered = register(client, citizen, key)
    cert = certificate_of(registered)
    device_id = registered.get_json()["device_id"]
    assert client.delete(f"/v1/me/devices/{device_id}", headers=bearer(citizen["app_token"])).status_code == 204
    reader = provisioned_bus_reader(client, tmp_path / "reader")
    try:
        assert reader.scan(mint_device_code(cert, key, now=time.time()).code, offline=True).reason == "revoked"
    finally:
        reader.close()
