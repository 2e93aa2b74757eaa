"""The audit tree in SQL: the node store, closing a leaf, signing a head, archiving its key.

Tables (migration 0008): ``audit_leaves`` (index, first/last seq, rows root, leaf hash),
``audit_nodes`` ((level, index) -> hash of a complete subtree: ``merkle.NodeStore``),
``audit_tree_heads`` (every signed head) and ``audit_head_keys`` (the public JWK of every key that
ever signed a head, kept forever so old heads stay verifiable after the key ring pruned it).

Everything here runs inside the caller's transaction with the ``audit_head`` row locked
(``lock``), the lock every audit append takes: so leaves, nodes and heads change in the same
order as rows, one appender at a time, and a rolled-back batch leaves no leaf behind.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Sequence

from sqlalchemy import func, insert, select, tuple_, update
from sqlalchemy.orm import Session

from app.audit import leaves, merkle
from app.audit.log import HEAD_ID, AuditError
from app.audit.models import AuditEntry, AuditHead, AuditHeadKey, AuditLeaf, AuditNode, AuditTreeHead
from app.audit.tree_head import SignedTreeHead, sign_tree_head
from app.codes.wire import b64url_decode, b64url_encode
from app.signing.keyring import KeyRing


class SqlNodeStore:
    """``merkle.NodeStore`` over ``audit_nodes`` in one session (hashes stored as hex)."""

    def __init__(self, session: Session, size: int | None = None) -> None:
        self.session = session
        self._size = size
        self._cache: dict[tuple[int, int], bytes] = {}

    def prefetch(self, keys: Sequence[tuple[int, int]]) -> None:
        """Read these nodes in one query (a tree's peaks: O(log n) of them)."""
        if keys:
            rows = self.session.execute(select(AuditNode.level, AuditNode.idx, AuditNode.hash)
                                        .where(tuple_(AuditNode.level, AuditNode.idx).in_(list(keys))))
            self._cache.update({(level, idx): bytes.fromhex(digest) for level, idx, digest in rows})

    def size(self) -> int:
        if self._size is None:
            top = self.session.scalar(select(func.max(AuditNode.idx)).where(AuditNode.level == 0))
            self._size = 0 if top is None else top + 1
        return self._size

    def get(self, level: int, index: int) -> bytes:
        cached = self._cache.get((level, index))
        if cached is not None:
            return cached
        found = self.session.scalar(select(AuditNode.hash).where(AuditNode.level == level,
                                                                 AuditNode.idx == index))
        if found is None:
            raise KeyError((level, index))
        return bytes.fromhex(found)

    def append(self, nodes: Sequence[bytes]) -> None:
        size = self.size()
        if len(nodes) != (size ^ (size + 1)).bit_length():
            raise ValueError(f"leaf {size} completes {(size ^ (size + 1)).bit_length()} nodes, not {len(nodes)}")
        self.session.execute(insert(AuditNode), [{"level": level, "idx": size >> level, "hash": digest.hex()}
                                                 for level, digest in enumerate(nodes)])
        self._size = size + 1


def lock(session: Session) -> int:
    """Take the audit head's lock (as every append does) and return the newest seq."""
    head = AuditHead.__table__
    seq = session.scalar(update(head).where(head.c.id == HEAD_ID).values(seq=head.c.seq).returning(head.c.seq))
    if seq is None:
        raise AuditError("audit_head row is missing; run the database migrations")
    return int(seq)


def unsealed(session: Session, *, signing: bool) -> bool:
    """Whether rows wait for a leaf, or (``signing``) leaves for a head; reads only, no lock."""
    head_seq = session.scalar(select(AuditHead.seq).where(AuditHead.id == HEAD_ID)) or 0
    last = session.execute(select(AuditLeaf.idx, AuditLeaf.last_seq)
                           .order_by(AuditLeaf.idx.desc()).limit(1)).one_or_none()
    if head_seq > (0 if last is None else last.last_seq):
        return True
    newest = session.scalar(select(AuditTreeHead.tree_size).order_by(AuditTreeHead.id.desc()).limit(1))
    return signing and (0 if last is None else last.idx + 1) > (newest or 0)


def tree(session: Session, size: int | None = None) -> merkle.MerkleTree:
    """The tree as stored (``size``: its leaf count when the caller knows it); its O(log n) peaks
    are read in one query."""
    store = SqlNodeStore(session, size)
    store.prefetch(_peaks(store.size()))
    return merkle.MerkleTree(store)


def _peaks(size: int) -> list[tuple[int, int]]:
    """``(level, index)`` of the perfect subtrees along the right border of a tree of ``size``."""
    found, start = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            found.append((level, start >> level))
            start += 1 << level
    return found


def close_leaf(session: Session, last_seq: int, *, now: datetime | None = None,
               known: tuple[int, Sequence[str]] | None = None) -> AuditLeaf | None:
    """Append one leaf over every row after the previous leaf up to ``last_seq`` (the locked
    head's seq); None when there is no such row. Caller holds ``lock``. ``known``: ``(seq,
    hashes)``, the entry hashes of rows ``seq .. last_seq`` as the caller appended them (the
    record writer's batches since the last leaf); only the rows before them are read back. Ignored
    unless they end at ``last_seq`` and start inside the new leaf."""
    previous = session.execute(select(AuditLeaf.idx, AuditLeaf.last_seq)
                               .order_by(AuditLeaf.idx.desc()).limit(1)).one_or_none()
    index, first = (0, 1) if previous is None else (previous.idx + 1, previous.last_seq + 1)
    if last_seq < first:
        return None
    read_to, tail = last_seq, []  # rows first .. read_to are read from the table
    if known is not None and first <= known[0] and known[0] + len(known[1]) - 1 == last_seq:
        read_to, tail = known[0] - 1, list(known[1])
    hashes = [] if read_to < first else list(session.scalars(
        select(AuditEntry.hash).where(AuditEntry.seq.between(first, read_to)).order_by(AuditEntry.seq)))
    hashes += tail
    rows_root, digest = leaves.leaf_hash(index, first, last_seq, hashes)
    stored = tree(session, index)  # a node store out of step fails: a missing peak, or a duplicate key
    stored.append_hash(digest)
    leaf = AuditLeaf(idx=index, first_seq=first, last_seq=last_seq, rows_root=rows_root.hex(),
                     hash=digest.hex(), created_at=now or datetime.now(timezone.utc))
    session.execute(insert(AuditLeaf).values(idx=leaf.idx, first_seq=first, last_seq=last_seq,
                                             rows_root=leaf.rows_root, hash=leaf.hash,
                                             created_at=leaf.created_at))
    return leaf


def sign_head(session: Session, ring: KeyRing, *, now: float) -> SignedTreeHead | None:
    """Sign and store a head over every leaf, unless the newest head already covers them all;
    the signing key's public JWK joins the archive the first time it signs. Caller holds ``lock``."""
    stored = tree(session)
    newest = latest_head(session)
    if newest is not None and newest.tree_size == stored.size:
        return None
    head = sign_tree_head(ring, tree_size=stored.size, root_hash=stored.root(), now=now)
    if session.get(AuditHeadKey, head.kid) is None:
        session.execute(insert(AuditHeadKey).values(kid=head.kid, jwk=ring.current.jwk(),
                                                    first_used_at=datetime.fromtimestamp(now, timezone.utc)))
    session.execute(insert(AuditTreeHead).values(
        tree_size=head.tree_size, root_hash=head.root_hash.hex(), timestamp=head.timestamp, kid=head.kid,
        signature=b64url_encode(head.signature).decode("ascii")))
    return head


def as_head(row: AuditTreeHead) -> SignedTreeHead:
    return SignedTreeHead(row.tree_size, bytes.fromhex(row.root_hash), row.timestamp, row.kid,
                          b64url_decode(row.signature.encode("ascii")))


def latest_head(session: Session) -> SignedTreeHead | None:
    """The newest signed head (by signing order), or None before the first."""
    row = session.scalars(select(AuditTreeHead).order_by(AuditTreeHead.id.desc()).limit(1)).first()
    return None if row is None else as_head(row)


def head_keys(session: Session) -> dict[str, list[dict[str, str]]]:
    """Every key that ever signed a head, as a JWK Set (public keys only)."""
    return {"keys": [dict(jwk) for jwk in session.scalars(select(AuditHeadKey.jwk).order_by(
        AuditHeadKey.first_used_at, AuditHeadKey.kid))]}
