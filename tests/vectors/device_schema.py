"""The device-bound vectors' format (``tests/vectors/device/``) and a second implementation of
their signature layer, written from docs/code-format-v2.md alone: pycose verifies the COSE
signatures; base45, base64url, the device key's decompression and the CC3 opening (ECDH, HKDF,
AES-128-CTR) are written here with ``cbor2`` and the ``cryptography`` primitives directly. Nothing
here imports ``app``: it is the code a vendor could have written from the document."""
from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import cbor2

from tests.vectors.schema import VectorSet

FORMAT = "citycode-device-vectors/1"
FILES = ("jwks.json", "trust.json", "reader_keys.json", "cases.json")
PREFIXES = ("CC2:", "CC3:")
SIGNATURE_REASONS = frozenset({"bad_signature", "unknown_key"})
PUBLIC_MEMBERS = frozenset({"kty", "crv", "x", "y", "kid", "alg", "use"})


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
        prefix = "CC3:" if case["id"].startswith("sealed-") else "CC2:"
        if not case["code"].startswith(prefix):
            found.append(f"{case['id']}: a {'sealed' if prefix == 'CC3:' else 'device'} code starts with {prefix}")
    for key in docs["jwks.json"]["keys"]:
        if set(key) - PUBLIC_MEMBERS:
            found.append("the key set holds only public members")
    readers = docs["reader_keys.json"]
    if readers.get("test_only") is not True or "TEST-ONLY" not in readers.get("note", ""):
        found.append("reader_keys.json must say that its keys are test-only")
    for entry in readers.get("keys", []):
        jwk = entry.get("private_key", {})
        if not {"kty", "crv", "x", "y", "d"} <= set(jwk) or entry.get("public_key") != {
                k: jwk[k] for k in ("kty", "crv", "x", "y") if k in jwk}:
            found.append(f"reader key {entry.get('kid')}: a private P-256 JWK and its public half")
        elif entry["kid"] != _b64(reader_kid(jwk)):
            found.append(f"reader key {entry['kid']}: kid must be SHA-256(04 || x || y)[:4]")
    return found


def load(folder: Path) -> tuple[VectorSet, dict[str, Any]]:
    """The vectors as the JWS vectors' ``VectorSet`` (so the same reader builders run them), and
    the device settings (``code_seconds``, ``max_certificate_seconds``) with the held reader keys
    (``reader_keys``: the entries of ``reader_keys.json``)."""
    docs = read(folder)
    found = problems(docs)
    if found:
        raise ValueError("; ".join(found))
    top = docs["cases.json"]
    vectors = VectorSet(top["now"], top["issuer"], top["max_ttl"], top["leeway"], top["max_code_chars"],
                        tuple(top["algorithms"]), docs["jwks.json"], docs["trust.json"], top["used"],
                        top["cases"])
    return vectors, {"code_seconds": top["code_seconds"],
                     "max_certificate_seconds": top["max_certificate_seconds"],
                     "reader_keys": docs["reader_keys.json"]["keys"]}


# == the second implementation ====================================================================
B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
P256_P = 2**256 - 2**224 + 2**192 + 2**96 - 1
P256_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
CC3_BYTES, CC3_CIPHERTEXT = 276, 162


class Refused(Exception):
    """The code cannot be read far enough to judge its signatures."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def base45_decode(text: str) -> bytes:
    """RFC 9285 (no canonicality checks beyond the value ranges: enough for this purpose)."""
    if len(text) % 3 == 1 or any(ch not in B45 for ch in text):
        raise Refused("not base45")
    out = bytearray()
    for i in range(0, len(text), 3):
        chunk = [B45.index(ch) for ch in text[i:i + 3]]
        value = sum(v * 45**k for k, v in enumerate(chunk))
        if value > (0xFFFF if len(chunk) == 3 else 0xFF):
            raise Refused("base45 group out of range")
        out += value.to_bytes(2 if len(chunk) == 3 else 1, "big")
    return bytes(out)


def reader_kid(jwk: dict[str, str]) -> bytes:
    """§6.2: a reader key's id is SHA-256 over its uncompressed point, first 4 bytes."""
    return hashlib.sha256(b"\x04" + _unb64(jwk["x"]) + _unb64(jwk["y"])).digest()[:4]


def _decompress(x: bytes, odd: bool) -> bytes:
    """y of a compressed P-256 point (from the curve equation; p ≡ 3 mod 4)."""
    xi = int.from_bytes(x, "big")
    y = pow((xi ** 3 - 3 * xi + P256_B) % P256_P, (P256_P + 1) // 4, P256_P)
    if (y & 1) != int(odd):
        y = P256_P - y
    return y.to_bytes(32, "big")


def _service_key(jwks: dict[str, Any], hint: bytes) -> Any:
    """The pycose key of the one JWK whose kid hashes to ``hint`` (8 bytes for CC2, 4 for CC3), or
    None: no such key, two such keys, or not an ES256 (P-256) key."""
    from pycose.keys import EC2Key
    from pycose.keys.curves import P256

    found = [k for k in jwks["keys"] if hashlib.sha256(k["kid"].encode()).digest()[:len(hint)] == hint]
    if len(found) != 1 or found[0]["kty"] != "EC" or found[0]["crv"] != "P-256":
        return None
    return EC2Key(crv=P256, x=_unb64(found[0]["x"]), y=_unb64(found[0]["y"]))


def _verified(parts: list[Any], key: Any, external_aad: bytes = b"") -> bool:
    """pycose's verdict on an untagged COSE_Sign1 ``[protected, unprotected, payload, signature]``.
    CC2 names the algorithm in the protected header; CC3's headers name none (its prefix pins
    ES256), so it is put into the in-memory unprotected header, which the Sig_structure does not
    cover."""
    from pycose.algorithms import Es256
    from pycose.headers import Algorithm
    from pycose.messages import Sign1Message

    if key is None:
        return False
    message = Sign1Message.from_cose_obj(list(parts), True)
    if parts[0] == b"":
        message.uhdr_update({Algorithm: Es256})
    message.external_aad = external_aad
    message.key = key
    try:
        return bool(message.verify_signature())
    except Exception:  # pycose raises for a signature of the wrong size
        return False


def _device_key(cnf_key: dict[int, Any]) -> Any:
    from pycose.keys import CoseKey
    return CoseKey.from_dict({1: 2, -1: 1, -2: cnf_key[-2], -3: _decompress(cnf_key[-2], cnf_key[-3])})


def pycose_signatures(jwks: dict[str, Any], code: str) -> tuple[bool, bool]:
    """CC2: (certificate signature valid, device signature valid), by pycose from the JWKS alone:
    the certificate's kid hint (protected header 4) picks the JWK, the device key is its cnf."""
    outer = cbor2.loads(base45_decode(code[4:]))
    cert = cbor2.loads(cbor2.loads(outer[2])[0])
    hint = cbor2.loads(cert[0])[4]  # SHA-256 of the JWK's kid, first 8 bytes
    device = _device_key(cbor2.loads(cert[2])[8][1])
    return _verified(cert, _service_key(jwks, hint)), _verified(outer, device)


def sealed_signatures(jwks: dict[str, Any], reader_keys: list[dict[str, Any]], code: str) -> tuple[bool, bool]:
    """CC3: open the code with the held reader keys (§6.2), then (certificate signature valid,
    device signature valid) by pycose. Raises ``Refused`` when it cannot be opened and read: wrong
    prefix or length or shape, reader key not held, ephemeral key not a compressed P-256 point,
    plaintext not ``0x82 || certificate || t || zero bytes``."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    if not code.startswith("CC3:"):
        raise Refused("not a sealed code")
    raw = base45_decode(code[4:])
    if len(raw) != CC3_BYTES:
        raise Refused("a sealed code is 276 bytes")
    try:
        outer = cbor2.loads(raw)
        rkid, epk, ciphertext = cbor2.loads(outer[2])
    except (cbor2.CBORDecodeError, ValueError, TypeError, IndexError) as exc:
        raise Refused(f"not a COSE_Sign1 of [rkid, epk, ct]: {exc}") from None
    if outer[0] != b"" or outer[1] != {} or len(rkid) != 4 or len(epk) != 33 or len(ciphertext) != CC3_CIPHERTEXT:
        raise Refused("wrong shape")
    held = [k["private_key"] for k in reader_keys if reader_kid(k["private_key"]) == rkid]
    if not held:
        raise Refused("reader key not held")
    if epk[0] not in (2, 3):
        raise Refused("ephemeral key not compressed")
    try:
        ephemeral = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), epk)
    except ValueError:
        raise Refused("ephemeral key not on P-256") from None
    jwk = held[0]
    reader = ec.derive_private_key(int.from_bytes(_unb64(jwk["d"]), "big"), ec.SECP256R1())
    okm = HKDF(hashes.SHA256(), 48, salt=None, info=b"citycode-cc3/1" + rkid + epk).derive(
        reader.exchange(ec.ECDH(), ephemeral))
    decryptor = Cipher(algorithms.AES(okm[:16]), modes.CTR(okm[16:32])).decryptor()
    plaintext = decryptor.update(ciphertext) + decryptor.finalize()
    stream = io.BytesIO(plaintext[1:])
    try:
        if plaintext[0] != 0x82:
            raise Refused("plaintext is not an array of two")
        cert = cbor2.CBORDecoder(stream).decode()
        t = cbor2.CBORDecoder(stream).decode()
    except (cbor2.CBORDecodeError, ValueError, TypeError, EOFError) as exc:
        raise Refused(f"plaintext unreadable: {exc}") from None
    if plaintext[1 + stream.tell():].strip(b"\x00") or type(t) is not int:
        raise Refused("padding not zero, or t not an integer")
    if type(cert) is not list or len(cert) != 4 or cert[0] != b"" or type(cert[1]) is not dict \
            or type(cert[1].get(4)) is not bytes or len(cert[1][4]) != 4:
        raise Refused("not a v3 certificate")
    try:
        cnf_key = cbor2.loads(cert[2])[8][1]
    except (cbor2.CBORDecodeError, KeyError, TypeError) as exc:
        raise Refused(f"certificate claims unreadable: {exc}") from None
    aad = okm[32:48]
    return _verified(cert, _service_key(jwks, cert[1][4])), _verified(outer, _device_key(cnf_key), aad)
