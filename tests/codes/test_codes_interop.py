"""Any standard JOSE library verifies our codes from the published JWKS alone (here: joserfc)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError, SecurityWarning
from joserfc.jwk import KeySet

from app.codes.mint import CODE_TYPE, MintedCode
from app.signing.keyring import KeyRing

from codes_support import ISSUER, SUBJECT, load_ring


def test_joserfc_verifies_an_es256_code_with_only_the_jwks(issue: Callable[..., MintedCode],
                                                           ring: KeyRing) -> None:
    minted = issue()
    token = jwt.decode(minted.code, KeySet.import_key_set(ring.jwks()), algorithms=["ES256"])
    assert token.header == {"alg": "ES256", "kid": ring.current_kid, "typ": CODE_TYPE}
    assert token.claims["iss"] == ISSUER and token.claims["sub"] == SUBJECT
    assert token.claims["jti"] == minted.jti


def test_joserfc_verifies_an_eddsa_code_with_only_the_jwks(issue: Callable[..., MintedCode],
                                                           ed_ring: KeyRing) -> None:
    minted = issue(ed_ring)
    # joserfc flags the polymorphic "EdDSA" name as deprecated by RFC 9864 (use "Ed25519").
    with pytest.warns(SecurityWarning, match="EdDSA"):
        token = jwt.decode(minted.code, KeySet.import_key_set(ed_ring.jwks()), algorithms=["EdDSA"])
    assert token.claims["jti"] == minted.jti


def test_joserfc_rejects_a_code_signed_by_another_key(issue: Callable[..., MintedCode],
                                                      ring: KeyRing, tmp_path: Path) -> None:
    other = load_ring(tmp_path / "other", "ES256")
    doc = {"keys": [{**k, "kid": ring.current_kid} for k in other.jwks()["keys"][:1]]}
    with pytest.raises(BadSignatureError):
        jwt.decode(issue().code, KeySet.import_key_set(doc), algorithms=["ES256"])
