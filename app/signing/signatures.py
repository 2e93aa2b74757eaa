"""Signing and checking raw bytes with the ring's keys, in the JOSE signature encoding.

ES256 signatures are the 64-byte ``r || s`` of RFC 7518 §3.4 (not DER), EdDSA ones the 64-byte
Ed25519 signature of RFC 8037: the same bytes a JWS carries, so anything that verifies our codes
with the JWKS can verify these too. For signed statements that are not codes (tree heads); the
message must be domain-separated by the caller so it can never be mistaken for a JWS signing input.
"""
from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from app.signing.keyfiles import PrivateKey, PublicKey

SIGNATURE_SIZE = 64
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def sign(key: PrivateKey, message: bytes) -> bytes:
    """The JOSE-encoded signature of ``message`` (ES256 for a P-256 key, EdDSA for Ed25519)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("only P-256 EC keys sign ES256")
        r, s = decode_dss_signature(key.sign(message, _ECDSA_SHA256))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    raise ValueError(f"unsupported key type {type(key).__name__}")


def is_valid(algorithm: str, key: PublicKey, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` (JOSE encoding) signs ``message`` under ``key`` with ``algorithm``.

    The algorithm is the one the JWKS registers for the key, never one the signed object names;
    a key of the wrong type for it is simply not valid.
    """
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        if algorithm == "ES256" and isinstance(key, ec.EllipticCurvePublicKey) \
                and isinstance(key.curve, ec.SECP256R1):
            der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                                       int.from_bytes(signature[32:], "big"))
            key.verify(der, message, _ECDSA_SHA256)
            return True
        if algorithm == "EdDSA" and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
            return True
    except InvalidSignature:
        return False
    return False
