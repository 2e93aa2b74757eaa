"""Constants and helpers shared by the codes tests (a uniquely named module: ``conftest`` is not
importable unambiguously when the whole suite runs)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import get_default_algorithms

from app.codes.wire import b64url_encode
from app.signing.keyring import KeyRing, KeyStore

ISSUER = "cc"
SUBJECT = "p_7Hq2LmX9vKc4Rt"
ENTITLEMENTS = ("stu", "sen", "sap")
"""Entitlement names (``app.registry.entitlements``) the test codes carry."""
ENT_WIRE = "eps"
"""``ENTITLEMENTS`` as the ``ent`` claim: one letter each (sen e, sap p, stu s), sorted."""
ENT_NAMES = ("sap", "sen", "stu")
"""``ENTITLEMENTS`` as a verifier gives them back: names, sorted."""
TTL = 60
MAX_TTL = 120
LEEWAY = 5
T0 = 1_800_000_000  # 2027-01-15, a fixed "now"


class FrozenClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = T0) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def load_ring(folder: Path, algorithm: str) -> KeyRing:
    store = KeyStore(folder)
    store.generate(algorithm)
    return store.load()


DROP = object()
"""Pass as a value to ``Forge.header``/``Forge.claims`` to leave that member out."""


@dataclass
class Forge:
    """Builds compact JWS strings from raw parts, signed with any key."""

    ring: KeyRing

    @staticmethod
    def encode(value: Any) -> bytes:
        if isinstance(value, bytes):
            return value
        return json.dumps(value, separators=(",", ":")).encode()

    def header(self, **changes: Any) -> dict[str, Any]:
        header: dict[str, Any] = {"alg": self.ring.current.algorithm, "kid": self.ring.current_kid,
                                  "typ": "cc"}
        header.update(changes)
        return {k: v for k, v in header.items() if v is not DROP}

    def claims(self, now: float, **changes: Any) -> dict[str, Any]:
        iat = int(now)
        claims: dict[str, Any] = {"iss": ISSUER, "sub": SUBJECT, "iat": iat, "exp": iat + TTL,
                                  "jti": "forgedJti0123", "ent": ENT_WIRE}
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not DROP}

    def sign(self, header: Any, payload: Any, key: Any = None, algorithm: str | None = None) -> str:
        """Sign ``header``/``payload`` (dicts, or raw JSON bytes) with ``key`` (default: the ring's
        current private key), as the algorithm named (default: the ring's)."""
        key = self.ring.signing_key if key is None else key
        if algorithm is None:
            algorithm = "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "EdDSA"
        signing_input = b64url_encode(self.encode(header)) + b"." + b64url_encode(self.encode(payload))
        signature = get_default_algorithms()[algorithm].sign(signing_input, key)
        return (signing_input + b"." + b64url_encode(signature)).decode()

    def unsigned(self, header: Any, payload: Any, signature: bytes = b"") -> str:
        return (b64url_encode(self.encode(header)) + b"." + b64url_encode(self.encode(payload))
                + b"." + b64url_encode(signature)).decode()
