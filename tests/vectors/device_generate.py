"""Rewrite the device-bound code vectors: ``python -m tests.vectors.device_generate [--out DIR]``.

Writes ``tests/vectors/device/``: ``jwks.json`` (service keys), ``trust.json`` (the revocation feed),
``reader_keys.json`` (the reader keys that open sealed CC3 codes, private: test-only keys made for
the vectors) and ``cases.json`` (clock, settings, used pairs, cases), in the layout of the JWS
vectors (``tests/vectors/README.md``) with the device-code settings added. Service and phone keys
are generated in memory and discarded; genuine certificates and codes come from the production
functions (``app.codes.device``), crafted ones are assembled here (CC2) and in
``tests.vectors.device_sealed`` (CC3) with exactly the defect they are about. Keys, ECDSA
signatures, nonces and ephemeral keys are random: every run writes other bytes with the same ids,
descriptions and expectations, so the committed files are the reference.
"""
from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives.asymmetric import ec

from app.codes import base45
from app.codes.device import (CODE_PROTECTED, CODE_SECONDS, DEVICE_PREFIX, MAX_CERT_SECONDS,
                              issue_certificate, mint_device_code, reader_kid, sign1)
from app.codes.wire import b64url_encode
from app.signing.reader_keys import CURRENT, NEXT, RETIRED, ReaderKey
from tests.vectors import device_schema
from tests.vectors.catalogue import ISSUER, LEEWAY, MAX_CODE_CHARS, MAX_TTL, NOW, accept, deny
from tests.vectors.craft import KeyPair
from tests.vectors.device_sealed import add_sealed

HERE = Path(__file__).resolve().parent / "device"
RIDER, SUSPENDED, STUDENT = "devRider001", "devSuspend1", "devStudent1"
READER_PERIOD, READER_GRACE = 86400, 900  # the server's defaults (app.signing.reader_keys)
READER_KEYS_NOTE = ("TEST-ONLY reader keys, generated for these vectors and published on purpose so "
                    "that a reader under test can open the CC3 cases; no CityCode service or reader "
                    "holds them. Format: GET /v1/terminals/me/reader-keys.")


def _reader_key(state: str, valid_from: int) -> ReaderKey:
    key = ec.generate_private_key(ec.SECP256R1())
    return ReaderKey(reader_kid(key.public_key()), state, valid_from, valid_from + READER_PERIOD, key)


class DeviceCatalogue:
    def __init__(self) -> None:
        self.es, self.es_next = KeyPair.generate("ES256"), KeyPair.generate("ES256")
        self.ed, self.unpublished = KeyPair.generate("EdDSA"), KeyPair.generate("ES256")
        self.phone = ec.generate_private_key(ec.SECP256R1())
        # Reader keys as a terminal holds them at NOW, 600 s after a rotation: the retired key is
        # in its grace (until NOW + 300), then the current and the next; "gone" is held by no one.
        self.reader_retired = _reader_key(RETIRED, NOW - 600 - READER_PERIOD)
        self.reader_current = _reader_key(CURRENT, NOW - 600)
        self.reader_next = _reader_key(NEXT, NOW - 600 + READER_PERIOD)
        self.reader_gone = _reader_key(RETIRED, NOW - 600 - 2 * READER_PERIOD)
        assert self.reader_retired.valid_until + READER_GRACE > NOW >= self.reader_gone.valid_until + READER_GRACE
        self.thief = ec.generate_private_key(ec.SECP256R1())
        self.cases: list[dict[str, Any]] = []
        self.feed: list[dict[str, Any]] = []
        self.used: list[dict[str, str]] = []

    def cert(self, key: KeyPair | None = None, kid: str | None = None, **changes: Any) -> bytes:
        key = key or self.es
        args: dict[str, Any] = {"subject": RIDER, "entitlements": ("sen", "hg"),
                                "device_key": self.phone.public_key(), "now": NOW - 3600,
                                "expires_at": NOW + 20 * 3600}
        args.update(changes)
        return issue_certificate(key.private, kid or key.kid, **args).certificate  # type: ignore[arg-type]

    def code(self, cert: bytes, *, t: int = NOW, nonce: bytes | None = None,
             device: ec.EllipticCurvePrivateKey | None = None) -> str:
        return mint_device_code(cert, device or self.phone, now=t, nonce=nonce).code

    def add(self, case_id: str, description: str, code: str, expected: dict[str, Any], *,
            cert_valid: bool | None = None, device_valid: bool | None = None,
            prior: list[str] | None = None) -> None:
        case: dict[str, Any] = {"id": case_id, "description": description, "code": code}
        if prior:
            case["prior"] = prior
        case["expected"] = expected
        case["signature_level"] = cert_valid is not None
        if cert_valid is not None:
            case["certificate_signature_valid"] = cert_valid
            case["device_signature_valid"] = device_valid
        self.cases.append(case)

    def documents(self) -> dict[str, Any]:
        entries = [{"version": i, **e} for i, e in enumerate(self.feed, start=1)]
        top = {"format": device_schema.FORMAT, "now": NOW, "issuer": ISSUER, "max_ttl": MAX_TTL,
               "leeway": LEEWAY, "max_code_chars": MAX_CODE_CHARS, "algorithms": ["ES256", "EdDSA"],
               "code_seconds": CODE_SECONDS, "max_certificate_seconds": MAX_CERT_SECONDS,
               "jwks": "jwks.json", "trust": "trust.json", "reader_keys": "reader_keys.json",
               "used": self.used, "cases": self.cases}
        held = (self.reader_retired, self.reader_current, self.reader_next)
        return {"jwks.json": {"keys": [self.es.jwk(), self.es_next.jwk(), self.ed.jwk()]},
                "trust.json": {"version": len(entries), "entries": entries, "full": True, "more": False},
                "reader_keys.json": {"test_only": True, "note": READER_KEYS_NOTE,
                                     "keys": [key.private() for key in held]},
                "cases.json": top}


def _resign_outer(raw_outer: list[Any], key: ec.EllipticCurvePrivateKey) -> bytes:
    return sign1(key, raw_outer[0], raw_outer[2])


def add_all(c: DeviceCatalogue) -> None:
    rider = c.cert()
    c.add("device-valid", "A fresh code from a current certificate: both signatures verify.",
          c.code(rider), accept("hg", "sen"), cert_valid=True, device_valid=True)
    c.add("device-valid-certificate-by-next-key",
          "The certificate is signed by the published next key (a key rotation in progress).",
          c.code(c.cert(c.es_next)), accept("hg", "sen"), cert_valid=True, device_valid=True)
    c.add("device-valid-at-leeway-edge", "t is code_seconds + leeway before now: still accepted.",
          c.code(rider, t=NOW - CODE_SECONDS - LEEWAY), accept("hg", "sen"), cert_valid=True, device_valid=True)
    c.add("device-expired-code", "t is one second further back than the edge: expired.",
          c.code(rider, t=NOW - CODE_SECONDS - LEEWAY - 1), deny("expired"), cert_valid=True, device_valid=True)
    c.add("device-code-not-yet-valid", "t lies beyond the leeway in the future.",
          c.code(rider, t=NOW + LEEWAY + 1), deny("not_yet_valid"), cert_valid=True, device_valid=True)
    c.add("device-expired-certificate", "A fresh code from a certificate whose exp has passed.",
          c.code(c.cert(now=NOW - 86400, expires_at=NOW - LEEWAY - 1)), deny("expired"),
          cert_valid=True, device_valid=True)
    c.add("device-certificate-not-yet-valid", "The certificate's iat lies in the future.",
          c.code(c.cert(now=NOW + 600, expires_at=NOW + 7200), t=NOW), deny("not_yet_valid"),
          cert_valid=True, device_valid=True)

    parts = cbor2.loads(rider)
    claims = cbor2.loads(parts[2])
    claims["ent"] = "egs"  # a student letter added after signing
    parts[2] = cbor2.dumps(claims, canonical=True)
    c.add("device-tampered-certificate", "The certificate's entitlements were changed after signing.",
          c.code(cbor2.dumps(parts)), deny("bad_signature"), cert_valid=False, device_valid=True)

    outer = cbor2.loads(base45.decode(c.code(rider)[len(DEVICE_PREFIX):]))
    cert_bytes, t, nonce = cbor2.loads(outer[2])
    outer[2] = cbor2.dumps([cert_bytes, t - 20, nonce])
    c.add("device-tampered-code", "The code's t was changed after the device signed it.",
          DEVICE_PREFIX + base45.encode(cbor2.dumps(outer)), deny("bad_signature"),
          cert_valid=True, device_valid=False)
    c.add("device-wrong-device-key", "The code is signed by a key other than the certified one.",
          c.code(rider, device=c.thief), deny("bad_signature"), cert_valid=True, device_valid=False)
    c.add("device-certificate-unpublished-key", "The certificate names a kid the key set lacks.",
          c.code(c.cert(c.unpublished)), deny("unknown_key"), cert_valid=False, device_valid=True)
    c.add("device-certificate-forged-under-published-kid",
          "An attacker's key signed the certificate, naming the service's kid.",
          c.code(c.cert(c.unpublished, kid=c.es.kid)), deny("bad_signature"), cert_valid=False, device_valid=True)
    c.add("device-certificate-names-eddsa-key", "The certificate (alg ES256) names the EdDSA key's kid.",
          c.code(c.cert(c.es, kid=c.ed.kid)), deny("bad_signature"), cert_valid=False, device_valid=True)

    revoked = issue_certificate(c.es.private, c.es.kid, subject=RIDER, entitlements=("hg",),  # type: ignore[arg-type]
                                device_key=c.phone.public_key(), now=NOW - 7200, expires_at=NOW + 3600)
    c.feed.append({"kind": "code_revoked", "id": f"{ISSUER}/{revoked.cert_id}", "at": NOW - 600})
    c.add("device-revoked-certificate", "The feed revokes this certificate (a removed device).",
          c.code(revoked.certificate), deny("revoked"), cert_valid=True, device_valid=True)
    c.feed.append({"kind": "citizen_suspended", "id": SUSPENDED, "at": NOW - 500})
    c.add("device-suspended-citizen", "The certificate's pseudonym is suspended in the feed.",
          c.code(c.cert(subject=SUSPENDED)), deny("suspended"), cert_valid=True, device_valid=True)
    c.feed.append({"kind": "entitlement_revoked", "id": f"{STUDENT}/stu", "at": NOW - 100})
    c.add("device-entitlement-revoked-after-certification",
          "The student entitlement was revoked after the certificate's iat: it is dropped.",
          c.code(c.cert(subject=STUDENT, entitlements=("stu",))), accept(), cert_valid=True, device_valid=True)

    nonce = secrets.token_bytes(8)
    c.add("device-replayed-nonce", "A second code of the same certificate and nonce (other t, other "
          "signature bytes): replay is keyed on (certificate id, nonce), not on the bytes.",
          c.code(rider, t=NOW, nonce=nonce), deny("replayed"), cert_valid=True, device_valid=True,
          prior=[c.code(rider, t=NOW - 2, nonce=nonce)])
    used_nonce = secrets.token_bytes(8)
    rider_id = b64url_encode(cbor2.loads(cbor2.loads(rider)[2])[7]).decode()
    c.used.append({"iss": ISSUER, "jti": rider_id + b64url_encode(used_nonce).decode()})
    c.add("device-used-nonce", "The (certificate id, nonce) pair is in the used list.",
          c.code(rider, nonce=used_nonce), deny("replayed"), cert_valid=True, device_valid=True)

    good = c.code(rider)
    c.add("device-malformed-lowercase", "Lower-case letters are not base45.", "CC2:" + good[4:].lower(),
          deny("malformed"))
    raw = base45.decode(good[len(DEVICE_PREFIX):])
    c.add("device-malformed-cose-tag", "The COSE_Sign1 carries tag 18: the format has no tags.",
          DEVICE_PREFIX + base45.encode(b"\xd2" + raw), deny("malformed"))
    c.add("device-malformed-trailing-byte", "One byte after the COSE_Sign1.",
          DEVICE_PREFIX + base45.encode(raw + b"\x00"), deny("malformed"))
    c.add("device-malformed-indefinite-array", "The COSE_Sign1 as an indefinite-length array.",
          DEVICE_PREFIX + base45.encode(b"\x9f" + raw[1:] + b"\xff"), deny("malformed"))
    protected = cbor2.dumps({1: -7, 4: b"x"})
    c.add("device-malformed-code-header", "The code's protected header is not exactly {1: -7}.",
          DEVICE_PREFIX + base45.encode(sign1(c.phone, protected, outer[2])), deny("malformed"))
    extra = issue_certificate(c.es.private, c.es.kid, subject=RIDER, entitlements=(),  # type: ignore[arg-type]
                              device_key=c.phone.public_key(), now=NOW - 60, expires_at=NOW + 60)
    parts = cbor2.loads(extra.certificate)
    claims = cbor2.loads(parts[2])
    claims[1] = "cc"  # an iss claim: not in the format's exact claim set
    signed = sign1(c.es.private, parts[0], cbor2.dumps(claims, canonical=True))  # type: ignore[arg-type]
    c.add("device-malformed-extra-claim", "A validly signed certificate with a claim the format lacks.",
          c.code(signed), deny("malformed"))
    c.add("device-malformed-certificate-too-long", "A certificate valid for longer than "
          "max_certificate_seconds.", c.code(_long_cert(c)), deny("malformed"))
    assert CODE_PROTECTED == b"\xa1\x01\x26"
    add_sealed(c, suspended=SUSPENDED, student=STUDENT)


def _long_cert(c: DeviceCatalogue) -> bytes:
    cert = c.cert(now=NOW - 3600, expires_at=NOW + 3600)
    parts = cbor2.loads(cert)
    claims = cbor2.loads(parts[2])
    claims[4] = claims[6] + MAX_CERT_SECONDS + 1
    return sign1(c.es.private, parts[0], cbor2.dumps(claims, canonical=True))  # type: ignore[arg-type]


def build() -> dict[str, Any]:
    catalogue = DeviceCatalogue()
    add_all(catalogue)
    return catalogue.documents()


def write(folder: Path) -> dict[str, Any]:
    documents = build()
    found = device_schema.problems(documents)
    if found:
        raise ValueError("; ".join(found))
    folder.mkdir(parents=True, exist_ok=True)
    for name, document in documents.items():
        (folder / name).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return documents


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.vectors.device_generate",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder (default: tests/vectors/device)")
    args = parser.parse_args(argv)
    documents = write(args.out)
    print(f"wrote {len(documents['cases.json']['cases'])} device cases to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
