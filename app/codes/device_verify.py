"""Deciding device-bound codes ("CC2:"), inside the one core: ``Verifier.check`` hands them here.

Steps, nothing believed before its signature checks out:

1. size cap, prefix, canonical base45;
2. the outer COSE_Sign1, read by a fixed-shape parser (``_outer``) that accepts exactly one
   encoding: protected header ``{1: -7}`` (ES256 pinned), unprotected empty, payload
   ``[cert, t, nonce]``, every length and integer in its shortest form, no tags, no indefinite
   lengths, nothing after the item — the certificate is read by the strict generic decoder
   (``app.codes.cbor``: also no duplicate keys);
3. the certificate (cached by its exact bytes, see ``CertificateCache``): protected header exactly
   ``{1: -7, 4: kid-hint}``, the hint (SHA-256 of a JWK's kid, 8 bytes) matched against the JWKS
   (never fetched), its ES256 signature, then the CWT claims with exact types and a bounded
   validity, the device key from ``cnf``;
4. the device signature over the outer Sig_structure with the certified key;
5. the claims the scenes see (``CodeClaims``): ``iss`` the reader's issuer, ``sub`` the pseudonym,
   ``iat`` the certificate's ``iat`` (the moment its entitlements were read, as for a JWS code),
   ``exp`` = min(t + ``code_seconds``, certificate ``exp``), ``jti`` = certificate id + nonce (the
   replay key ``(certificate, nonce)``), ``kid`` the service key. The code is valid from
   max(t, certificate ``iat``): time is then judged by the core exactly as for JWS codes.

A certificate seen before costs a dictionary lookup instead of its signature check and CBOR: only
the device signature is verified again. The cache holds only certificates whose signature
verified, and an entry is used only while the JWKS still maps its ``kid`` to the very key object
that verified it (a key dropped from the ring drops its certificates at once).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from cryptography.hazmat.primitives.asymmetric import ec

from app.codes import cbor
from app.codes.decision import CodeClaims, new_claims
from app.codes.device import (CERT3_HINT_BYTES, CNF, CODE_SECONDS, COSE_KEY, CTI, CTI_BYTES, DEVICE_PREFIX,
                              ENT, EPK_BYTES, ES256, EXP, IAT, KID_HINT_BYTES, MAX_CERT_SECONDS,
                              MAX_DEVICE_CODE_CHARS, READER_KID_BYTES, SEALED_CODE_BYTES,
                              SEALED_PLAINTEXT_BYTES, SEALED_PREFIX, SUB, aes_ctr,
                              cert3_hint, cert3_id, cert_id_text, ent_letters, kid_hint,
                              public_key_from_cose, seal_keys, sig_structure, unwrap, unwrap_sealed)
from app.codes.errors import BadSignature, Malformed, UnknownKey
from app.codes.wire import MAX_NUMERIC_DATE, MAX_SUB_CHARS, b64url_encode, entitlement_names
from app.signing.keyfiles import PublicKey

KeySource = Callable[[], Mapping[str, tuple[str, PublicKey]]]
ReaderKeySource = Callable[[], Mapping[bytes, ec.EllipticCurvePrivateKey]]
"""The reader keys this reader holds: 4-byte kid → P-256 private key (CC3 codes)."""
SignatureCheck = Callable[[Any, bytes, bytes], None]

CLAIM_KEYS = frozenset({SUB, EXP, IAT, CTI, CNF, ENT})
CLAIM3_KEYS = frozenset({SUB, EXP, IAT, CNF, ENT})
MIN_NONCE_BYTES, MAX_NONCE_BYTES = 8, 16
DEFAULT_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class VerifiedCertificate:
    """A certificate whose service signature checked out, and what it says."""

    sub: str
    iat: int
    exp: int
    cert_id: str
    ent: tuple[str, ...]
    kid: str
    service_key: PublicKey  # the key object that verified it (identity checked on reuse)
    device_key: ec.EllipticCurvePublicKey


class CertificateCache:
    """Verified certificates by their exact bytes, least recently used out first; thread-safe."""

    def __init__(self, size: int = DEFAULT_CACHE_SIZE) -> None:
        if size < 0:
            raise ValueError("cache size must be non-negative")
        self.size = size
        self._entries: OrderedDict[bytes, VerifiedCertificate] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, certificate: bytes) -> VerifiedCertificate | None:
        """The entry, marked as just used. No lock: each OrderedDict call is atomic, and an entry
        evicted between the two calls is still a verified one."""
        entry = self._entries.get(certificate)
        if entry is not None:
            try:
                self._entries.move_to_end(certificate)
            except KeyError:
                pass
        return entry

    def put(self, certificate: bytes, entry: VerifiedCertificate) -> None:
        if not self.size:
            return
        with self._lock:
            self._entries[certificate] = entry
            self._entries.move_to_end(certificate)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class DeviceCodes:
    """The device-bound part of the core; ``Verifier`` owns one and shares its keys and issuer."""

    def __init__(self, keys: KeySource, issuer: str, verify_es256: SignatureCheck, *,
                 code_seconds: int = CODE_SECONDS, max_cert_seconds: int = MAX_CERT_SECONDS,
                 cache_size: int = DEFAULT_CACHE_SIZE, max_chars: int = MAX_DEVICE_CODE_CHARS,
                 reader_keys: ReaderKeySource | None = None) -> None:
        if code_seconds <= 0 or max_cert_seconds <= 0 or max_chars <= 0:
            raise ValueError("code_seconds, max_cert_seconds and max_chars must be positive")
        self.keys = keys
        self.issuer = issuer
        self.code_seconds = code_seconds
        self.max_cert_seconds = max_cert_seconds
        self.max_chars = max_chars
        self.cache = CertificateCache(cache_size)
        self._verify = verify_es256
        self._hints: tuple[object, dict[bytes, str | None]] = (None, {})
        self._hints3: tuple[object, dict[bytes, str | None]] = (None, {})
        self.reader_keys: ReaderKeySource = reader_keys or (lambda: {})

    def authentic(self, code: str) -> tuple[CodeClaims, int, str]:
        """``(claims, valid_from, certificate id)`` of an authentic code; raises ``CodeError``."""
        if len(code) > self.max_chars or not code.isascii():
            raise Malformed("device code too long or not ASCII")
        if code[:4] == SEALED_PREFIX:
            return self._sealed(code)
        payload, signature, certificate, t, nonce = _outer(unwrap(code))
        if t > MAX_NUMERIC_DATE:
            raise Malformed("t must be an integer time")
        if not MIN_NONCE_BYTES <= len(nonce) <= MAX_NONCE_BYTES:
            raise Malformed("nonce must be 8..16 bytes")
        cert = self.certificate(certificate)
        self._verify(cert.device_key, signature, _CODE_SIG_HEAD + payload)
        claims = new_claims(self.issuer, cert.sub, cert.iat, min(t + self.code_seconds, cert.exp),
                            cert.cert_id + b64url_encode(nonce).decode("ascii"), cert.ent, cert.kid)
        return claims, max(t, cert.iat), cert.cert_id

    def _sealed(self, code: str) -> tuple[CodeClaims, int, str]:
        """A CC3 code: open it with the reader key its kid names, then the CC2 checks."""
        raw = unwrap_sealed(code)
        if len(raw) != SEALED_CODE_BYTES:
            raise Malformed("a sealed code is exactly 276 bytes")
        if raw[:3] != _SEALED_HEAD:
            raise Malformed("sealed code must start with a COSE_Sign1 of empty headers")
        payload, payload_end = _bytes_at(raw, 3)
        signature, end = _bytes_at(raw, payload_end)
        if end != len(raw):
            raise Malformed("bytes after the device code")
        if payload[:1] != b"\x83":
            raise Malformed("sealed payload is [reader kid, ephemeral key, ciphertext]")
        rkid, pos = _bytes_at(payload, 1)
        epk, pos = _bytes_at(payload, pos)
        ciphertext, pos = _bytes_at(payload, pos)
        if pos != len(payload) or len(rkid) != READER_KID_BYTES or len(epk) != EPK_BYTES \
                or len(ciphertext) != SEALED_PLAINTEXT_BYTES:
            raise Malformed("sealed payload has the wrong shape")
        reader_key = self.reader_keys().get(rkid)
        if reader_key is None:
            raise UnknownKey("reader key " + rkid.hex() + " is not held by this reader")
        try:
            ephemeral = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), epk)
            if epk[0] not in (2, 3):
                raise ValueError("not compressed")
        except ValueError:
            raise Malformed("ephemeral key is not a compressed P-256 point") from None
        key, iv, aad = seal_keys(reader_key.exchange(ec.ECDH(), ephemeral), rkid, epk)
        plain = aes_ctr(key, iv, ciphertext)
        if plain[:1] != b"\x82":
            raise Malformed("sealed plaintext is [certificate, t]")
        cert_end = _cert3_end(plain, 1)
        t, pos = _argument(plain, cert_end, 0)
        if plain[pos:].strip(b"\x00"):
            raise Malformed("sealed padding must be zero bytes")
        if t > MAX_NUMERIC_DATE:
            raise Malformed("t must be an integer time")
        cert = self.certificate(plain[1:cert_end], version=3)
        self._verify(cert.device_key, signature, sig_structure(b"", payload, aad))
        claims = new_claims(self.issuer, cert.sub, cert.iat, min(t + self.code_seconds, cert.exp),
                            cert.cert_id + b64url_encode(epk[1:13]).decode("ascii"), cert.ent, cert.kid)
        return claims, max(t, cert.iat), cert.cert_id

    def certificate(self, certificate: bytes, version: int = 2) -> VerifiedCertificate:
        """The verified certificate: from the cache if its key is still the same, else checked."""
        cached = self.cache.get(certificate)
        if cached is not None:
            entry = self.keys().get(cached.kid)
            if entry is not None and entry[1] is cached.service_key:
                return cached
        verified = self._check_certificate3(certificate) if version == 3 else self._check_certificate(certificate)
        self.cache.put(certificate, verified)
        return verified

    def _check_certificate(self, certificate: bytes) -> VerifiedCertificate:
        parts = cbor.loads(certificate)
        if type(parts) is not list or len(parts) != 4:
            raise Malformed("a certificate is a COSE_Sign1 array of four")
        protected, unprotected, payload, signature = parts
        if type(protected) is not bytes or unprotected != {} or type(payload) is not bytes \
                or type(signature) is not bytes:
            raise Malformed("certificate parts have the wrong types")
        header = cbor.loads(protected)
        if type(header) is not dict or set(header) != {1, 4} or type(header[4]) is not bytes \
                or len(header[4]) != KID_HINT_BYTES:
            raise Malformed("certificate header must be exactly {1: alg, 4: 8-byte kid hint}")
        if header[1] != ES256:
            raise BadSignature("certificate algorithm is not ES256")
        keys = self.keys()
        kid = self._kid_for(keys, header[4])
        entry = keys.get(kid) if kid is not None else None
        if kid is None or entry is None:
            raise UnknownKey(header[4].hex())
        if entry[0] != "ES256":
            raise BadSignature("certificate key is not an ES256 key")
        self._verify(entry[1], signature, sig_structure(protected, payload))
        return self._claims(cbor.loads(payload), kid, entry[1])

    def _check_certificate3(self, certificate: bytes) -> VerifiedCertificate:
        parts = cbor.loads(certificate)
        if type(parts) is not list or len(parts) != 4:
            raise Malformed("a certificate is a COSE_Sign1 array of four")
        protected, unprotected, payload, signature = parts
        if protected != b"" or type(unprotected) is not dict or set(unprotected) != {4} \
                or type(unprotected[4]) is not bytes or len(unprotected[4]) != CERT3_HINT_BYTES \
                or type(payload) is not bytes or type(signature) is not bytes:
            raise Malformed("a v3 certificate is [h'', {4: 4-byte kid hint}, payload, signature]")
        keys = self.keys()
        source, hints = self._hints3
        if source is not keys:
            hints = {}
            for name in keys:
                hinted = cert3_hint(name)
                hints[hinted] = None if hinted in hints else name
            self._hints3 = (keys, hints)
        kid = hints.get(unprotected[4])
        entry = keys.get(kid) if kid is not None else None
        if kid is None or entry is None:
            raise UnknownKey(unprotected[4].hex())
        if entry[0] != "ES256":
            raise BadSignature("certificate key is not an ES256 key")
        self._verify(entry[1], signature, sig_structure(b"", payload))
        claims = cbor.loads(payload)
        if type(claims) is not dict or claims.keys() != CLAIM3_KEYS:
            raise Malformed("v3 certificate claims must be exactly sub, exp, iat, cnf, ent")
        mask = claims[ENT]
        if type(mask) is not int:
            raise Malformed("v3 certificate ent must be a bit mask")
        checked = self._claims({**claims, CTI: b"\x00" * CTI_BYTES, ENT: ent_letters(mask)}, kid, entry[1])
        return VerifiedCertificate(checked.sub, checked.iat, checked.exp, cert3_id(certificate), checked.ent,
                                   kid, entry[1], checked.device_key)

    def _kid_for(self, keys: Mapping[str, tuple[str, PublicKey]], hint: bytes) -> str | None:
        """The JWKS kid whose hint this is (None when no key, or two keys, have it); the map is
        rebuilt only when the key source hands out another mapping (a reloaded ring, a sync)."""
        source, hints = self._hints
        if source is not keys:
            hints = {}
            for kid in keys:
                hinted = kid_hint(kid)
                hints[hinted] = None if hinted in hints else kid
            self._hints = (keys, hints)
        return hints.get(hint)

    def _claims(self, claims: Any, kid: str, service_key: PublicKey) -> VerifiedCertificate:
        if type(claims) is not dict or claims.keys() != CLAIM_KEYS:
            raise Malformed("certificate claims must be exactly sub, exp, iat, cti, cnf, ent")
        sub, exp, iat, cti, cnf = claims[SUB], claims[EXP], claims[IAT], claims[CTI], claims[CNF]
        if type(sub) is not str or not 0 < len(sub) <= MAX_SUB_CHARS:
            raise Malformed("certificate sub must be a short string")
        if type(iat) is not int or type(exp) is not int or not 0 <= iat < exp <= MAX_NUMERIC_DATE:
            raise Malformed("certificate iat and exp must be integer times, iat before exp")
        if exp - iat > self.max_cert_seconds:
            raise Malformed("certificate validity exceeds the longest accepted")
        if type(cti) is not bytes or len(cti) != CTI_BYTES:
            raise Malformed("certificate cti must be 8 bytes")
        if type(cnf) is not dict or set(cnf) != {COSE_KEY}:
            raise Malformed("certificate cnf must hold exactly a COSE_Key")
        device_key = public_key_from_cose(cnf[COSE_KEY])
        return VerifiedCertificate(sub, iat, exp, cert_id_text(cti), entitlement_names(claims[ENT]),
                                   kid, service_key, device_key)


# -- the outer COSE_Sign1, fixed shape --------------------------------------------------------------
_OUTER_HEAD = b"\x84\x43\xa1\x01\x26\xa0"  # array(4), bstr(3) {1: -7}, {} (empty map)
_CODE_SIG_HEAD = sig_structure(b"\xa1\x01\x26", b"")[:-1]  # Sig_structure up to the payload bstr
_from_bytes = int.from_bytes


def _argument(data: bytes, pos: int, major: int) -> tuple[int, int]:
    """(argument, next position) of the CBOR head at ``pos`` of major type ``major``, shortest form
    only (lengths and integers up to 2**64 - 1)."""
    try:
        initial = data[pos]
    except IndexError:
        raise Malformed("device code ends early") from None
    if initial >> 5 != major:
        raise Malformed("device code has an unexpected CBOR type")
    info = initial & 0x1F
    if info < 24:
        return info, pos + 1
    if info > 27:
        raise Malformed("indefinite or reserved CBOR length")
    end = pos + 1 + (1 << (info - 24))
    value = _from_bytes(data[pos + 1:end], "big")
    if end > len(data) or value < (24, 0x100, 0x10000, 0x100000000)[info - 24]:
        raise Malformed("CBOR head truncated or not in its shortest form")
    return value, end


def _bytes_at(data: bytes, pos: int) -> tuple[bytes, int]:
    size, pos = _argument(data, pos, 2)
    end = pos + size
    if end > len(data):
        raise Malformed("byte string runs past the end")
    return data[pos:end], end


_SEALED_HEAD = b"\x84\x40\xa0"  # array(4), h'' (no protected header), {} (empty map)


def _cert3_end(data: bytes, pos: int) -> int:
    """Where the v3 certificate that starts at ``pos`` ends (its exact bytes are then checked by
    the strict decoder): 84 40 A1 04 44 <hint> <payload bstr> <signature bstr>."""
    if data[pos:pos + 5] != b"\x84\x40\xa1\x04\x44":
        raise Malformed("sealed certificate is not a v3 certificate")
    _, end = _bytes_at(data, pos + 5 + CERT3_HINT_BYTES)
    _, end = _bytes_at(data, end)
    return end


def _outer(raw: bytes) -> tuple[bytes, bytes, bytes, int, bytes]:
    """``(payload as a bstr with its head, signature, certificate, t, nonce)`` of the one accepted
    encoding of a device code's COSE_Sign1 (see the module docstring). Lengths are in their
    shortest form, so the payload's bstr is byte for byte the one the Sig_structure holds."""
    if raw[:6] != _OUTER_HEAD:
        raise Malformed("device code must start with a COSE_Sign1 of header {1: -7} and no unprotected members")
    payload, payload_end = _bytes_at(raw, 6)
    signature, end = _bytes_at(raw, payload_end)
    if end != len(raw):
        raise Malformed("bytes after the device code")
    if payload[:1] != b"\x83":
        raise Malformed("device code payload is [certificate, t, nonce]")
    certificate, pos = _bytes_at(payload, 1)
    t, pos = _argument(payload, pos, 0)
    nonce, pos = _bytes_at(payload, pos)
    if pos != len(payload):
        raise Malformed("bytes after the device code payload")
    return raw[6:payload_end], signature, certificate, t, nonce


def is_device_code(code: object) -> bool:
    return type(code) is str and (code.startswith(DEVICE_PREFIX) or code.startswith(SEALED_PREFIX))
