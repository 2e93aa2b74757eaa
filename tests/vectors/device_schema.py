"""The device-bound vectors' format (``tests/vectors/device/``) and a second implementation of
their signature layer, written from docs/code-format-v2.md with another COSE library (pycose)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import cbor2

from tests.vectors.schema import VectorSet

FORMAT = "citycode-device-vectors/1"
FILES = ("jwks.json", "trust.json", "cases.json")
SIGNATURE_REASONS = frozenset({"bad_signature", "unknown_key"})


def read(folder: Path) -> dict[str, Any]:
    return {name: json.loads((folder / name).read_text(encoding="utf-8")) for name in FILES}


def problems(docs: dict[str, Any]) -> list[str]:
    """Broken rules of the format (empty: fine)."""
    top, found = docs["cases.json"], []
    if top.get("format") != FORMAT:
        found.append(f"format must be {FORMAT!r}")
    ids = [case["id"] for case in top["cases"]]
    if len(ids) != len(set(ids)):
        found.append("case ids must be unique")
    for case in top["cases"]:
        expected = case["expected"]
        if (expected["decision"] == "accept") != ("ent" in expected):
            found.append(f"{case['id']}: an accept and only an accept lists ent")
        if case["signature_level"]:
            both = case["certificate_signature_valid"] and case["device_signature_valid"]
            if both is (expected["reason"] in SIGNATURE_REASONS):
                found.append(f"{case['id']}: signature flags disagree with the reason")
        if not case["code"].startswith("CC2:"):
            found.append(f"{case['id']}: a device code starts with CC2:")
    for key in docs["jwks.json"]["keys"]:
        if set(key) - {"kty", "crv", "x", "y", "kid", "alg", "use"}:
            found.append("the key set holds only public members")
    return found


def load(folder: Path) -> tuple[VectorSet, dict[str, Any]]:
    """The vectors as the JWS vectors' ``VectorSet`` (so the same reader builders run them), and
    the device settings (``code_seconds``, ``max_certificate_seconds``)."""
    docs = read(folder)
    found = problems(docs)
    if found:
        raise ValueError("; ".join(found))
    top = docs["cases.json"]
    vectors = VectorSet(top["now"], top["issuer"], top["max_ttl"], top["leeway"], top["max_code_chars"],
                        tuple(top["algorithms"]), docs["jwks.json"], docs["trust.json"], top["used"],
                        top["cases"])
    return vectors, {"code_seconds": top["code_seconds"],
                     "max_certificate_seconds": top["max_certificate_seconds"]}


def pycose_signatures(jwks: dict[str, Any], code: str) -> tuple[bool, bool]:
    """(certificate signature valid, device signature valid), by pycose from the JWKS alone: the
    certificate's kid (protected header 4) picks the JWK, the device key is its cnf COSE_Key."""
    from pycose.keys import CoseKey, EC2Key
    from pycose.keys.curves import P256
    from pycose.messages import Sign1Message

    from app.codes import base45
    from app.codes.wire import b64url_decode

    outer = Sign1Message.from_cose_obj(cbor2.loads(base45.decode(code[4:])), True)
    cert = Sign1Message.from_cose_obj(cbor2.loads(cbor2.loads(outer.payload)[0]), True)
    hint = cbor2.loads(cert.phdr_encoded)[4]  # SHA-256 of the JWK's kid, first 8 bytes
    jwk = next((k for k in jwks["keys"] if hashlib.sha256(k["kid"].encode()).digest()[:8] == hint), None)
    cert_valid = False
    if jwk is not None and jwk["kty"] == "EC" and jwk["crv"] == "P-256":
        cert.key = EC2Key(crv=P256, x=b64url_decode(jwk["x"].encode()), y=b64url_decode(jwk["y"].encode()))
        cert_valid = bool(cert.verify_signature())
    cnf = cbor2.loads(cert.payload)[8][1]
    device = _uncompressed(cnf)
    outer.key = CoseKey.from_dict({1: 2, -1: 1, -2: device[0], -3: device[1]})
    return cert_valid, bool(outer.verify_signature())


def _uncompressed(cose_key: dict[int, Any]) -> tuple[bytes, bytes]:
    """x, y of a compressed P-256 COSE_Key (y from the curve equation; p ≡ 3 mod 4)."""
    p = 2**256 - 2**224 + 2**192 + 2**96 - 1
    b = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
    x = int.from_bytes(cose_key[-2], "big")
    y = pow((x ** 3 - 3 * x + b) % p, (p + 1) // 4, p)
    if (y & 1) != int(cose_key[-3]):
        y = p - y
    return cose_key[-2], y.to_bytes(32, "big")
