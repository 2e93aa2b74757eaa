"""Signed tree heads: the documented bytes, verification with nothing but the published JWKS, and
forks caught between two heads."""
from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from jwt import PyJWK
from jwt.algorithms import get_default_algorithms

from app.audit.merkle import EMPTY_ROOT, MerkleTree
from app.audit.tree_head import (BadSignature, ForkedHeads, MalformedTreeHead, SignedTreeHead, UnknownKey,
                                 check_consistency, sign_tree_head, signed_bytes, verify, verify_with_jwks)
from app.codes.jwks import JWKSError
from app.signing import signatures
from app.signing.keyring import KeyRing, KeyStore

NOW = 1767225600.1239  # 2026-01-01T00:00:00.1239Z
ROOT_8 = bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")  # RFC 6962 vectors


def _ring(directory: Path, algorithm: str) -> KeyRing:
    store = KeyStore(directory)
    store.generate(algorithm)
    return store.load()


@pytest.fixture(params=["ES256", "EdDSA"])
def ring(request: pytest.FixtureRequest, tmp_path: Path) -> KeyRing:
    return _ring(tmp_path / "keys", request.param)


def _published(ring: KeyRing) -> dict[str, Any]:
    """What /.well-known/jwks.json carries."""
    return json.loads(json.dumps(ring.jwks()))


def _tree(leaves: list[bytes]) -> MerkleTree:
    tree = MerkleTree()
    for leaf in leaves:
        tree.append(leaf)
    return tree


def _head(ring: KeyRing, tree: MerkleTree, size: int, now: float = NOW) -> SignedTreeHead:
    return sign_tree_head(ring, tree_size=size, root_hash=tree.root(size), now=now)


LEAVES = [b"batch %d" % i for i in range(40)]


# -- the bytes ------------------------------------------------------------------------------------

def test_signed_bytes_are_the_five_documented_lines() -> None:
    assert signed_bytes(kid="AbCd-_12", tree_size=8, root_hash=ROOT_8, timestamp=1767225600123) == (
        b"citycode-audit-tree-head/v1\n"
        b"AbCd-_12\n"
        b"8\n"
        b"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328\n"
        b"1767225600123\n")


@pytest.mark.parametrize("fields", [
    {"kid": ""}, {"kid": "a\nb"}, {"kid": "k" * 65}, {"tree_size": -1}, {"tree_size": 2**64},
    {"tree_size": True}, {"timestamp": 2**63}, {"timestamp": 1.5}, {"root_hash": b"\x00" * 31}])
def test_signed_bytes_refuse_fields_out_of_range(fields: dict[str, Any]) -> None:
    with pytest.raises(MalformedTreeHead):
        signed_bytes(**{"kid": "AbCd1234", "tree_size": 8, "root_hash": ROOT_8, "timestamp": 0, **fields})


def test_a_head_is_signed_by_the_current_key_with_the_injected_time_in_milliseconds(ring: KeyRing) -> None:
    head = _head(ring, _tree(LEAVES), 40)
    assert (head.kid, head.tree_size, head.timestamp) == (ring.current_kid, 40, 1767225600123)
    assert head.root_hash == _tree(LEAVES).root()


def test_anyone_can_check_a_head_with_the_jwks_and_the_documented_bytes(ring: KeyRing) -> None:
    """No CityCode code on the verifying side: PyJWT's JWK parsing and JWA verify, bytes rebuilt by hand."""
    published = _head(ring, _tree(LEAVES), 40).to_dict()
    jwk = next(k for k in _published(ring)["keys"] if k["kid"] == published["kid"])
    message = ("citycode-audit-tree-head/v1\n%s\n%d\n%s\n%d\n" % (
        published["kid"], published["tree_size"], published["root_hash"], published["timestamp"])).encode()
    signature = base64.urlsafe_b64decode(published["signature"] + "=" * (-len(published["signature"]) % 4))
    assert get_default_algorithms()[jwk["alg"]].verify(message, PyJWK(jwk).key, signature)


# -- verification ---------------------------------------------------------------------------------

def test_a_head_verifies_against_the_published_jwks_after_a_json_round_trip(ring: KeyRing) -> None:
    head = _head(ring, _tree(LEAVES), 40)
    parsed = SignedTreeHead.from_dict(json.loads(json.dumps(head.to_dict())))
    assert parsed == head
    verify_with_jwks(parsed, _published(ring))
    verify(parsed, ring.verification_keys)


@pytest.mark.parametrize("change", [
    {"tree_size": 39}, {"tree_size": 41}, {"timestamp": 1767225600124},
    {"root_hash": bytes.fromhex("00" * 32)}])
def test_an_altered_head_fails(ring: KeyRing, change: dict[str, Any]) -> None:
    head = replace(_head(ring, _tree(LEAVES), 40), **change)
    with pytest.raises(BadSignature):
        verify_with_jwks(head, _published(ring))


@pytest.mark.parametrize("bit", [0, 7, 255, 511])
def test_a_head_with_a_flipped_signature_bit_fails(ring: KeyRing, bit: int) -> None:
    head = _head(ring, _tree(LEAVES), 40)
    signature = bytearray(head.signature)
    signature[bit // 8] ^= 1 << bit % 8
    with pytest.raises(BadSignature):
        verify_with_jwks(replace(head, signature=bytes(signature)), _published(ring))


def test_a_head_claiming_another_published_key_fails(ring: KeyRing) -> None:
    head = _head(ring, _tree(LEAVES), 40)
    other = next(kid for kid in ring.published_kids if kid != ring.current_kid)  # the next key
    with pytest.raises(BadSignature):
        verify_with_jwks(replace(head, kid=other), _published(ring))


def test_a_head_signed_by_an_unknown_key_fails(ring: KeyRing, tmp_path: Path) -> None:
    stranger = _ring(tmp_path / "stranger", ring.current.algorithm)
    head = _head(stranger, _tree(LEAVES), 40)
    verify_with_jwks(head, _published(stranger))
    with pytest.raises(UnknownKey):
        verify_with_jwks(head, _published(ring))
    # nor may it borrow one of our kids
    with pytest.raises(BadSignature):
        verify_with_jwks(replace(head, kid=ring.current_kid), _published(ring))


def test_the_jwks_algorithm_decides_not_the_key_type_the_head_hopes_for(tmp_path: Path) -> None:
    ring = _ring(tmp_path / "keys", "ES256")
    head = _head(ring, _tree(LEAVES), 40)
    keys = {kid: ("EdDSA", key) for kid, (_, key) in ring.verification_keys.items()}
    with pytest.raises(BadSignature):
        verify(head, keys)


def test_a_jwks_carrying_private_key_material_is_refused(ring: KeyRing) -> None:
    published = _published(ring)
    published["keys"][0]["d"] = "AAAA"
    with pytest.raises(JWKSError):
        verify_with_jwks(_head(ring, _tree(LEAVES), 40), published)


@pytest.mark.parametrize("change", [
    {"tree_size": "40"}, {"tree_size": True}, {"root_hash": "5DC9" + "0" * 60}, {"root_hash": "00"},
    {"timestamp": 1.0}, {"kid": ""}, {"kid": 7}, {"signature": "AAAA="}, {"signature": "AAAA"},
    {"extra": 1}])
def test_from_dict_refuses_malformed_heads(ring: KeyRing, change: dict[str, Any]) -> None:
    with pytest.raises(MalformedTreeHead):
        SignedTreeHead.from_dict({**_head(ring, _tree(LEAVES), 40).to_dict(), **change})


def test_from_dict_refuses_a_missing_field(ring: KeyRing) -> None:
    data = _head(ring, _tree(LEAVES), 40).to_dict()
    del data["timestamp"]
    with pytest.raises(MalformedTreeHead):
        SignedTreeHead.from_dict(data)


# -- consistency between two heads -------------------------------------------------------------

def test_heads_of_a_growing_log_are_consistent(ring: KeyRing) -> None:
    tree = _tree(LEAVES)
    for old, new in [(1, 40), (13, 40), (16, 32), (40, 40), (0, 7)]:
        older, newer = _head(ring, tree, old), _head(ring, tree, new, now=NOW + 60)
        proof = tree.consistency_proof(old, new) if old else []
        check_consistency(older, newer, proof)


def test_two_heads_of_one_size_with_different_roots_are_a_fork(ring: KeyRing) -> None:
    honest, forked = _tree(LEAVES), _tree(LEAVES[:20] + [b"rewritten"] + LEAVES[21:])
    with pytest.raises(ForkedHeads):
        check_consistency(_head(ring, honest, 40), _head(ring, forked, 40), [])


def test_a_consistency_proof_that_does_not_link_the_heads_is_a_fork(ring: KeyRing) -> None:
    honest, forked = _tree(LEAVES), _tree(LEAVES[:20] + [b"rewritten"] + LEAVES[21:])
    older = _head(ring, honest, 25)  # a citizen kept this head, which includes the original leaf 20
    newer = _head(ring, forked, 40)
    for proof in (forked.consistency_proof(25, 40), honest.consistency_proof(25, 40)):
        with pytest.raises(ForkedHeads):
            check_consistency(older, newer, proof)
    check_consistency(_head(ring, forked, 20), newer, forked.consistency_proof(20, 40))  # before the edit


def test_a_log_that_shrank_is_a_fork(ring: KeyRing) -> None:
    tree = _tree(LEAVES)
    with pytest.raises(ForkedHeads):
        check_consistency(_head(ring, tree, 30), _head(ring, tree, 20), tree.consistency_proof(20, 30))


def test_an_empty_head_must_carry_the_empty_root(ring: KeyRing) -> None:
    tree = _tree(LEAVES)
    empty = sign_tree_head(ring, tree_size=0, root_hash=EMPTY_ROOT, now=NOW)
    check_consistency(empty, _head(ring, tree, 5), [])
    lying = sign_tree_head(ring, tree_size=0, root_hash=tree.root(1), now=NOW)
    with pytest.raises(ForkedHeads):
        check_consistency(lying, _head(ring, tree, 5), [])


# -- the raw signing helper -------------------------------------------------------------------------

def test_raw_signatures_are_64_bytes_and_bound_to_message_algorithm_and_key(ring: KeyRing, tmp_path: Path) -> None:
    algorithm, public = ring.verification_keys[ring.current_kid]
    signature = signatures.sign(ring.signing_key, b"message")
    assert len(signature) == 64
    assert signatures.is_valid(algorithm, public, signature, b"message")
    assert not signatures.is_valid(algorithm, public, signature, b"messagE")
    assert not signatures.is_valid(algorithm, public, signature[:63], b"message")
    assert not signatures.is_valid("HS256", public, signature, b"message")
    stranger = _ring(tmp_path / "stranger", algorithm)
    assert not signatures.is_valid(algorithm, stranger.current.public_key, signature, b"message")
