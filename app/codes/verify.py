"""The one verification core: every reader, online or offline, decides a code here.

Steps, cheapest and least trusting first — nothing from the code is believed before the signature
checks out, and the replay record is written only for an authentic, current, trusted code:

1. input: ``str``/``bytes`` only, size capped before any decoding, ASCII only;
2. three segments, each canonical unpadded base64url;
3. header: strict JSON object, no ``crit``; ``alg`` pinned (never chosen by the token), ``typ``,
   ``kid`` only as a dictionary key; ``jku``/``x5u``/``jwk``/``x5c`` are ignored, never fetched;
4. signature with the already-loaded key (ES256 raw ``r||s`` → DER; EdDSA);
5. payload: strict JSON, required claims with exact types, expected ``iss``, bounded lifetime;
   ``ent`` is one string of known entitlement letters (``app.codes.wire``), decoded to names;
6. time, with leeway;
7. trust: suspended citizen, revoked code, revoked entitlements drop out of ``ent``;
8. replay (``verify`` only): first use of ``(iss, jti)``.

Device-bound codes (prefixes ``CC2:`` and the sealed ``CC3:``, ``app.codes.device``) take steps 1–5 in
``app.codes.device_verify`` (two signatures, the certificate cached) and then the same steps 6–8,
plus the revocation of their certificate; their replay key is ``(iss, certificate id + nonce)``.

Reason choices: an algorithm we do not accept (``none`` in any casing, HS256, ES384 …) or one that
differs from the key's registered algorithm is ``bad_signature``; a missing or non-string ``alg``
or ``kid``, or any ``crit``, is ``malformed``; an authentic code for another issuer is ``wrong_type``.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from app.codes.decision import CodeClaims, Decision, new_claims
from app.codes.device import CODE_SECONDS, DEVICE_PREFIX, MAX_CERT_SECONDS, SEALED_PREFIX
from app.codes.device_verify import DEFAULT_CACHE_SIZE, DeviceCodes, ReaderKeySource
from app.codes.errors import (BadSignature, CodeError, Expired, Malformed, NotYetValid,
                              ReplayUnavailable, Replayed, Revoked, Suspended, UnknownKey,
                              WrongType)
from app.codes.replay import ReplayStore
from app.codes.trust import TrustState
from app.codes.wire import (B64URL_ALPHABET, CODE_TYPE, MAX_JTI_CHARS, MAX_NUMERIC_DATE,
                            MAX_SUB_CHARS, MIN_JTI_CHARS, SUPPORTED_ALGORITHMS, b64url_decode,
                            entitlement_names, json_object)
from app.signing.keyfiles import PublicKey

KeySource = Callable[[], Mapping[str, tuple[str, PublicKey]]]

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_HEADER_CACHE_SIZE = 64
_from_bytes = int.from_bytes


# DER for ECDSA (r, s): SEQUENCE { INTEGER r, INTEGER s }. When neither 32-byte half starts with
# a zero byte, each INTEGER is the half itself, with a 0x00 in front if its top bit is set; the
# four framings are precomputed, indexed by the two top bits. Other signatures take the library.
_DER_FRAMES = tuple(
    (bytes((0x30, 0x44 + r_high + s_high, 0x02, 0x20 + r_high)) + b"\x00" * r_high,
     bytes((0x02, 0x20 + s_high)) + b"\x00" * s_high)
    for s_high in (0, 1) for r_high in (0, 1))


def _der_signature(raw: bytes) -> bytes:
    """Raw ``r||s`` (64 bytes) → DER, as ``encode_dss_signature`` would give it."""
    if raw[0] and raw[32]:
        head, middle = _DER_FRAMES[(raw[0] >> 7) | (raw[32] >> 7 << 1)]
        return head + raw[:32] + middle + raw[32:]
    return encode_dss_signature(_from_bytes(raw[:32], "big"), _from_bytes(raw[32:], "big"))


def _verify_es256(key: ec.EllipticCurvePublicKey, signature: bytes, message: bytes) -> None:
    if len(signature) != 64:
        raise BadSignature("ES256 signature must be 64 bytes")
    try:
        key.verify(_der_signature(signature), message, _ECDSA_SHA256)
    except InvalidSignature:
        raise BadSignature("signature does not verify") from None


def _verify_eddsa(key: ed25519.Ed25519PublicKey, signature: bytes, message: bytes) -> None:
    if len(signature) != 64:
        raise BadSignature("EdDSA signature must be 64 bytes")
    try:
        key.verify(signature, message)
    except InvalidSignature:
        raise BadSignature("signature does not verify") from None


_SIGNATURE_CHECKS: dict[str, Callable[[Any, bytes, bytes], None]] = {
    "ES256": _verify_es256, "EdDSA": _verify_eddsa}


def _numeric_date(payload: Mapping[str, Any], name: str) -> int:
    value = payload.get(name)
    if type(value) is not int or not 0 <= value <= MAX_NUMERIC_DATE:
        raise Malformed(f"claim {name} must be an integer time")
    return value


class Verifier:
    """Decides codes. Construct once per process (or per trust snapshot) and share across threads.

    ``keys`` is called on every verification and must be cheap (e.g. a cached ring's
    ``verification_keys``); it maps ``kid`` to ``(algorithm, public key object)``.
    """

    def __init__(self, keys: KeySource, trust: TrustState, replay: ReplayStore, issuer: str, *,
                 max_ttl: int, algorithms: tuple[str, ...] = SUPPORTED_ALGORITHMS,
                 leeway: int = 5, clock: Callable[[], float] = time.time,
                 max_code_bytes: int = 1024, device_code_seconds: int = CODE_SECONDS,
                 max_certificate_seconds: int = MAX_CERT_SECONDS,
                 certificate_cache_size: int = DEFAULT_CACHE_SIZE,
                 reader_keys: ReaderKeySource | None = None) -> None:
        unsupported = set(algorithms) - set(SUPPORTED_ALGORITHMS)
        if not algorithms or unsupported:
            raise ValueError(f"algorithms must be a non-empty subset of {SUPPORTED_ALGORITHMS}")
        if max_ttl <= 0 or leeway < 0 or max_code_bytes <= 0:
            raise ValueError("max_ttl and max_code_bytes must be positive, leeway non-negative")
        self.keys = keys
        self.trust = trust
        self.replay = replay
        self.issuer = issuer
        self.algorithms = tuple(algorithms)
        self.leeway = leeway
        self.max_ttl = max_ttl
        self.clock = clock
        self.max_code_bytes = max_code_bytes
        self._headers: dict[bytes, tuple[str, str]] = {}
        self.device = DeviceCodes(keys, issuer, _verify_es256, code_seconds=device_code_seconds,
                                  max_cert_seconds=max_certificate_seconds,
                                  cache_size=certificate_cache_size, reader_keys=reader_keys)

    # -- public --------------------------------------------------------------------------------
    def verify(self, code: str | bytes) -> Decision:
        """Steps 1–8: ``check`` then ``claim``. Never raises for bad input."""
        return self.claim(self.check(code))

    def check(self, code: str | bytes) -> Decision:
        """Steps 1–7 without recording first use (for scenes that claim replay atomically with
        their own state change)."""
        if code.__class__ is str and (code[:4] == DEVICE_PREFIX or code[:4] == SEALED_PREFIX):
            return self._check_device(code)  # type: ignore[arg-type]
        try:
            claims, valid_from = self._authentic_claims(code)
        except CodeError as error:
            return Decision.from_error(error)
        try:
            return Decision.accept(self._current_and_trusted(claims, valid_from))
        except CodeError as error:
            return Decision.from_error(error, claims)

    def claim(self, decision: Decision) -> Decision:
        """Step 8: record first use of an accepted decision's ``(iss, jti)``; denies pass through."""
        claims = decision.claims
        if decision.decision != "accept" or claims is None:
            return decision
        try:
            first = self.replay.claim(claims.iss, claims.jti, claims.exp + self.leeway, claims.sub)
        except ReplayUnavailable as error:
            return Decision.from_error(error, claims)
        if not first:
            return Decision.from_error(Replayed(claims.iss, claims.jti), claims)
        return decision

    def _check_device(self, code: str) -> Decision:
        """Steps 1–7 for a device-bound code; its certificate's revocation after suspension."""
        try:
            if "ES256" not in self.algorithms:
                raise BadSignature("ES256 is not accepted by this reader")
            claims, valid_from, cert_id = self.device.authentic(code)
        except CodeError as error:
            return Decision.from_error(error)
        try:
            checked = self._current_and_trusted(claims, valid_from)
            if self.trust.is_code_revoked(claims.iss, cert_id):
                raise Revoked(claims.iss, cert_id)
            return Decision.accept(checked)
        except CodeError as error:
            return Decision.from_error(error, claims)

    # -- steps 1–5: authenticity ---------------------------------------------------------------
    def _authentic_claims(self, code: str | bytes) -> tuple[CodeClaims, int]:
        if type(code) is str:
            if len(code) > self.max_code_bytes or not code.isascii():
                raise Malformed("code too long or not ASCII")
            data = code.encode("ascii")
        elif type(code) is bytes:
            if len(code) > self.max_code_bytes or not code.isascii():
                raise Malformed("code too long or not ASCII")
            data = code
        else:
            raise Malformed(f"a code is text, not {type(code).__name__}")
        parts = data.split(b".")
        if len(parts) != 3:
            raise Malformed("a code has exactly three segments")
        header_seg, payload_seg, signature_seg = parts
        alg, kid = self._headers.get(header_seg) or self._header(header_seg)
        payload_raw = b64url_decode(payload_seg)
        signature = b64url_decode(signature_seg)
        entry = self.keys().get(kid)
        if entry is None:
            raise UnknownKey(kid)
        if entry[0] != alg:
            raise BadSignature("algorithm does not match the key's algorithm")
        _SIGNATURE_CHECKS[alg](entry[1], signature, data[:len(header_seg) + 1 + len(payload_seg)])
        return self._claims(json_object(payload_raw), kid)

    def _header(self, segment: bytes) -> tuple[str, str]:
        """Validate a header segment; remember valid ones (a handful of keys → a handful of
        distinct headers), so the common case skips decoding. Keys are still looked up per code."""
        header = json_object(b64url_decode(segment))
        if "crit" in header:
            raise Malformed("no header extensions are understood")
        alg = header.get("alg")
        if type(alg) is not str:
            raise Malformed("header alg missing")
        if alg not in self.algorithms:
            raise BadSignature(f"algorithm {alg[:16]!r} is not accepted")
        typ = header.get("typ")
        if typ != CODE_TYPE:
            raise WrongType(typ)
        kid = header.get("kid")
        if type(kid) is not str:
            raise Malformed("header kid missing")
        if len(self._headers) >= _HEADER_CACHE_SIZE:
            self._headers.clear()
        self._headers[segment] = (alg, kid)
        return alg, kid

    def _claims(self, payload: Mapping[str, Any], kid: str) -> tuple[CodeClaims, int]:
        """The typed claims and the time they are valid from (``iat``, or a later ``nbf``)."""
        get = payload.get
        iss, sub, iat, exp, jti, ent = get("iss"), get("sub"), get("iat"), get("exp"), get("jti"), get("ent")
        if type(iat) is not int or type(exp) is not int or not 0 <= iat < exp <= MAX_NUMERIC_DATE:
            raise Malformed("claims iat and exp must be integer times, iat before exp")
        if type(iss) is not str:
            raise Malformed("claim iss must be a string")
        if iss != self.issuer:
            raise WrongType(iss=iss)
        if type(sub) is not str or not 0 < len(sub) <= MAX_SUB_CHARS:
            raise Malformed("claim sub must be a short string")
        if (type(jti) is not str or not MIN_JTI_CHARS <= len(jti) <= MAX_JTI_CHARS
                or jti.strip(B64URL_ALPHABET)):
            raise Malformed("claim jti must be 12..64 base64url characters")
        names = entitlement_names(ent)  # one string of known letters → the names, sorted
        if exp - iat > self.max_ttl:
            raise Malformed("code lifetime exceeds max_ttl")
        valid_from = max(iat, _numeric_date(payload, "nbf")) if "nbf" in payload else iat
        return new_claims(iss, sub, iat, exp, jti, names, kid), valid_from

    # -- steps 6–7: time and trust -------------------------------------------------------------
    def _current_and_trusted(self, claims: CodeClaims, valid_from: int) -> CodeClaims:
        now = self.clock()
        leeway = self.leeway
        if now > claims.exp + leeway:
            raise Expired(claims.exp, now)
        if valid_from > now + leeway:
            raise NotYetValid(valid_from, now)
        trust = self.trust
        if trust.is_suspended(claims.sub):
            raise Suspended(claims.sub)
        if trust.is_code_revoked(claims.iss, claims.jti):
            raise Revoked(claims.iss, claims.jti)
        revoked = trust.revoked_entitlements(claims.sub, claims.iat)
        if revoked:
            return replace(claims, ent=tuple(e for e in claims.ent if e not in revoked))
        return claims
