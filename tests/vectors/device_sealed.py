"""The sealed ``CC3:`` cases of the device-bound vectors (``python -m tests.vectors.device_generate``
writes them with the ``CC2:`` ones). Genuine codes come from the production functions
(``issue_sealed_certificate``, ``mint_sealed_code``); crafted ones are sealed and signed here with
exactly the defect they are about (``_seal`` is the phone's sealing step with every part open).

The readers hold the three keys of ``reader_keys.json`` (a retired key still in grace, the current
one, the next one); ``gone`` is a fourth key no reader holds.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cbor2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.codes import base45
from app.codes.device import (MAX_CERT_SECONDS, SEALED_PLAINTEXT_BYTES, SEALED_PREFIX, aes_ctr, cert3_hint,
                              cert3_id, cose_key, issue_sealed_certificate, mint_sealed_code, seal_keys,
                              sig_structure, sign_es256)
from app.codes.wire import b64url_encode
from app.signing.reader_keys import ReaderKey
from tests.vectors.catalogue import ISSUER, LEEWAY, NOW, accept, deny

if TYPE_CHECKING:
    from tests.vectors.device_generate import DeviceCatalogue

SCHOLAR, SEALED_RIDER = "devScholar1", "devSealed01"
EVERY_LETTER = ("stu", "sen", "dis", "sap", "hr", "rla", "rzt", "rjm")  # 8 letters: the most a citizen holds
CT_START = 48  # where the ciphertext starts in a CC3 code's bytes (84 40 A0, 58 CD, 83, rkid, epk, 58 A2)


def _compressed(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)


def _seal(c: DeviceCatalogue, plaintext: bytes, *, reader: ReaderKey | None = None,
          device: ec.EllipticCurvePrivateKey | None = None, epk: bytes | None = None,
          protected: bytes = b"") -> str:
    """Seal ``plaintext`` as given (no padding added) to ``reader`` and sign it: a CC3 code whose
    only defect is the one the caller put in. ``epk`` replaces the ephemeral key's bytes (the
    secret still comes from a genuine ephemeral key, so only the key's encoding is wrong)."""
    reader = reader or c.reader_current
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    epk = epk or _compressed(ephemeral)
    shared = ephemeral.exchange(ec.ECDH(), reader.private_key.public_key())
    key, iv, aad = seal_keys(shared, reader.kid, epk)
    payload = cbor2.dumps([reader.kid, epk, aes_ctr(key, iv, plaintext)])
    signature = sign_es256(device or c.phone, sig_structure(protected, payload, aad))
    return SEALED_PREFIX + base45.encode(cbor2.dumps([protected, {}, payload, signature]))


def _padded(certificate: bytes, t: int, size: int = SEALED_PLAINTEXT_BYTES, fill: bytes = b"") -> bytes:
    plain = b"\x82" + certificate + cbor2.dumps(t) + fill
    return plain + bytes(size - len(plain))


def _cert3(key: Any, kid: str, claims: dict[Any, Any]) -> bytes:
    """A v3 certificate over exactly ``claims`` (for claims the production issuer refuses to sign)."""
    payload = cbor2.dumps(claims, canonical=True)
    signature = sign_es256(key, sig_structure(b"", payload))
    return b"\x84\x40" + cbor2.dumps({4: cert3_hint(kid)}) + cbor2.dumps(payload) + cbor2.dumps(signature)


def _flip(code: str, position: int) -> str:
    raw = bytearray(base45.decode(code[len(SEALED_PREFIX):]))
    raw[position] ^= 0x01
    return SEALED_PREFIX + base45.encode(bytes(raw))


def _not_on_curve() -> bytes:
    """The first x (counting up from 1) that no P-256 point has, as a compressed key's bytes."""
    for x in range(1, 1000):
        candidate = b"\x02" + x.to_bytes(32, "big")
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), candidate)
        except ValueError:
            return candidate
    raise AssertionError("unreachable: about half of all x are not on the curve")


def add_sealed(c: DeviceCatalogue, *, suspended: str, student: str) -> None:
    """The CC3 cases; ``suspended`` and ``student`` are the pseudonyms the CC2 cases put in the feed
    (suspended, and a student entitlement revoked at ``NOW - 100``)."""
    def cert(key: Any = None, kid: str | None = None, **changes: Any) -> bytes:
        key = key or c.es
        args: dict[str, Any] = {"subject": SEALED_RIDER, "entitlements": ("sen", "hg"),
                                "device_key": c.phone.public_key(), "now": NOW - 3600,
                                "expires_at": NOW + 20 * 3600}
        args.update(changes)
        return issue_sealed_certificate(key.private, kid or key.kid, **args).certificate

    def code(certificate: bytes, *, t: int = NOW, reader: ReaderKey | None = None,
             device: ec.EllipticCurvePrivateKey | None = None,
             ephemeral: ec.EllipticCurvePrivateKey | None = None) -> str:
        reader = reader or c.reader_current
        return mint_sealed_code(certificate, device or c.phone, reader.kid, reader.private_key.public_key(),
                                now=t, ephemeral=ephemeral).code

    def add(case_id: str, description: str, sealed: str, expected: dict[str, Any], *,
            cert_valid: bool | None = None, device_valid: bool | None = None,
            prior: list[str] | None = None) -> None:
        c.add("sealed-" + case_id, description, sealed, expected, cert_valid=cert_valid,
              device_valid=device_valid, prior=prior)

    rider = cert()
    scholar = cert(subject=SCHOLAR, entitlements=("stu",))
    # -- accepted ----------------------------------------------------------------------------
    add("valid-student", "A fresh CC3 code of a student's certificate: opened with the current reader "
        "key, both signatures verify; the student entitlement gives the concession fare.",
        code(scholar), accept("stu"), cert_valid=True, device_valid=True)
    add("valid", "A fresh CC3 code, senior and health letters in the entitlement mask.",
        code(rider), accept("hg", "sen"), cert_valid=True, device_valid=True)
    add("valid-every-entitlement", "Eight entitlement bits set: still 418 characters (padding).",
        code(cert(entitlements=EVERY_LETTER)), accept(*EVERY_LETTER), cert_valid=True, device_valid=True)
    add("valid-no-entitlements", "An empty mask (0): accepted with no entitlements, same length.",
        code(cert(entitlements=())), accept(), cert_valid=True, device_valid=True)
    add("valid-certificate-by-next-key", "The certificate is signed by the published next service key.",
        code(cert(c.es_next)), accept("hg", "sen"), cert_valid=True, device_valid=True)
    add("valid-at-leeway-edge", "t is code_seconds + leeway before now: still accepted.",
        code(rider, t=NOW - 30 - LEEWAY), accept("hg", "sen"), cert_valid=True, device_valid=True)
    # -- reader keys: rotation -----------------------------------------------------------------
    add("reader-key-retired-in-grace", "Sealed to the previous reader key, which readers still hold "
        "in its grace period after rotation (a phone that had not switched yet): accepted.",
        code(rider, reader=c.reader_retired), accept("hg", "sen"), cert_valid=True, device_valid=True)
    add("reader-key-next", "Sealed to the published next reader key (a phone whose clock is ahead): "
        "readers already hold it, accepted.",
        code(rider, reader=c.reader_next), accept("hg", "sen"), cert_valid=True, device_valid=True)
    add("reader-key-not-held", "Sealed to a reader key no reader holds (rotated out past its grace, or "
        "withdrawn): the code cannot be opened, unknown_key.",
        code(rider, reader=c.reader_gone), deny("unknown_key"))
    # -- time --------------------------------------------------------------------------------
    add("expired-code", "t is one second further back than the leeway edge.",
        code(rider, t=NOW - 30 - LEEWAY - 1), deny("expired"), cert_valid=True, device_valid=True)
    add("code-not-yet-valid", "t lies beyond the leeway in the future.",
        code(rider, t=NOW + LEEWAY + 1), deny("not_yet_valid"), cert_valid=True, device_valid=True)
    add("expired-certificate", "A fresh code from a v3 certificate whose exp has passed.",
        code(cert(now=NOW - 86400, expires_at=NOW - LEEWAY - 1)), deny("expired"),
        cert_valid=True, device_valid=True)
    add("certificate-not-yet-valid", "The v3 certificate's iat lies in the future.",
        code(cert(now=NOW + 600, expires_at=NOW + 7200)), deny("not_yet_valid"),
        cert_valid=True, device_valid=True)
    # -- tampering -----------------------------------------------------------------------------
    parts = cbor2.loads(rider)
    claims = cbor2.loads(parts[2])
    claims["ent"] |= 1  # the student bit, added after the service signed
    parts[2] = cbor2.dumps(claims, canonical=True)
    add("tampered-certificate", "The certificate inside the plaintext got the student bit after the "
        "service signed it; the phone sealed and signed the changed certificate, so only the service "
        "signature fails.", code(cbor2.dumps(parts)), deny("bad_signature"), cert_valid=False, device_valid=True)
    cert_end = 1 + len(rider)  # in the plaintext: 0x82, the certificate, then t (1A + 4 bytes), then padding
    assert cert_end + 5 < SEALED_PLAINTEXT_BYTES
    add("tampered-ciphertext-certificate", "One ciphertext bit flipped where the certificate's "
        "signature lies: AES-CTR flips the same plaintext bit, both signatures fail.",
        _flip(code(rider), CT_START + cert_end - 10), deny("bad_signature"), cert_valid=False, device_valid=False)
    add("tampered-ciphertext-time", "One ciphertext bit flipped in t (t moves by one second): the "
        "certificate still verifies, the device signature does not.",
        _flip(code(rider), CT_START + cert_end + 4), deny("bad_signature"), cert_valid=True, device_valid=False)
    add("tampered-ciphertext-padding", "One ciphertext bit flipped in the padding: the plaintext is "
        "read before any signature is checked, and its padding is no longer zero.",
        _flip(code(rider), CT_START + SEALED_PLAINTEXT_BYTES - 1), deny("malformed"))
    add("tampered-device-signature", "One bit of the device signature flipped.",
        _flip(code(rider), 275), deny("bad_signature"), cert_valid=True, device_valid=False)
    add("wrong-device-key", "The code is sealed and signed by a key other than the certified one.",
        code(rider, device=c.thief), deny("bad_signature"), cert_valid=True, device_valid=False)
    add("certificate-unpublished-key", "The certificate's 4-byte hint names no key of the set.",
        code(cert(c.unpublished)), deny("unknown_key"), cert_valid=False, device_valid=True)
    add("certificate-forged-under-published-kid", "An attacker's key signed the certificate, with the "
        "hint of the service's key.", code(cert(c.unpublished, kid=c.es.kid)), deny("bad_signature"),
        cert_valid=False, device_valid=True)
    add("certificate-names-eddsa-key", "The certificate's hint names the EdDSA key: CC3 pins ES256.",
        code(cert(c.es, kid=c.ed.kid)), deny("bad_signature"), cert_valid=False, device_valid=True)
    # -- trust ---------------------------------------------------------------------------------
    revoked = issue_sealed_certificate(c.es.private, c.es.kid, subject=SEALED_RIDER, entitlements=("hg",),  # type: ignore[arg-type]
                                       device_key=c.phone.public_key(), now=NOW - 7200, expires_at=NOW + 3600)
    c.feed.append({"kind": "code_revoked", "id": f"{ISSUER}/{revoked.cert_id}", "at": NOW - 50})
    add("revoked-certificate", "The feed revokes this v3 certificate (code_revoked cc/<certificate id>, "
        "the id being base64url(SHA-256(certificate)[:8])).",
        code(revoked.certificate), deny("revoked"), cert_valid=True, device_valid=True)
    add("suspended-citizen", "The certificate's pseudonym is suspended in the feed.",
        code(cert(subject=suspended)), deny("suspended"), cert_valid=True, device_valid=True)
    add("entitlement-revoked-after-certification", "The student entitlement was revoked after the "
        "certificate's iat: it is dropped.", code(cert(subject=student, entitlements=("stu",))),
        accept(), cert_valid=True, device_valid=True)
    # -- replay: keyed on (certificate id, ephemeral key), never on the bytes -------------------
    twice = ec.generate_private_key(ec.SECP256R1())
    add("replayed-ephemeral-key", "A second code of the same certificate and the same ephemeral key "
        "(other t, other ciphertext and signature): replayed.",
        code(rider, ephemeral=twice), deny("replayed"), cert_valid=True, device_valid=True,
        prior=[code(rider, t=NOW - 2, ephemeral=twice)])
    used = ec.generate_private_key(ec.SECP256R1())
    c.used.append({"iss": ISSUER, "jti": cert3_id(rider) + b64url_encode(_compressed(used)[1:13]).decode()})
    add("used-ephemeral-key", "The (certificate id, epk x[0:12]) pair is in the used list.",
        code(rider, ephemeral=used), deny("replayed"), cert_valid=True, device_valid=True)
    # -- encoding ------------------------------------------------------------------------------
    good = code(rider)
    raw = base45.decode(good[len(SEALED_PREFIX):])
    add("malformed-lowercase", "Lower-case letters are not base45.", "CC3:" + good[4:].lower(), deny("malformed"))
    add("malformed-trailing-byte", "One byte after the COSE_Sign1 (277 bytes).",
        SEALED_PREFIX + base45.encode(raw + b"\x00"), deny("malformed"))
    add("malformed-short", "A ciphertext of 161 bytes, sealed and signed properly: every CC3 code is "
        "276 bytes (the length must say nothing).", _seal(c, _padded(rider, NOW, SEALED_PLAINTEXT_BYTES - 1)),
        deny("malformed"))
    add("malformed-long", "A ciphertext of 163 bytes, sealed and signed properly.",
        _seal(c, _padded(rider, NOW, SEALED_PLAINTEXT_BYTES + 1)), deny("malformed"))
    add("malformed-nonzero-padding", "Sealed and signed properly, but the padding after t holds a 01.",
        _seal(c, _padded(rider, NOW, fill=b"\x00\x01")), deny("malformed"))
    add("malformed-epk-not-on-curve", "The ephemeral key is 02 || x with an x no P-256 point has.",
        _seal(c, _padded(rider, NOW), epk=_not_on_curve()), deny("malformed"))
    uncompressed_prefix = b"\x04" + _compressed(ec.generate_private_key(ec.SECP256R1()))[1:]
    add("malformed-epk-not-compressed", "The ephemeral key's first byte is 04 (33 bytes: no valid encoding).",
        _seal(c, _padded(rider, NOW), epk=uncompressed_prefix), deny("malformed"))
    add("malformed-code-header", "The code's protected header is {1: -7}: CC3 has an empty one (h'').",
        _seal(c, _padded(rider, NOW), protected=b"\xa1\x01\x26"), deny("malformed"))
    add("malformed-reader-kid-swapped", "The reader kid was changed to another held key's: the code "
        "opens to noise, whose framing is wrong.",
        SEALED_PREFIX + base45.encode(raw[:7] + c.reader_next.kid + raw[11:]), deny("malformed"))
    base_claims = {2: SEALED_RIDER, 4: NOW + 3600, 6: NOW - 3600, 8: {1: cose_key(c.phone.public_key())}}
    add("malformed-unknown-entitlement-bit", "A validly signed certificate whose mask sets bit 10, "
        "which no letter has.", code(_cert3(c.es.private, c.es.kid, {**base_claims, "ent": 1 << 10})),
        deny("malformed"), cert_valid=True, device_valid=True)
    add("malformed-extra-claim", "A validly signed v3 certificate with a cti claim, empty to fit (v3 has "
        "no cti: its id is its hash).", code(_cert3(c.es.private, c.es.kid, {**base_claims, 7: b"", "ent": 0})),
        deny("malformed"), cert_valid=True, device_valid=True)
    add("malformed-certificate-too-long", "A v3 certificate valid for longer than max_certificate_seconds.",
        code(_cert3(c.es.private, c.es.kid, {**base_claims, 4: NOW - 3600 + MAX_CERT_SECONDS + 1, "ent": 0})),
        deny("malformed"), cert_valid=True, device_valid=True)
