"""Minting codes: a compact JWS with header ``alg``/``kid``/``typ`` and six short claims.

Size matters: the string must fit a QR code of version ≤ 12 at error correction M (287 bytes).
Fixed costs are 146 characters (58 header, 86 signature, 2 dots); the payload's fixed part
(member names, two 10-digit times, a 12-character jti, the quotes of ``ent``) is 83 bytes, so
105 - 83 = 22 bytes are left for ``iss`` + ``sub`` + one byte per entitlement letter (see
``app.codes.wire.ENTITLEMENT_LETTERS``): "cc" + an 11-character pseudonym + 5 letters fit.
See ``code_length``.
"""
from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Iterable

from jwt.algorithms import get_default_algorithms

from app.codes.wire import (CODE_TYPE, JTI_BYTES, MAX_SUB_CHARS, SUPPORTED_ALGORITHMS,
                            b64url_encode, compact_json, entitlement_letters)
from app.signing.keyring import KeyRing

__all__ = ["CODE_TYPE", "MintedCode", "mint", "code_length"]

# PyJWT's algorithm objects sign with the already-loaded key object and return raw r||s for ES256.
_SIGNERS = {name: get_default_algorithms()[name] for name in SUPPORTED_ALGORITHMS}


@dataclass(frozen=True, slots=True)
class MintedCode:
    code: str
    jti: str
    issued_at: int
    expires_at: int


def mint(ring: KeyRing, *, issuer: str, subject: str, entitlements: Iterable[str],
         ttl_seconds: int, now: float) -> MintedCode:
    """Sign a fresh code for ``subject`` with the ring's current key.

    ``entitlements`` are names (``app.registry.entitlements``: ``"sen"``, ``"hg"`` …); the code
    carries them as one string of letters (``"ent":"eg"``). Inputs the verifier would refuse —
    an unknown entitlement among them — raise ``ValueError`` here instead of producing a dead code.
    """
    _check_inputs(issuer, subject, ttl_seconds)
    ent = entitlement_letters(entitlements)
    algorithm = ring.current.algorithm
    header = {"alg": algorithm, "kid": ring.current_kid, "typ": CODE_TYPE}
    iat = math.floor(now)
    jti = secrets.token_urlsafe(JTI_BYTES)
    claims = {"iss": issuer, "sub": subject, "iat": iat, "exp": iat + ttl_seconds,
              "jti": jti, "ent": ent}
    signing_input = b64url_encode(compact_json(header)) + b"." + b64url_encode(compact_json(claims))
    signature = _SIGNERS[algorithm].sign(signing_input, ring.signing_key)
    code = (signing_input + b"." + b64url_encode(signature)).decode("ascii")
    return MintedCode(code, jti, iat, iat + ttl_seconds)


def _check_inputs(issuer: str, subject: str, ttl_seconds: int) -> None:
    if not isinstance(issuer, str) or not issuer:
        raise ValueError("issuer must be a non-empty string")
    if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUB_CHARS:
        raise ValueError(f"subject must be a string of 1..{MAX_SUB_CHARS} characters")
    if type(ttl_seconds) is not int or ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be a positive integer")


def _b64_len(n: int) -> int:
    return (4 * n + 2) // 3


def code_length(*, issuer: str, subject: str, entitlements: Iterable[str], kid_chars: int = 8,
                time_digits: int = 10) -> int:
    """The exact length of a code minted with these values (ASCII issuer/subject; entitlement
    names, duplicates counted once), without minting one: the QR budget can be checked at
    configuration time. An unknown entitlement raises ``ValueError``, as ``mint`` would."""
    header = len(compact_json({"alg": "ES256", "kid": "k" * kid_chars, "typ": CODE_TYPE}))
    t = 10 ** (time_digits - 1)
    payload = len(compact_json({"iss": issuer, "sub": subject, "iat": t, "exp": t, "jti": "j" * 12,
                                "ent": entitlement_letters(entitlements)}))
    return _b64_len(header) + 1 + _b64_len(payload) + 1 + _b64_len(64)
