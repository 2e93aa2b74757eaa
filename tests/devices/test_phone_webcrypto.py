"""A second phone implementation (WebCrypto, loadtest/phone/device_mint.mjs, run by Node.js) makes
codes the Python core accepts: the format is implementable from the document, not only by us."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from app.codes.device import issue_certificate, public_key_from_jwk
from app.codes.replay import MemoryReplayStore
from app.codes.trust import StaticTrust
from app.codes.verify import Verifier
from app.codes.wire import b64url_encode
from app.devices.desk import check_proof

ROOT = Path(__file__).resolve().parents[2]
NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
def test_webcrypto_phone_registers_and_mints_codes_the_core_accepts() -> None:
    phone = subprocess.Popen([NODE or "node", str(ROOT / "loadtest/phone/node_phone.mjs"), "cit_test", "5"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert phone.stdout is not None and phone.stdin is not None
        hello = json.loads(phone.stdout.readline())
        device_key = public_key_from_jwk(hello["jwk"])
        check_proof(device_key, "register", "cit_test", hello["signed_at"], hello["signature"], time.time())
        service = ec.generate_private_key(ec.SECP256R1())
        now = time.time()
        cert = issue_certificate(service, "svc-key1", subject="webPhone001", entitlements=("stu", "hg"),
                                 device_key=device_key, now=now - 60, expires_at=now + 3600)
        out, err = phone.communicate(b64url_encode(cert.certificate).decode() + "\n", timeout=60)
    finally:
        phone.kill()
    lines = out.splitlines()
    assert phone.returncode == 0 or lines, err
    codes, timing = lines[:-1], json.loads(lines[-1])
    assert len(codes) == 5 and timing["mint_ms"] > 0
    keys = {"svc-key1": ("ES256", service.public_key())}
    verifier = Verifier(lambda: keys, StaticTrust(), MemoryReplayStore(), "cc", max_ttl=60)  # type: ignore[arg-type]
    decisions = [verifier.verify(code) for code in codes]
    assert [d.reason for d in decisions] == ["ok"] * 5
    assert decisions[0].claims is not None and decisions[0].claims.ent == ("hg", "stu")
