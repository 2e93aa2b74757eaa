"""The RFC 9162 Merkle tree: known answers from transparency-dev/merkle (tests/audit/data), proofs
checked against the RFC's recursive definitions for every size up to 64, and tampering caught."""
from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.audit.merkle import (EMPTY_ROOT, MemoryNodeStore, MerkleTree, ProofError, leaf_hash,
                              merkle_tree_hash, node_hash, verify_consistency, verify_inclusion)

VECTORS: dict[str, Any] = json.loads((Path(__file__).parent / "data" / "merkle_vectors.json").read_text())
LEAVES = [bytes.fromhex(h) for h in VECTORS["leaves"]]
ROOTS = [bytes.fromhex(h) for h in VECTORS["roots"]]
# Where we are deliberately stricter than the source: its roots here are 12-byte placeholders
# ("don't care 2"), and we refuse any hash that is not 32 bytes.
STRICTER = {"testdata/consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"}
MAX = 64
BIG = [b"record batch %d" % i for i in range(MAX)]


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")  # Go writes a nil slice as null


def _hashes(values: list[str] | None) -> list[bytes]:
    return [_b64(v) for v in values or []]


@pytest.fixture(scope="module")
def big_tree() -> MerkleTree:
    tree = MerkleTree()
    for leaf in BIG:
        tree.append(leaf)
    return tree


# -- the RFC's recursive definitions, written out as the reference ---------------------------

def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n])."""
    n = len(leaves)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return _path(m, leaves[:k]) + [merkle_tree_hash(leaves[k:])]
    return _path(m - k, leaves[k:]) + [merkle_tree_hash(leaves[:k])]


def _subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    """RFC 9162 §2.1.4.1 SUBPROOF(m, D[n], b)."""
    n = len(leaves)
    if m == n:
        return [] if whole else [merkle_tree_hash(leaves)]
    k = _k(n)
    if m <= k:
        return _subproof(m, leaves[:k], whole) + [merkle_tree_hash(leaves[k:])]
    return _subproof(m - k, leaves[k:], False) + [merkle_tree_hash(leaves[:k])]


# -- known answers ------------------------------------------------------------------------------

@pytest.mark.parametrize("vector", VECTORS["hashes"], ids=lambda v: v["desc"])
def test_leaf_node_and_empty_hashes_match_rfc6962_answers(vector: dict[str, Any]) -> None:
    if vector["kind"] == "empty":
        got = EMPTY_ROOT
    elif vector["kind"] == "leaf":
        got = leaf_hash(vector["input_ascii"].encode())
    else:
        got = node_hash(vector["left_ascii"].encode(), vector["right_ascii"].encode())
    assert got.hex() == vector["want"]


def test_roots_of_every_prefix_of_the_eight_reference_leaves_match() -> None:
    tree = MerkleTree()
    assert tree.root() == ROOTS[0]
    for size, leaf in enumerate(LEAVES, start=1):
        tree.append(leaf)
        assert tree.root() == ROOTS[size] == merkle_tree_hash(LEAVES[:size])
    assert [tree.root(size) for size in range(9)] == ROOTS


def test_store_holds_exactly_the_reference_complete_subtrees() -> None:
    store = MemoryNodeStore()
    tree = MerkleTree(store)
    for leaf in LEAVES:
        tree.append(leaf)
    for level, hashes in enumerate(VECTORS["node_hashes"]):
        assert [store.get(level, i).hex() for i in range(len(hashes))] == hashes
        with pytest.raises(KeyError):
            store.get(level, len(hashes))


@pytest.mark.parametrize("probe", VECTORS["inclusion"], ids=lambda p: p["file"])
def test_reference_inclusion_probes(probe: dict[str, Any]) -> None:
    args = (_b64(probe["leafHash"]), probe["leafIdx"], probe["treeSize"],
            _hashes(probe["proof"]), _b64(probe["root"]))
    if probe["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("probe", VECTORS["consistency"], ids=lambda p: p["file"])
def test_reference_consistency_probes(probe: dict[str, Any]) -> None:
    args = (probe["size1"], probe["size2"], _hashes(probe["proof"]),
            _b64(probe["root1"]), _b64(probe["root2"]))
    if probe["wantErr"] or probe["file"] in STRICTER:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def test_generated_proofs_equal_the_reference_happy_paths() -> None:
    tree = MerkleTree()
    for leaf in LEAVES:
        tree.append(leaf)
    checked = 0
    for probe in VECTORS["inclusion"]:
        if probe["desc"] == "happy path" and _b64(probe["root"]) == ROOTS[probe["treeSize"]]:
            assert tree.inclusion_proof(probe["leafIdx"], probe["treeSize"]) == _hashes(probe["proof"])
            checked += 1
    for probe in VECTORS["consistency"]:
        if probe["desc"] == "happy path" and probe["size1"] > 0:
            assert tree.consistency_proof(probe["size1"], probe["size2"]) == _hashes(probe["proof"])
            checked += 1
    assert checked == 10  # five inclusion and five consistency vectors


# -- every proof for every size up to 64 --------------------------------------------------------

def test_every_inclusion_proof_for_sizes_1_to_64_is_the_rfc_path_and_verifies(big_tree: MerkleTree) -> None:
    for size in range(1, MAX + 1):
        root = big_tree.root(size)
        assert root == merkle_tree_hash(BIG[:size])
        for index in range(size):
            proof = big_tree.inclusion_proof(index, size)
            assert proof == _path(index, BIG[:size])
            verify_inclusion(leaf_hash(BIG[index]), index, size, proof, root)


def test_every_consistency_proof_for_sizes_up_to_64_is_the_rfc_proof_and_verifies(big_tree: MerkleTree) -> None:
    for new in range(1, MAX + 1):
        for old in range(1, new + 1):
            proof = big_tree.consistency_proof(old, new)
            assert proof == _subproof(old, BIG[:new], True)
            verify_consistency(old, new, proof, big_tree.root(old), big_tree.root(new))


def _flip(data: bytes, bit: int) -> bytes:
    return data[:bit // 8] + bytes([data[bit // 8] ^ (1 << bit % 8)]) + data[bit // 8 + 1:]


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_inclusion_fails_after_any_single_bit_flip(big_tree: MerkleTree, data: st.DataObject) -> None:
    size = data.draw(st.integers(1, MAX))
    index = data.draw(st.integers(0, size - 1))
    parts = [leaf_hash(BIG[index]), big_tree.root(size), *big_tree.inclusion_proof(index, size)]
    which = data.draw(st.integers(0, len(parts) - 1))
    parts[which] = _flip(parts[which], data.draw(st.integers(0, 255)))
    with pytest.raises(ProofError):
        verify_inclusion(parts[0], index, size, parts[2:], parts[1])


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_inclusion_proof_does_not_pass_for_another_index_or_another_head(big_tree: MerkleTree,
                                                                         data: st.DataObject) -> None:
    size = data.draw(st.integers(1, MAX))
    index = data.draw(st.integers(0, size - 1))
    proof, digest = big_tree.inclusion_proof(index, size), leaf_hash(BIG[index])
    other_index = data.draw(st.integers(0, MAX).filter(lambda i: i != index))
    with pytest.raises(ProofError):
        verify_inclusion(digest, other_index, size, proof, big_tree.root(size))
    other_size = data.draw(st.integers(index + 1, MAX).filter(lambda n: n != size))
    with pytest.raises(ProofError):  # a real head of another size
        verify_inclusion(digest, index, other_size, proof, big_tree.root(other_size))
    with pytest.raises(ProofError):
        verify_inclusion(digest, index, size, proof[:-1] if proof else [digest], big_tree.root(size))


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_consistency_fails_after_any_single_bit_flip(big_tree: MerkleTree, data: st.DataObject) -> None:
    new = data.draw(st.integers(2, MAX))
    old = data.draw(st.integers(1, new - 1))
    parts = [big_tree.root(old), big_tree.root(new), *big_tree.consistency_proof(old, new)]
    which = data.draw(st.integers(0, len(parts) - 1))
    parts[which] = _flip(parts[which], data.draw(st.integers(0, 255)))
    with pytest.raises(ProofError):
        verify_consistency(old, new, parts[2:], parts[0], parts[1])


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_consistency_proof_does_not_pass_for_other_sizes(big_tree: MerkleTree, data: st.DataObject) -> None:
    new = data.draw(st.integers(2, MAX))
    old = data.draw(st.integers(1, new - 1))
    proof = big_tree.consistency_proof(old, new)
    other_old = data.draw(st.integers(1, new).filter(lambda m: m != old))
    with pytest.raises(ProofError):
        verify_consistency(other_old, new, proof, big_tree.root(other_old), big_tree.root(new))
    other_new = data.draw(st.integers(old, MAX).filter(lambda n: n != new))
    with pytest.raises(ProofError):
        verify_consistency(old, other_new, proof, big_tree.root(old), big_tree.root(other_new))


# -- tampering and storage ----------------------------------------------------------------------

def test_a_tampered_leaf_changes_the_root_and_fails_its_inclusion_proof(big_tree: MerkleTree) -> None:
    size, index = 37, 21
    honest_root = big_tree.root(size)
    tampered = list(BIG[:size])
    tampered[index] = b"record batch 21, edited"
    rebuilt = MerkleTree()
    for leaf in tampered:
        rebuilt.append(leaf)
    assert rebuilt.root() != honest_root
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(tampered[index]), index, size, big_tree.inclusion_proof(index, size), honest_root)
    with pytest.raises(ProofError):  # nor can the tampered tree prove the old head grew into it
        verify_consistency(size, size, [], honest_root, rebuilt.root())


class CountingStore(MemoryNodeStore):
    def __init__(self) -> None:
        super().__init__()
        self.gets = 0
        self.appended: list[int] = []

    def get(self, level: int, index: int) -> bytes:
        self.gets += 1
        return super().get(level, index)

    def append(self, nodes: Any) -> None:
        self.appended.append(len(nodes))
        super().append(nodes)


def test_appends_read_nothing_and_write_only_the_subtrees_they_complete() -> None:
    store = CountingStore()
    tree = MerkleTree(store)
    for i in range(1000):
        assert tree.append(b"%d" % i) == i
    assert store.gets == 0
    # leaf i completes one subtree per trailing one bit of i, plus the leaf itself
    assert store.appended == [1 + (i ^ (i + 1)).bit_length() - 1 for i in range(1000)]


def test_proofs_read_a_logarithmic_number_of_stored_nodes() -> None:
    store = CountingStore()
    tree = MerkleTree(store)
    for i in range(1000):
        tree.append(b"%d" % i)
    for size in (1, 2, 3, 511, 512, 513, 999, 1000):
        bound = 2 * size.bit_length()
        for index in {0, size // 3, size - 1}:
            store.gets = 0
            tree.inclusion_proof(index, size)
            assert store.gets <= bound
        for old in {1, size // 2 or 1, size}:
            store.gets = 0
            tree.consistency_proof(old, size)
            assert store.gets <= bound


def test_a_tree_reopened_on_its_store_continues_where_it_stopped(big_tree: MerkleTree) -> None:
    store = MemoryNodeStore()
    tree = MerkleTree(store)
    for i, leaf in enumerate(BIG):
        tree = MerkleTree(store)  # as a restarted writer would
        assert tree.size == i
        tree.append(leaf)
    assert tree.root() == big_tree.root()
    assert tree.inclusion_proof(40, 50) == big_tree.inclusion_proof(40, 50)


def test_proofs_are_refused_outside_the_tree(big_tree: MerkleTree) -> None:
    with pytest.raises(ValueError):
        big_tree.root(MAX + 1)
    with pytest.raises(ValueError):
        big_tree.inclusion_proof(5, 5)
    with pytest.raises(ValueError):
        big_tree.consistency_proof(0, 5)
    with pytest.raises(ValueError):
        big_tree.consistency_proof(6, 5)
    with pytest.raises(ProofError):
        big_tree.append_hash(b"short")


def test_a_store_refuses_an_append_with_the_wrong_number_of_completed_subtrees() -> None:
    store = MemoryNodeStore()
    store.append([leaf_hash(b"a")])
    with pytest.raises(ValueError):
        store.append([leaf_hash(b"b")])  # leaf 1 completes the level-1 subtree too
    with pytest.raises(ValueError):
        store.append([leaf_hash(b"b"), leaf_hash(b"c"), leaf_hash(b"d")])  # no level-2 subtree yet
    assert store.size() == 1
