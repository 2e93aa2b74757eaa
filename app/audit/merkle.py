"""The audit log's Merkle tree, exactly as RFC 9162 §2.1 (Certificate Transparency 2.0) defines it.

Hashes: a leaf is ``SHA-256(0x00 || leaf)``, an inner node ``SHA-256(0x01 || left || right)``, the
empty tree ``SHA-256("")``. The same bytes as RFC 6962, so any CT tool can check our proofs.

What a leaf is: one contiguous range of audit rows, closed by the record writer in the same SQL
transaction as the batch it writes (``app.audit.leaves`` owns the bytes: a versioned header and the
RFC 9162 root over the rows' entry hashes), so appends cost O(log n) hashes per *batch*, never a
row lock per scan. A citizen's ``GET /v1/me/history/{seq}/proof`` carries the row's entry hash,
its proof inside its leaf, the leaf's inclusion proof and the signed tree head
(``app.audit.tree_head``, ``app.audit.proofs``); anyone can recompute the root and check the
head's signature against ``GET /v1/audit/keys`` without database access. ``citycode audit
verify`` (``app.audit.auditor``) rebuilds the tree from the rows and checks every signed head and
the consistency of consecutive heads: two heads of one size with different roots, or a proof that
fails, is a fork (``app.audit.tree_head.check_consistency``).

Storage. ``MerkleTree`` needs only two things from a ``NodeStore``: the hash of a complete subtree
at ``(level, index)`` — ``2**level`` leaves starting at leaf ``index * 2**level``, which never
changes once complete — and an append of one leaf hash with the subtrees it completes. The
in-memory store serves tests and tools; a SQL table ``(level, index) -> hash`` or one append-only
file per level fits the same protocol.
"""
from __future__ import annotations

import hashlib
from typing import Protocol, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_LEAF, _NODE = b"\x00", b"\x01"


class ProofError(ValueError):
    """A proof does not verify, or its inputs (index, sizes, hash lengths) cannot describe one."""


def leaf_hash(leaf: bytes) -> bytes:
    """RFC 9162 §2.1.1: the hash of one leaf's bytes."""
    return hashlib.sha256(_LEAF + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: the hash of an inner node from its children's hashes."""
    return hashlib.sha256(_NODE + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2): where RFC 9162 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


def merkle_tree_hash(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of a list of leaf *bytes* (RFC 9162 §2.1.1), computed level by level: pairing
    neighbours left to right and carrying an odd last node up unchanged builds exactly the tree
    the recursive definition splits at the largest power of two below n (``_split``), in O(n)
    hashes and no list slicing (a 20,000-row leaf is closed in the writer's transaction)."""
    if not leaves:
        return EMPTY_ROOT
    sha256, node = hashlib.sha256, _NODE
    level = [sha256(_LEAF + leaf).digest() for leaf in leaves]
    while len(level) > 1:
        odd = level[-1] if len(level) % 2 else None
        level = [sha256(node + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if odd is not None:
            level.append(odd)
    return level[0]


class NodeStore(Protocol):
    """Where the hashes of complete subtrees live (see the module docstring)."""

    def size(self) -> int:
        """How many leaves are stored."""

    def get(self, level: int, index: int) -> bytes:
        """The hash of the complete subtree of ``2**level`` leaves from leaf ``index * 2**level``."""

    def append(self, nodes: Sequence[bytes]) -> None:
        """Store leaf number ``size()``: ``nodes[0]`` is its leaf hash and ``nodes[l]`` the hash of
        the level-``l`` subtree it completes (index ``size() >> l``). All or nothing."""


class MemoryNodeStore:
    """A ``NodeStore`` in lists, one per level."""

    def __init__(self) -> None:
        self._levels: list[list[bytes]] = []

    def size(self) -> int:
        return len(self._levels[0]) if self._levels else 0

    def get(self, level: int, index: int) -> bytes:
        if level < 0 or index < 0 or level >= len(self._levels) or index >= len(self._levels[level]):
            raise KeyError((level, index))
        return self._levels[level][index]

    def append(self, nodes: Sequence[bytes]) -> None:
        size = self.size()
        if len(nodes) != (size ^ (size + 1)).bit_length():  # the leaf, plus one per trailing 1 bit
            raise ValueError(f"leaf {size} completes {(size ^ (size + 1)).bit_length()} nodes, not {len(nodes)}")
        for level in range(len(nodes)):
            if level == len(self._levels):
                self._levels.append([])
            if len(self._levels[level]) != size >> level:
                raise ValueError(f"level {level} holds {len(self._levels[level])} nodes, expected {size >> level}")
        for level, digest in enumerate(nodes):
            self._levels[level].append(digest)


class MerkleTree:
    """An append-only RFC 9162 tree over a ``NodeStore``: O(log n) appends, the root of any
    prefix, and inclusion and consistency proofs against any size up to the current one.

    Only one writer may append to a store; any number of trees may read it for proofs.
    """

    def __init__(self, store: NodeStore | None = None) -> None:
        self.store: NodeStore = MemoryNodeStore() if store is None else store
        self._size = self.store.size()
        # The perfect subtrees along the right border ("peaks"), largest first: appends need no reads.
        self._peaks = [self.store.get(level, index) for level, index in _perfect_subtrees(0, self._size)]

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf: bytes) -> int:
        """Append one leaf's bytes; returns its index."""
        return self.append_hash(leaf_hash(leaf))

    def append_hash(self, digest: bytes) -> int:
        """Append a leaf already hashed with ``leaf_hash``; returns its index."""
        _check_hash(digest, "leaf hash")
        index, nodes, node = self._size, [digest], digest
        while index >> (len(nodes) - 1) & 1:  # this node is a right child: its parent completes
            node = node_hash(self._peaks.pop(), node)
            nodes.append(node)
        self.store.append(nodes)
        self._peaks.append(node)
        self._size += 1
        return index

    def leaf_hash(self, index: int) -> bytes:
        self._check_size(index + 1)
        return self.store.get(0, index)

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default: all of them)."""
        size = self._size if size is None else size
        self._check_size(size)
        return EMPTY_ROOT if size == 0 else self._range(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[size]) of RFC 9162 §2.1.3.1, nearest sibling first."""
        size = self._size if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf {index} is not in a tree of size {size}")
        proof, start, end = [], 0, size
        while end - start > 1:
            k = _split(end - start)
            if index < start + k:
                proof.append(self._range(start + k, end))
                end = start + k
            else:
                proof.append(self._range(start, start + k))
                start += k
        return proof[::-1]

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """PROOF(old_size, D[new_size]) of RFC 9162 §2.1.4.1 (0 < old_size <= new_size)."""
        new_size = self._size if new_size is None else new_size
        self._check_size(new_size)
        if not 0 < old_size <= new_size:
            raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
        proof, start, end, whole = [], 0, new_size, True
        while old_size != end:
            k = _split(end - start)
            if old_size <= start + k:
                proof.append(self._range(start + k, end))
                end = start + k
            else:
                proof.append(self._range(start, start + k))
                start, whole = start + k, False
        if not whole:
            proof.append(self._range(start, end))
        return proof[::-1]

    def _range(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for the aligned ranges the RFC's recursion visits: folded from the
        stored perfect subtrees, right to left."""
        digest = b""
        for level, index in reversed(_perfect_subtrees(start, end)):
            node = self.store.get(level, index)
            digest = node if not digest else node_hash(node, digest)
        return digest

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self._size:
            raise ValueError(f"size {size} is outside the tree (0..{self._size})")


def _perfect_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """``(level, index)`` of the perfect subtrees that make up D[start:end], left to right."""
    found, width = [], end - start
    for level in range(width.bit_length() - 1, -1, -1):
        if width >> level & 1:
            if start % (1 << level):
                raise ValueError(f"range {start}..{end} is not aligned to the tree")
            found.append((level, start >> level))
            start += 1 << level
    return found


def _check_hash(digest: bytes, what: str) -> None:
    if not isinstance(digest, bytes) or len(digest) != HASH_SIZE:
        raise ProofError(f"{what} must be {HASH_SIZE} bytes")


def verify_inclusion(digest: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 §2.1.3.2: raise ``ProofError`` unless ``proof`` shows that the leaf hash ``digest``
    is leaf ``index`` of the tree of ``size`` leaves whose root is ``root``."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    for item, what in [(digest, "leaf hash"), (root, "root"), *((p, "proof hash") for p in proof)]:
        _check_hash(item, what)
    fn, sn, r = index, size - 1, digest
    for p in proof:
        if sn == 0:
            raise ProofError("proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("proof is too short")
    if r != root:
        raise ProofError("proof does not lead to the root")


def verify_consistency(old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes,
                       new_root: bytes) -> None:
    """RFC 9162 §2.1.4.2: raise ``ProofError`` unless ``proof`` shows that the tree of ``new_size``
    leaves with root ``new_root`` extends the one of ``old_size`` leaves with root ``old_root``.

    As in transparency-dev/merkle, ``old_size`` 0 is refused (every tree extends the empty one:
    there is nothing to prove) and equal sizes need an empty proof and equal roots.
    """
    if not 0 < old_size <= new_size:
        raise ProofError(f"no consistency proof from size {old_size} to {new_size}")
    for item, what in [(old_root, "old root"), (new_root, "new root"), *((p, "proof hash") for p in proof)]:
        _check_hash(item, what)
    if old_size == new_size:
        if proof:
            raise ProofError("equal sizes need an empty proof")
        if old_root != new_root:
            raise ProofError("same size, different roots")
        return
    if not proof:
        raise ProofError("empty proof")
    path = [old_root, *proof] if old_size & (old_size - 1) == 0 else list(proof)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("proof is too short")
    if fr != old_root or sr != new_root:
        raise ProofError("proof does not link the two roots")
