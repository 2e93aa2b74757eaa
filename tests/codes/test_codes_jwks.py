"""keys_from_jwks: the published set round-trips; private, odd and inconsistent keys are refused."""
from __future__ import annotations

import copy
from typing import Any, Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from app.codes.jwks import JWKSError, keys_from_jwks
from app.codes.mint import MintedCode
from app.codes.verify import Verifier
from app.codes.wire import b64url_encode
from app.signing.keyring import KeyRing


def test_published_set_round_trips(ring: KeyRing, ed_ring: KeyRing) -> None:
    for source in (ring, ed_ring):
        keys = keys_from_jwks(source.jwks())
        assert set(keys) == set(source.verification_keys)
        for kid, (alg, public_key) in keys.items():
            expected_alg, expected_key = source.verification_keys[kid]
            assert alg == expected_alg
            assert public_key == expected_key


def test_codes_verify_with_keys_from_the_published_set_only(
        make_verifier: Callable[..., Verifier], ring: KeyRing, ed_ring: KeyRing,
        issue: Callable[..., MintedCode]) -> None:
    doc = {"keys": ring.jwks()["keys"] + ed_ring.jwks()["keys"]}
    keys = keys_from_jwks(doc)
    verifier = make_verifier(keys=lambda: keys)
    assert verifier.verify(issue().code).decision == "accept"
    assert verifier.verify(issue(ed_ring).code).decision == "accept"


def _with(ring: KeyRing, **changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(ring.jwks())
    doc["keys"][0].update(changes)
    return doc


def _drop(ring: KeyRing, member: str) -> dict[str, Any]:
    doc = copy.deepcopy(ring.jwks())
    del doc["keys"][0][member]
    return doc


def _private_d(ring: KeyRing) -> str:
    assert isinstance(ring.signing_key, ec.EllipticCurvePrivateKey)
    return b64url_encode(ring.signing_key.private_numbers().private_value.to_bytes(32, "big")).decode()


@pytest.mark.parametrize("mutate", [
    pytest.param(lambda r: _with(r, d=_private_d(r)), id="private d"),
    pytest.param(lambda r: _with(r, k="c2VjcmV0"), id="symmetric k"),
    pytest.param(lambda r: _with(r, p="AA", q="AA"), id="RSA private primes"),
    pytest.param(lambda r: _with(r, crv="P-384"), id="ES256 on P-384"),
    pytest.param(lambda r: _with(r, kty="OKP"), id="ES256 with kty OKP"),
    pytest.param(lambda r: _with(r, x=r.jwks()["keys"][0]["x"][:-2]), id="x too short"),
    pytest.param(lambda r: _with(r, y=r.jwks()["keys"][0]["y"] + "AA"), id="y too long"),
    pytest.param(lambda r: _with(r, x=r.jwks()["keys"][0]["x"] + "="), id="x padded"),
    pytest.param(lambda r: _with(r, x=1), id="x a number"),
    pytest.param(lambda r: _with(r, y="A" * 43), id="point not on the curve"),
    pytest.param(lambda r: _drop(r, "y"), id="y missing"),
    pytest.param(lambda r: _drop(r, "kid"), id="kid missing"),
    pytest.param(lambda r: _with(r, kid=""), id="kid empty"),
    pytest.param(lambda r: _with(r, kid=7), id="kid a number"),
    pytest.param(lambda r: {"keys": r.jwks()["keys"] + r.jwks()["keys"][:1]}, id="kid twice"),
    pytest.param(lambda r: {"keys": "nope"}, id="keys not a list"),
    pytest.param(lambda r: {}, id="no keys member"),
    pytest.param(lambda r: ["keys"], id="not an object"),
    pytest.param(lambda r: {"keys": ["x"]}, id="a key that is not an object"),
])
def test_untrustworthy_sets_are_rejected_whole(ring: KeyRing, mutate: Callable[[KeyRing], Any]) -> None:
    with pytest.raises(JWKSError):
        keys_from_jwks(mutate(ring))


def test_eddsa_key_with_wrong_length_is_rejected(ed_ring: KeyRing) -> None:
    doc = copy.deepcopy(ed_ring.jwks())
    doc["keys"][0]["x"] = doc["keys"][0]["x"][:-4]
    with pytest.raises(JWKSError):
        keys_from_jwks(doc)


@pytest.mark.parametrize("changes", [
    {"alg": "RS256"}, {"alg": "ES384"}, {"alg": "HS256"}, {"alg": "none"}, {"use": "enc"},
    {"key_ops": ["encrypt"]}, {"key_ops": "verify"},
])
def test_keys_for_other_uses_or_algorithms_are_skipped(ring: KeyRing, changes: dict[str, Any]) -> None:
    doc = _with(ring, **changes)
    skipped = doc["keys"][0]["kid"]
    keys = keys_from_jwks(doc)
    assert skipped not in keys and len(keys) == len(doc["keys"]) - 1


def test_key_without_alg_is_skipped_never_guessed(ring: KeyRing) -> None:
    doc = _drop(ring, "alg")
    assert doc["keys"][0]["kid"] not in keys_from_jwks(doc)


def test_foreign_key_types_are_skipped(ring: KeyRing) -> None:
    rsa = {"kty": "RSA", "kid": "rsa1", "alg": "RS256", "use": "sig", "n": "AQAB", "e": "AQAB"}
    doc = {"keys": ring.jwks()["keys"] + [rsa]}
    assert "rsa1" not in keys_from_jwks(doc)


def test_key_ops_with_verify_is_used(ring: KeyRing) -> None:
    doc = _with(ring, key_ops=["verify"])
    assert doc["keys"][0]["kid"] in keys_from_jwks(doc)
