"""Turn a published JWK Set (``/.well-known/jwks.json``) into the verifier's key map, strictly.

Skipped (not ours to use, and harmless to publish): keys whose ``alg`` is missing or not one we
verify with, keys whose ``use`` is not ``sig``, keys whose ``key_ops`` omit ``verify``.
Rejected with ``JWKSError`` (the whole set — a reader keeps its previous keys instead):
a document that is not ``{"keys": [...]}``, any key carrying private members, a key whose
``alg`` is ours but whose ``kty``/``crv`` do not match it, bad or non-canonical coordinates,
a point not on the curve, a missing/empty/non-string ``kid``, and a ``kid`` listed twice.
"""
from __future__ import annotations

from typing import Any, Mapping

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from app.codes.errors import Malformed
from app.codes.wire import SUPPORTED_ALGORITHMS, b64url_decode
from app.signing.keyfiles import PublicKey

PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_SHAPES = {"ES256": ("EC", "P-256"), "EdDSA": ("OKP", "Ed25519")}


class JWKSError(ValueError):
    """The key set cannot be trusted as a whole."""


def keys_from_jwks(doc: Mapping[str, Any]) -> dict[str, tuple[str, PublicKey]]:
    """``kid → (alg, public key object)`` for every usable key in ``doc`` (see module doc)."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("keys"), list):
        raise JWKSError('a JWK Set is an object with a "keys" list')
    found: dict[str, tuple[str, PublicKey]] = {}
    for jwk in doc["keys"]:
        if not isinstance(jwk, Mapping):
            raise JWKSError("each JWK must be an object")
        if PRIVATE_MEMBERS & jwk.keys():
            raise JWKSError(f"JWK {jwk.get('kid')!r} carries private key material")
        alg = jwk.get("alg")
        if alg not in SUPPORTED_ALGORITHMS or jwk.get("use", "sig") != "sig":
            continue
        ops = jwk.get("key_ops")
        if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            raise JWKSError("every usable JWK needs a non-empty string kid")
        if kid in found:
            raise JWKSError(f"kid {kid!r} appears twice")
        found[kid] = (alg, _public_key(alg, jwk))
    return found


def _public_key(alg: str, jwk: Mapping[str, Any]) -> PublicKey:
    kty, crv = _SHAPES[alg]
    if jwk.get("kty") != kty or jwk.get("crv") != crv:
        raise JWKSError(f"JWK {jwk['kid']!r}: alg {alg} needs kty {kty} and crv {crv}")
    try:
        if alg == "ES256":
            point = b"\x04" + _coordinate(jwk, "x") + _coordinate(jwk, "y")
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        return ed25519.Ed25519PublicKey.from_public_bytes(_coordinate(jwk, "x"))
    except ValueError as exc:
        raise JWKSError(f"JWK {jwk['kid']!r}: {exc}") from None


def _coordinate(jwk: Mapping[str, Any], name: str) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str) or not value.isascii():
        raise ValueError(f"member {name} must be a base64url string")
    try:
        raw = b64url_decode(value.encode("ascii"))
    except Malformed:
        raise ValueError(f"member {name} is not canonical base64url") from None
    if len(raw) != 32:
        raise ValueError(f"member {name} must encode 32 bytes, got {len(raw)}")
    return raw
