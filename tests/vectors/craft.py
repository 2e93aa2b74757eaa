"""Building blocks of the vector generator: fresh key pairs, their public JWKs, and compact JWS
strings built from raw parts (so a vector can hold exactly the defect it is about).

Genuine codes are minted by the production minter (``app.codes.mint``); only the crafted ones
(wrong claims, wrong headers, forged signatures) are assembled here. Private keys live in memory
for one generator run and are never written anywhere.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import get_default_algorithms

from app.codes.mint import MintedCode, mint
from app.codes.wire import CODE_TYPE, JTI_BYTES, b64url_encode
from app.signing import keyfiles
from app.signing.keyfiles import PrivateKey
from app.signing.keyring import CURRENT, KeyRing, PublishedKey

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_SIGNERS = get_default_algorithms()

DROP = object()
"""A value for ``header``/``claims`` changes that leaves the member out."""


@dataclass(frozen=True)
class KeyPair:
    """One generated key: its production-style ``kid`` (RFC 7638 thumbprint), algorithm, keys."""

    kid: str
    algorithm: str
    private: PrivateKey

    @classmethod
    def generate(cls, algorithm: str) -> KeyPair:
        private = keyfiles.generate(algorithm)
        return cls(keyfiles.thumbprint_kid(private.public_key()), algorithm, private)

    def jwk(self) -> dict[str, str]:
        """The public JWK exactly as ``/.well-known/jwks.json`` publishes it."""
        return {**keyfiles.public_jwk(self.private.public_key()), "kid": self.kid,
                "alg": self.algorithm, "use": "sig"}

    def ring(self) -> KeyRing:
        """A one-key in-memory ring, so the production ``mint`` can sign with this key."""
        published = PublishedKey(self.kid, self.algorithm, CURRENT, self.private.public_key(), 0)
        return KeyRing(self.kid, self.private, (published,))


def b64(raw: bytes) -> str:
    return b64url_encode(raw).decode("ascii")


def encode(value: Any) -> bytes:
    """Compact JSON for dicts; raw bytes pass through (for deliberately broken JSON)."""
    if isinstance(value, bytes):
        return value
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def new_jti() -> str:
    """A fresh production-size jti (72 random bits, 12 base64url characters)."""
    return secrets.token_urlsafe(JTI_BYTES)


def header(key: KeyPair, **changes: Any) -> dict[str, Any]:
    """The production header for ``key`` with ``changes`` applied (``DROP`` removes a member)."""
    base: dict[str, Any] = {"alg": key.algorithm, "kid": key.kid, "typ": CODE_TYPE}
    base.update(changes)
    return {name: value for name, value in base.items() if value is not DROP}


def signing_input(head: Any, payload: Any) -> str:
    return f"{b64(encode(head))}.{b64(encode(payload))}"


def sign(head: Any, payload: Any, key: PrivateKey, algorithm: str | None = None) -> str:
    """A compact JWS over ``head``/``payload`` signed by ``key`` as ``algorithm`` (default: the
    key's own), whatever the header claims."""
    if algorithm is None:
        algorithm = "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "EdDSA"
    message = signing_input(head, payload)
    return f"{message}.{b64(_SIGNERS[algorithm].sign(message.encode('ascii'), key))}"


def hmac_sign(head: Any, payload: Any, secret: bytes) -> str:
    """An HS256 "signature" keyed with ``secret`` (the classic public-key-as-HMAC-secret attack)."""
    message = signing_input(head, payload)
    return f"{message}.{b64(hmac.new(secret, message.encode('ascii'), hashlib.sha256).digest())}"


def unsigned(head: Any, payload: Any, signature: bytes = b"") -> str:
    return f"{signing_input(head, payload)}.{b64(signature)}"


def minted(key: KeyPair, *, issuer: str, subject: str, entitlements: tuple[str, ...], ttl: int,
           now: float) -> MintedCode:
    """A genuine code from the production minter, signed by ``key``."""
    return mint(key.ring(), issuer=issuer, subject=subject, entitlements=entitlements,
                ttl_seconds=ttl, now=now)


def parts(code: str) -> list[str]:
    return code.split(".")


def decode_segment(segment: str) -> bytes:
    """Lenient base64url decoding, for the generator's own (well-formed) codes."""
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def replace_payload(code: str, payload: Any) -> str:
    """``code`` with its payload swapped and its signature kept (a tampered code)."""
    head, _, signature = parts(code)
    return f"{head}.{b64(encode(payload))}.{signature}"


def with_signature(code: str, signature: bytes) -> str:
    head, payload, _ = parts(code)
    return f"{head}.{payload}.{b64(signature)}"


def s_forms(code: str) -> tuple[str, str]:
    """The low-S and high-S forms of an ES256 code: ``(r, s)`` and ``(r, n - s)`` both verify."""
    raw = decode_segment(parts(code)[2])
    s = int.from_bytes(raw[32:], "big")
    low, high = sorted((s, P256_ORDER - s))
    return (with_signature(code, raw[:32] + low.to_bytes(32, "big")),
            with_signature(code, raw[:32] + high.to_bytes(32, "big")))
