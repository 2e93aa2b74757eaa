"""The audit tree's leaves: one leaf per contiguous range of ``audit_log`` rows, and its bytes.

Every row is in exactly one leaf. The record writer (``app.records.writer``) is the only
appender: in the transaction that writes a batch of scan records it closes one leaf over every
row not yet in a leaf — the batch, and any admin, issuer or disclosure entries appended one by
one since the previous leaf — and an idle writer closes one for such entries periodically.

Leaf bytes, version 1 (``leaf_bytes``): six lines of ASCII, each ending in one ``\\n`` (0x0A)::

    citycode-audit-leaf/v1
    <index>        the leaf's index in the tree, decimal (0, 1, 2 ...)
    <first_seq>    the first audit_log seq it covers, decimal
    <last_seq>     the last seq it covers, decimal (>= first_seq)
    <count>        last_seq - first_seq + 1, decimal
    <rows_root>    64 lowercase hex digits: the RFC 9162 root over the rows, in seq order

The rows' tree (``rows_root``) has one leaf per row whose bytes are the 32 raw bytes of the row's
entry hash (the ``hash`` column hex-decoded, ``app.audit.log.entry_hash``), so its leaf hash is
``SHA-256(0x00 || entry_hash)``. The tree's leaf hash is ``SHA-256(0x00 || leaf bytes)``
(``app.audit.merkle.leaf_hash``). Decimal numbers have no sign and no leading zeros.

An auditor recomputes a leaf from its rows alone: entry hashes -> rows_root -> leaf bytes -> leaf
hash; a citizen proves one row in two steps (row in its leaf, leaf in the signed tree) and sees
only hashes of the other rows.
"""
from __future__ import annotations

from typing import Sequence

from app.audit import merkle

LEAF_CONTEXT = b"citycode-audit-leaf/v1"


def row_leaf(entry_hash: str) -> bytes:
    """A row's leaf bytes in its leaf's rows tree: its entry hash, raw."""
    raw = bytes.fromhex(entry_hash)
    if len(raw) != merkle.HASH_SIZE:
        raise ValueError("an entry hash is 64 hex digits")
    return raw


def rows_root(entry_hashes: Sequence[str]) -> bytes:
    """The RFC 9162 root over the rows' entry hashes (hex), in seq order."""
    if not entry_hashes:
        raise ValueError("a leaf covers at least one row")
    return merkle.merkle_tree_hash([row_leaf(h) for h in entry_hashes])


def row_proof(entry_hashes: Sequence[str], position: int) -> list[bytes]:
    """The inclusion proof of row ``position`` (0 = the leaf's first seq) in the rows tree."""
    tree = merkle.MerkleTree()
    for entry_hash in entry_hashes:
        tree.append(row_leaf(entry_hash))
    return tree.inclusion_proof(position)


def leaf_bytes(index: int, first_seq: int, last_seq: int, root: bytes) -> bytes:
    """The leaf's canonical bytes (module docstring)."""
    if index < 0 or not 1 <= first_seq <= last_seq or len(root) != merkle.HASH_SIZE:
        raise ValueError("a leaf has index >= 0, 1 <= first_seq <= last_seq and a 32-byte root")
    return b"%s\n%d\n%d\n%d\n%d\n%s\n" % (LEAF_CONTEXT, index, first_seq, last_seq,
                                          last_seq - first_seq + 1, root.hex().encode("ascii"))


def leaf_hash(index: int, first_seq: int, last_seq: int, entry_hashes: Sequence[str]) -> tuple[bytes, bytes]:
    """``(rows_root, leaf hash)`` of the leaf over these rows."""
    if len(entry_hashes) != last_seq - first_seq + 1:
        raise ValueError(f"seq {first_seq}..{last_seq} needs {last_seq - first_seq + 1} rows, "
                         f"got {len(entry_hashes)}")
    root = rows_root(entry_hashes)
    return root, merkle.leaf_hash(leaf_bytes(index, first_seq, last_seq, root))
