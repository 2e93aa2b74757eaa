"""A second phone implementation, in JavaScript with WebCrypto only (app/web/static/devicecode.js,
the citizen app's own module, driven by loadtest/phone/phone.mjs), makes CC2 and sealed CC3 codes
the Python core accepts, and its sealed bytes are the reference's: the format is implementable
from the document, not only by us. It runs in headless Chromium (as in CI, through Playwright in a
process of its own) and, where installed, in Node.js too."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from app.codes.device import (issue_certificate, issue_sealed_certificate, mint_sealed_code, public_jwk,
                              public_key_from_jwk, reader_kid, unwrap_sealed)
from app.codes.replay import MemoryReplayStore
from app.codes.trust import StaticTrust
from app.codes.verify import Verifier
from app.codes.wire import b64url_encode
from app.devices.desk import check_proof

ROOT = Path(__file__).resolve().parents[2]
NODE = shutil.which("node")
CHROMIUM = os.environ.get("CITYCODE_CHROMIUM", "/usr/bin/chromium")
CITIZEN = "cit_webcrypto"


class Phone:
    """A phone process speaking the line protocol of loadtest/phone: one hello line out (public
    JWK, register proof), one job line in, one result line out."""

    def __init__(self, command: list[str]) -> None:
        self.proc = subprocess.Popen(command + [CITIZEN], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=ROOT)

    def hello(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read() if self.proc.stderr else "no hello"
        return json.loads(line)  # type: ignore[no-any-return]

    def mint(self, job: dict[str, Any]) -> dict[str, Any]:
        out, err = self.proc.communicate(json.dumps(job) + "\n", timeout=120)
        assert self.proc.returncode == 0, err
        return json.loads(out.splitlines()[-1])  # type: ignore[no-any-return]


def _chromium_command() -> list[str]:
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("playwright is not installed (pip install playwright)")
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    return [sys.executable, str(ROOT / "loadtest/phone/chromium_phone.py")]


def _node_command() -> list[str]:
    if NODE is None:
        pytest.skip("Node.js is not installed (the Chromium run covers the same module)")
    return [NODE, str(ROOT / "loadtest/phone/node_phone.mjs")]


@pytest.fixture(params=["chromium", "node"])
def phone(request: pytest.FixtureRequest) -> Iterator[Phone]:
    """The app's minting module (app/web/static/devicecode.js) in headless Chromium through
    Playwright (loadtest/phone/chromium_phone.py; as in CI), and in Node.js where installed."""
    running = Phone(_chromium_command() if request.param == "chromium" else _node_command())
    try:
        yield running
    finally:
        running.proc.kill()
        running.proc.wait()


def _reader_entry(key: ec.EllipticCurvePrivateKey, now: float) -> dict[str, Any]:
    return {"kid": b64url_encode(reader_kid(key.public_key())).decode(), "public_key": public_jwk(key.public_key()),
            "valid_from": int(now) - 3600, "valid_until": int(now) + 3600}


def _private_jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    d = key.private_numbers().private_value.to_bytes(32, "big")
    return {**public_jwk(key.public_key()), "d": b64url_encode(d).decode()}


def test_webcrypto_phone_registers_and_mints_cc2_and_sealed_cc3_codes_the_core_accepts(phone: Phone) -> None:
    hello = phone.hello()
    assert hello["extractable"] is False  # the device key's private half stays in WebCrypto
    device_key = public_key_from_jwk(hello["jwk"])
    check_proof(device_key, "register", CITIZEN, hello["signed_at"], hello["signature"], time.time())

    service, reader = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    now = time.time()
    common = {"subject": "webPhone001", "entitlements": ("stu", "hg"), "device_key": device_key,
              "now": now - 60, "expires_at": now + 3600}
    cert = issue_certificate(service, "svc-key1", **common)  # type: ignore[arg-type]
    cert3 = issue_sealed_certificate(service, "svc-key1", **common)  # type: ignore[arg-type]
    result = phone.mint({"certificate": b64url_encode(cert.certificate).decode(),
                         "sealed_certificate": b64url_encode(cert3.certificate).decode(),
                         "reader": _reader_entry(reader, now), "count": 5})

    keys = {"svc-key1": ("ES256", service.public_key())}
    verifier = Verifier(lambda: keys, StaticTrust(), MemoryReplayStore(), "cc", max_ttl=60,  # type: ignore[arg-type]
                        reader_keys=lambda: {reader_kid(reader.public_key()): reader})
    plain = [verifier.verify(code) for code in result["codes"]]
    assert [d.reason for d in plain] == ["ok"] * 5 and result["mint_ms"] > 0
    assert plain[0].claims is not None and plain[0].claims.ent == ("hg", "stu")

    sealed = result["sealed"]
    assert len(sealed) == 5 and {len(code) for code in sealed} == {418} and result["sealed_mint_ms"] > 0
    assert all(code.startswith("CC3:") for code in sealed) and len(set(sealed)) == 5
    decisions = [verifier.verify(code) for code in sealed]
    assert [d.reason for d in decisions] == ["ok"] * 5  # five fresh ephemeral keys: five replay ids
    assert decisions[0].claims is not None and decisions[0].claims.ent == ("hg", "stu")
    assert decisions[0].claims.sub == "webPhone001"
    other = ec.generate_private_key(ec.SECP256R1())
    assert Verifier(lambda: keys, StaticTrust(), MemoryReplayStore(), "cc", max_ttl=60,  # type: ignore[arg-type]
                    reader_keys=lambda: {reader_kid(other.public_key()): other}).verify(sealed[0]).reason \
        == "unknown_key"


def test_webcrypto_sealed_code_has_the_reference_bytes_but_for_the_signature(phone: Phone) -> None:
    """With the ephemeral key and the clock fixed, everything but the (randomised) ECDSA signature
    is determined: rkid, compressed epk, HKDF, AES-CTR, padding and the CBOR around them."""
    device_key = public_key_from_jwk(phone.hello()["jwk"])
    service, reader = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    cert3 = issue_sealed_certificate(service, "svc-key1", subject="s", entitlements=(), device_key=device_key,
                                     now=now - 60, expires_at=now + 600)
    js = phone.mint({"certificate": b64url_encode(cert3.certificate).decode(),  # (CC2 of it: unused)
                     "sealed_certificate": b64url_encode(cert3.certificate).decode(),
                     "reader": _reader_entry(reader, now), "ephemeral": _private_jwk(ephemeral), "now": now})
    reference = mint_sealed_code(cert3.certificate, ec.generate_private_key(ec.SECP256R1()),
                                 reader_kid(reader.public_key()), reader.public_key(), now=now, ephemeral=ephemeral)
    mine, theirs = unwrap_sealed(js["sealed"][0]), unwrap_sealed(reference.code)
    assert len(mine) == len(theirs) == 276
    assert mine[:-64] == theirs[:-64]  # all but r||s
    keys = {"svc-key1": ("ES256", service.public_key())}
    verifier = Verifier(lambda: keys, StaticTrust(), MemoryReplayStore(), "cc", max_ttl=60,  # type: ignore[arg-type]
                        reader_keys=lambda: {reader_kid(reader.public_key()): reader})
    assert verifier.verify(js["sealed"][0]).reason == "ok"  # and r||s is the device's, over the AAD
