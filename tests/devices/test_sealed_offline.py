"""Sealed codes (``CC3:``) end to end, offline: a phone registered through the API gets a sealed
certificate and the reader keys; a bus reader enrolled over real HTTP earlier fetched the private
reader keys at its sync (``GET /v1/terminals/me/reader-keys``). With the service gone, the phone
mints CC3 codes, the reader opens them, charges the student fare and refuses the same code twice;
back online, its taps upload and are stored, and a fresh CC3 code passes ``POST /v1/verify``."""
from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.city import load
from app.codes.device import SEALED_PREFIX, mint_sealed_code, public_key_from_jwk
from app.scenes.bus import FareTable
from app.taps.models import Tap
from scanners.reader import Reader
from tests.devices.test_device_api import register, verify
from tests.helpers import credential, enrol, issuer, terminal
from tests.scanners.conftest import Served
from tests.tap_writer import running_writer


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Phone:
    """What the citizen app keeps after registering: its key, the sealed certificate and the public
    reader keys with their windows; it seals each code to the key whose window holds its clock."""

    key: ec.EllipticCurvePrivateKey
    certificate: bytes
    reader_keys: list[dict[str, Any]]

    @classmethod
    def registered(cls, client: FlaskClient, citizen: dict[str, Any]) -> Phone:
        key = ec.generate_private_key(ec.SECP256R1())
        response = register(client, citizen, key)
        assert response.status_code == 201, response.get_json()
        body = response.get_json()
        assert body["sealed_code_prefix"] == SEALED_PREFIX
        return cls(key, _unb64(body["sealed_certificate"]), body["reader_keys"])

    def mint(self) -> str:
        now = time.time()
        sealing = next(k for k in self.reader_keys if k["valid_from"] <= now < k["valid_until"])
        return mint_sealed_code(self.certificate, self.key, _unb64(sealing["kid"]),
                                public_key_from_jwk(sealing["public_key"]), now=now).code


@pytest.fixture
def served(app: Flask) -> Iterator[Served]:
    """The app over real HTTP (the reader's sync and upload), with the tap writer running."""
    server = Served(app)
    try:
        with running_writer(app):
            yield server
    finally:
        server.stop()


def test_offline_bus_reader_charges_a_sealed_student_code_and_uploads_the_taps(
        app: Flask, client: FlaskClient, served: Served, tmp_path: Path) -> None:
    citizen = enrol(client)
    credential(client, issuer(client, "student_card"), citizen["citizen_id"], "student_card")
    reader = Reader.enrol(tmp_path / "bus", served.base_url, terminal(client, "bus", line="1", vehicle="鲁B-30003"))
    try:
        phone = Phone.registered(client, citizen)
        held = {base64.urlsafe_b64encode(kid).rstrip(b"=").decode() for kid in reader.material.reader_keys}
        assert {k["kid"] for k in phone.reader_keys} <= held  # the sync fetched current and next

        served.stop()  # the network is gone: the phone mints, the reader decides alone
        code = phone.mint()
        assert len(code) == 418
        first = reader.scan(code)
        assert (first.decision, first.reason, first.mode) == ("accept", "ok", "offline"), first
        assert first.fallback is not None  # it tried the service and could not reach it
        student = FareTable.from_config(load("bus")).fare_for(["stu"])
        assert (first.data["fare"]["category"], first.data["fare"]["amount_cents"]) == (
            "student", student.amount_cents)
        assert first.claims is not None and first.claims["ent"] == ["stu"]
        again = reader.scan(code)
        assert (again.decision, again.reason, again.mode) == ("deny", "replayed", "offline")

        served.start()  # back online
        assert reader.sync().ok
        uploaded = reader.upload()
        assert (uploaded.error, uploaded.stored, reader.pending()) == (None, 2, 0)
        rt = app.extensions["citycode"]
        with rt.db.session() as session:
            taps = session.execute(select(Tap.jti, Tap.sub, Tap.decision, Tap.reason, Tap.mode, Tap.ent)
                                   .where(Tap.terminal_id == reader.terminal_id).order_by(Tap.seq)).all()
        jti, sub = first.claims["jti"], first.claims["sub"]
        assert [tuple(t) for t in taps] == [(jti, sub, "accept", "ok", "offline", ["stu"]),
                                           (jti, sub, "deny", "replayed", "offline", ["stu"])]

        online = verify(client, terminal(client, "bus", line="1", vehicle="鲁B-30004"), phone.mint())
        assert (online["decision"], online["fare"]["category"], online["fare"]["amount_cents"]) == (
            "accept", "student", student.amount_cents)
    finally:
        reader.close()

