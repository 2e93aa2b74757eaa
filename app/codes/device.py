"""Device-bound codes ("CC2:"): the service certifies a phone's P-256 key, the phone signs each code.

Format (docs/code-format-v2.md is the full specification)::

    code        = "CC2:" base45( COSE_Sign1 )                 ; signed by the device key
    COSE_Sign1  = [ h'A10126' ({1: -7}, ES256), {}, bstr .cbor [cert, t, nonce], signature(64) ]
    cert        = bstr .cbor COSE_Sign1                       ; signed by a service key (JWKS)
                  [ bstr .cbor {1: -7, 4: kid-hint}, {}, bstr .cbor CWT-claims, signature(64) ]
    kid-hint    = first 8 bytes of SHA-256(the JWK's "kid", UTF-8)   ; as the EU DCC's kid
    CWT-claims  = { 2: sub (pseudonym), 4: exp, 6: iat, 7: cti (8 bytes),
                    8: cnf {1: COSE_Key {1: 2, -1: 1, -2: x(32), -3: y-parity (bool)}},
                    "ent": entitlement letters (app.codes.wire) }
    t           = the phone's time of minting (uint); nonce = 8 random bytes

Untagged (no COSE/CWT tags: 3 bytes), an 8-byte kid hint instead of the 43-character JWK
thumbprint kid (35 bytes), the device key compressed (RFC 9053 §7.1.1
allows ``y`` as its sign bit): a realistic code is ~265 bytes → ~400 base45 characters → QR
version 12 at error correction M in alphanumeric mode (419 characters). Both signatures are
COSE ``Signature1`` structures with empty external AAD, so any COSE library verifies them.

This module holds the format (building and reading) and the two minting functions: the service's
``issue_certificate`` and the phone's ``mint_device_code`` (tests, the demo and the load tools use
it as the phone). ``app.codes.device_verify`` decides codes.
"""
from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from app.codes import base45, cbor
from app.codes.errors import Malformed
from app.codes.wire import MAX_SUB_CHARS, b64url_decode, b64url_encode, entitlement_letters

DEVICE_PREFIX = "CC2:"
CODE_PROTECTED = b"\xa1\x01\x26"  # {1: -7}: alg ES256, the only algorithm (pinned)
ES256 = -7
CODE_SECONDS = 30
"""A device code's lifetime, judged on the reader's clock from the code's ``t`` (with leeway)."""
CTI_BYTES = 8
KID_HINT_BYTES = 8
NONCE_BYTES = 8
MAX_DEVICE_CODE_CHARS = 600
MAX_CERT_SECONDS = 7 * 86400
"""Longest certificate validity a reader accepts (``exp - iat``); the service issues hours."""

# CWT claim keys (RFC 8392) and the private-text claim of entitlement letters.
SUB, EXP, IAT, CTI, CNF = 2, 4, 6, 7, 8
ENT = "ent"
COSE_KEY = 1  # cnf member holding a COSE_Key (RFC 8747 §3.2)
KTY, CRV, X, Y = 1, -1, -2, -3
EC2, P256 = 2, 1

_SIGNATURE1 = b"\x84\x6aSignature1"  # CBOR array(4) + text "Signature1"
_EMPTY_BSTR = b"\x40"
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def kid_hint(kid: str) -> bytes:
    """What a certificate's header carries for the JWKS key ``kid``: SHA-256(kid)[:8]."""
    return hashlib.sha256(kid.encode("utf-8")).digest()[:KID_HINT_BYTES]


def sig_structure(protected: bytes, payload: bytes, external_aad: bytes = b"") -> bytes:
    """RFC 9052 §4.4 ``Sig_structure`` for COSE_Sign1: what the signature signs."""
    return _SIGNATURE1 + _bstr(protected) + _bstr(external_aad) + _bstr(payload)


def _bstr(raw: bytes) -> bytes:
    n = len(raw)
    if n < 24:
        return bytes((0x40 | n,)) + raw
    if n < 0x100:
        return bytes((0x58, n)) + raw
    if n < 0x10000:
        return b"\x59" + n.to_bytes(2, "big") + raw
    return b"\x5a" + n.to_bytes(4, "big") + raw


def sign_es256(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    """Raw ``r||s`` (64 bytes), as COSE and JWS carry ES256 signatures."""
    r, s = decode_dss_signature(key.sign(message, _ECDSA_SHA256))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def sign1(key: ec.EllipticCurvePrivateKey, protected: bytes, payload: bytes) -> bytes:
    """An untagged COSE_Sign1 with empty unprotected header and empty external AAD."""
    signature = sign_es256(key, sig_structure(protected, payload))
    return b"\x84" + _bstr(protected) + b"\xa0" + _bstr(payload) + _bstr(signature)


# -- keys ----------------------------------------------------------------------------------------
def cose_key(public_key: ec.EllipticCurvePublicKey) -> dict[int, Any]:
    """The compressed COSE_Key of a P-256 public key (``-3``: the parity of ``y``)."""
    point = public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    return {KTY: EC2, CRV: P256, X: point[1:], Y: point[0] == 3}


def public_key_from_cose(key: Any) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from a COSE_Key map (compressed ``y`` bool, or ``y`` as 32 bytes)."""
    if not isinstance(key, Mapping) or key.get(KTY) != EC2 or key.get(CRV) != P256:
        raise Malformed("device key must be an EC2 P-256 COSE_Key")
    if set(key) - {KTY, CRV, X, Y, 2, 3}:
        raise Malformed("device key has unknown members")
    x, y = key.get(X), key.get(Y)
    if type(x) is not bytes or len(x) != 32:
        raise Malformed("device key x must be 32 bytes")
    if type(y) is bool:
        point = bytes((3 if y else 2,)) + x
    elif type(y) is bytes and len(y) == 32:
        point = b"\x04" + x + y
    else:
        raise Malformed("device key y must be a sign bit or 32 bytes")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise Malformed("device key is not a P-256 point") from None


def public_key_from_jwk(jwk: Mapping[str, Any]) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from a public JWK ``{kty: EC, crv: P-256, x, y}``; ``ValueError`` else."""
    if not isinstance(jwk, Mapping) or jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise ValueError("the device key must be a P-256 JWK (kty EC, crv P-256)")
    if "d" in jwk:
        raise ValueError("send the public key only")
    try:
        x, y = (b64url_decode(str(jwk.get(n, "")).encode("ascii")) for n in ("x", "y"))
    except (Malformed, UnicodeEncodeError):
        raise ValueError("x and y must be base64url") from None
    if len(x) != 32 or len(y) != 32:
        raise ValueError("x and y must be 32 bytes each")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)


def public_jwk(public_key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    numbers = public_key.public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": b64url_encode(numbers.x.to_bytes(32, "big")).decode(),
            "y": b64url_encode(numbers.y.to_bytes(32, "big")).decode()}


# -- the service side: certificates ------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    certificate: bytes  # the COSE_Sign1 bytes the phone embeds in every code
    cert_id: str  # base64url of ``cti``: what the revocation feed names
    issued_at: int
    expires_at: int


def issue_certificate(signing_key: ec.EllipticCurvePrivateKey, kid: str, *, subject: str,
                      entitlements: Iterable[str], device_key: ec.EllipticCurvePublicKey,
                      now: float, expires_at: float, cti: bytes | None = None) -> IssuedCertificate:
    """Sign a device certificate (a CWT in COSE_Sign1) with the service's ES256 key ``kid``."""
    if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUB_CHARS:
        raise ValueError(f"subject must be a string of 1..{MAX_SUB_CHARS} characters")
    iat, exp = math.floor(now), math.floor(expires_at)
    if not 0 < exp - iat <= MAX_CERT_SECONDS:
        raise ValueError("certificate validity must be positive and at most MAX_CERT_SECONDS")
    cti = secrets.token_bytes(CTI_BYTES) if cti is None else cti
    claims = {SUB: subject, EXP: exp, IAT: iat, CTI: cti, CNF: {COSE_KEY: cose_key(device_key)},
              ENT: entitlement_letters(entitlements)}
    protected = cbor.dumps({1: ES256, 4: kid_hint(kid)})
    certificate = sign1(signing_key, protected, cbor.dumps(claims))
    return IssuedCertificate(certificate, cert_id_text(cti), iat, exp)


def cert_id_text(cti: bytes) -> str:
    return b64url_encode(cti).decode("ascii")


# -- the phone side: codes -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DeviceCode:
    code: str
    minted_at: int
    nonce: bytes


def mint_device_code(certificate: bytes, device_key: ec.EllipticCurvePrivateKey, *, now: float,
                     nonce: bytes | None = None) -> DeviceCode:
    """What the phone does for every code, offline: ``[cert, t, nonce]`` signed by its key."""
    t = math.floor(now)
    nonce = secrets.token_bytes(NONCE_BYTES) if nonce is None else nonce
    payload = b"\x83" + _bstr(certificate) + cbor.dumps(t) + _bstr(nonce)
    return DeviceCode(DEVICE_PREFIX + base45.encode(sign1(device_key, CODE_PROTECTED, payload)), t, nonce)


def unwrap(code: str) -> bytes:
    """The COSE bytes of a ``CC2:`` code (prefix and base45 checked); ``Malformed`` otherwise."""
    if not code.startswith(DEVICE_PREFIX):
        raise Malformed("not a device-bound code")
    try:
        return base45.decode(code[len(DEVICE_PREFIX):])
    except ValueError:
        raise Malformed("device code is not canonical base45") from None


def possession_proof(device_key: ec.EllipticCurvePrivateKey, purpose: str, citizen_id: str,
                     signed_at: int) -> str:
    """The phone's proof that it holds ``device_key`` for ``POST /v1/me/devices`` (purpose
    ``register``) and ``…/{id}/certificate`` (``refresh``): base64url raw ES256 signature over
    ``citycode-device-pop/1\\n<purpose>\\n<citizen_id>\\n<signed_at>``."""
    message = b"\n".join((b"citycode-device-pop/1", purpose.encode(), citizen_id.encode(),
                          str(signed_at).encode()))
    return b64url_encode(sign_es256(device_key, message)).decode("ascii")


# == "CC3:": the sealed form (nothing for bystanders) ============================================
# Full specification: docs/code-format-v2.md, sections 6-8. In short::
#
#   code      = "CC3:" base45( COSE_Sign1 )                       ; 276 bytes, always (padding)
#   COSE_Sign1= [ h'' (ES256 pinned by the prefix), {}, bstr .cbor [rkid(4), epk(33), ct], sig(64) ]
#               signed by the DEVICE key with external AAD = aad (below)
#   epk       = a fresh P-256 key per code, SEC1 compressed; Z = ECDH(epk, reader key rkid)
#   key|iv|aad= HKDF-SHA-256(salt = '', IKM = Z, info = "citycode-cc3/1" || rkid || epk, 48)
#   ct        = AES-128-CTR(key, iv, [cert3, t] || zero padding)
#   cert3     = [ h'', {4: kid-hint(4)}, bstr .cbor {2: sub, 4: exp, 6: iat, 8: cnf, "ent": mask}, sig ]
#               signed by a SERVICE key; certificate id = SHA-256(cert3)[:8]
SEALED_PREFIX = "CC3:"
SEALED_CODE_BYTES = 276
"""Every CC3 code is padded to this many bytes: 4 + 414 characters = QR version 12 at M (419)."""
READER_KID_BYTES = 4
CERT3_HINT_BYTES = 4
EPK_BYTES = 33
HKDF_INFO = b"citycode-cc3/1"
ENT_BIT_ORDER = "sedpgyrlzj"
"""Bit i of a v3 certificate's ``ent`` mask is this string's letter i (app.codes.wire letters).
Append-only, as the letters: a new entitlement takes the next bit."""


def ent_mask(entitlements: Iterable[str]) -> int:
    letters = entitlement_letters(entitlements)
    return sum(1 << ENT_BIT_ORDER.index(letter) for letter in letters)


def ent_letters(mask: int) -> str:
    """The letters of a mask (``Malformed`` for a bit no letter has)."""
    if mask >> len(ENT_BIT_ORDER):
        raise Malformed("entitlement mask has an unknown bit")
    return "".join(sorted(letter for i, letter in enumerate(ENT_BIT_ORDER) if mask >> i & 1))


def cert3_hint(kid: str) -> bytes:
    return hashlib.sha256(kid.encode("utf-8")).digest()[:CERT3_HINT_BYTES]


def cert3_id(certificate: bytes) -> str:
    """A v3 certificate's id (what the revocation feed names): base64url(SHA-256(bytes)[:8])."""
    return cert_id_text(hashlib.sha256(certificate).digest()[:CTI_BYTES])


def issue_sealed_certificate(signing_key: ec.EllipticCurvePrivateKey, kid: str, *, subject: str,
                             entitlements: Iterable[str], device_key: ec.EllipticCurvePublicKey,
                             now: float, expires_at: float) -> IssuedCertificate:
    """A v3 device certificate (for CC3 codes): no header algorithm (the prefix pins ES256), a
    4-byte key hint, no ``cti`` (the id is the certificate's hash), entitlements as a bit mask."""
    if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUB_CHARS:
        raise ValueError(f"subject must be a string of 1..{MAX_SUB_CHARS} characters")
    iat, exp = math.floor(now), math.floor(expires_at)
    if not 0 < exp - iat <= MAX_CERT_SECONDS:
        raise ValueError("certificate validity must be positive and at most MAX_CERT_SECONDS")
    claims = {SUB: subject, EXP: exp, IAT: iat, CNF: {COSE_KEY: cose_key(device_key)},
              ENT: ent_mask(entitlements)}
    payload = cbor.dumps(claims)
    signature = sign_es256(signing_key, sig_structure(b"", payload))
    certificate = (b"\x84\x40\xa1\x04" + _bstr(cert3_hint(kid)) + _bstr(payload) + _bstr(signature))
    return IssuedCertificate(certificate, cert3_id(certificate), iat, exp)


def reader_kid(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """A reader key's id: the first 4 bytes of SHA-256 over its uncompressed point."""
    point = public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return hashlib.sha256(point).digest()[:READER_KID_BYTES]


ReaderKeys = dict[bytes, ec.EllipticCurvePrivateKey]  # 4-byte kid → private key


def reader_keys_from(entries: Iterable[Mapping[str, Any]]) -> ReaderKeys:
    """kid → P-256 private key from the entries of ``GET /v1/terminals/me/reader-keys``
    (``{kid, private_key: JWK}``); each kid must be its key's own (``reader_kid``). Raises
    ``ValueError`` for an unusable entry."""
    keys: ReaderKeys = {}
    for entry in entries:
        jwk = entry.get("private_key") if isinstance(entry, Mapping) else None
        if not isinstance(jwk, Mapping) or jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
            raise ValueError("reader key must be a P-256 private JWK")
        try:
            x, y, d = (int.from_bytes(b64url_decode(str(jwk[n]).encode("ascii")), "big") for n in ("x", "y", "d"))
            key = ec.EllipticCurvePrivateNumbers(d, ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1())).private_key()
        except Exception as exc:  # Malformed, KeyError, ValueError: one message for all
            raise ValueError(f"unusable reader key: {exc}") from None
        kid = reader_kid(key.public_key())
        if b64url_decode(str(entry.get("kid", "")).encode("ascii")) != kid:
            raise ValueError("reader key kid does not match the key")
        keys[kid] = key
    return keys


def seal_keys(shared: bytes, rkid: bytes, epk: bytes) -> tuple[bytes, bytes, bytes]:
    """``(AES-128 key, CTR initial counter block, external AAD)`` from the ECDH secret."""
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    okm = HKDF(hashes.SHA256(), 48, salt=None, info=HKDF_INFO + rkid + epk).derive(shared)
    return okm[:16], okm[16:32], okm[32:]


def aes_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    encryptor = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def _ct_len() -> int:
    """Ciphertext bytes that make the whole code ``SEALED_CODE_BYTES``: 3 bytes of outer head,
    2 of payload head, 1 + 5 + 35 of [rkid, epk, …], 2 of the ciphertext's head, 66 of signature."""
    return SEALED_CODE_BYTES - (3 + 2 + 1 + 5 + 35 + 2 + 66)


SEALED_PLAINTEXT_BYTES = _ct_len()  # 162


def mint_sealed_code(certificate: bytes, device_key: ec.EllipticCurvePrivateKey, rkid: bytes,
                     reader_key: ec.EllipticCurvePublicKey, *, now: float,
                     ephemeral: ec.EllipticCurvePrivateKey | None = None) -> DeviceCode:
    """What the phone does for a CC3 code: seal ``[cert3, t]`` to the reader key, sign it."""
    if len(rkid) != READER_KID_BYTES:
        raise ValueError("a reader key id is 4 bytes")
    t = math.floor(now)
    ephemeral = ec.generate_private_key(ec.SECP256R1()) if ephemeral is None else ephemeral
    epk = ephemeral.public_key().public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.CompressedPoint)
    key, iv, aad = seal_keys(ephemeral.exchange(ec.ECDH(), reader_key), rkid, epk)
    plaintext = b"\x82" + certificate + cbor.dumps(t)
    if len(plaintext) > SEALED_PLAINTEXT_BYTES:
        raise ValueError("the certificate is too large for a sealed code (pseudonym over 12 characters?)")
    plaintext += bytes(SEALED_PLAINTEXT_BYTES - len(plaintext))
    payload = b"\x83" + _bstr(rkid) + _bstr(epk) + _bstr(aes_ctr(key, iv, plaintext))
    signature = sign_es256(device_key, sig_structure(b"", payload, aad))
    raw = b"\x84\x40\xa0" + _bstr(payload) + _bstr(signature)
    return DeviceCode(SEALED_PREFIX + base45.encode(raw), t, epk)


def unwrap_sealed(code: str) -> bytes:
    if not code.startswith(SEALED_PREFIX):
        raise Malformed("not a sealed device-bound code")
    try:
        return base45.decode(code[len(SEALED_PREFIX):])
    except ValueError:
        raise Malformed("device code is not canonical base45") from None
