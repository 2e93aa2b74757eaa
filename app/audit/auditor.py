"""``citycode audit verify``: recompute the audit log's Merkle tree from its rows and check every
stored signed head against it.

1. The hash chain (``app.audit.log.verify_chain``), kept: it also covers the rows not yet in a
   leaf and names the first edited, removed or reordered row.
2. Every leaf from its rows: each row's entry hash recomputed from its fields (an edited row is
   named by seq), the leaf's seq range contiguous with the previous one, its bytes and hash
   (``app.audit.leaves``) equal to what the leaf table and the node store hold.
3. The node store: every stored subtree hash equals the one recomputed from the leaves.
4. Every signed head: its signature under the archived head keys (``audit_head_keys``), its root
   equal to the recomputed root at its size, and consistency (RFC 9162 proof from the recomputed
   tree) with the head signed before it: a second head of the same size with another root, or a
   smaller newer head, is a fork.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit import leaves, merkle
from app.audit import tree_head as heads
from app.audit.log import entry_hash, verify_chain
from app.audit.models import AuditEntry, AuditLeaf, AuditNode, AuditTreeHead
from app.audit.tree_store import as_head, head_keys
from app.codes.jwks import JWKSError, keys_from_jwks


@dataclass
class AuditReport:
    entries: int = 0
    leaves: int = 0
    heads: int = 0
    unsealed: int = 0  # rows after the last leaf (the writer closes a leaf for them soon)
    root: bytes = merkle.EMPTY_ROOT
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def audit(session: Session) -> AuditReport:
    """Check everything (module docstring); problems are listed, not raised."""
    report = AuditReport(entries=session.scalar(select(func.count()).select_from(AuditEntry)) or 0)
    intact, broken_at = verify_chain(session)
    if not intact:
        report.problems.append(f"hash chain broken at seq {broken_at}")
    tree = _leaves(session, report)
    report.root = tree.root()
    _nodes(session, tree, report)
    _heads(session, tree, report)
    return report


def _leaves(session: Session, report: AuditReport) -> merkle.MerkleTree:
    """The tree recomputed from the rows, one leaf at a time."""
    tree, covered = merkle.MerkleTree(), 0
    for leaf in session.scalars(select(AuditLeaf).order_by(AuditLeaf.idx)):
        report.leaves += 1
        name = f"leaf {leaf.idx} (seq {leaf.first_seq}..{leaf.last_seq})"
        if leaf.idx != tree.size or leaf.first_seq != covered + 1 or leaf.last_seq < leaf.first_seq:
            report.problems.append(f"{name}: expected leaf {tree.size} from seq {covered + 1}")
        hashes = []
        rows = session.scalars(select(AuditEntry).where(AuditEntry.seq.between(leaf.first_seq, leaf.last_seq))
                               .order_by(AuditEntry.seq))
        expected = leaf.first_seq
        for row in rows:
            if row.seq != expected:
                report.problems.append(f"{name}: seq {expected} is missing")
                expected = row.seq
            recomputed = entry_hash(row.__dict__)
            if recomputed != row.hash:
                report.problems.append(f"seq {row.seq} in {name}: the row does not match its entry hash")
            hashes.append(recomputed)
            expected += 1
        if expected != leaf.last_seq + 1:
            report.problems.append(f"{name}: seq {expected}..{leaf.last_seq} missing")
        try:
            rows_root, digest = leaves.leaf_hash(tree.size, leaf.first_seq, leaf.last_seq, hashes)
        except ValueError:
            digest, rows_root = bytes.fromhex(leaf.hash), b""  # already reported: rows missing
        if (digest.hex(), rows_root.hex()) != (leaf.hash, leaf.rows_root):
            report.problems.append(f"{name} does not match its rows")
        tree.append_hash(digest)
        covered = max(covered, leaf.last_seq)
    last = session.scalar(select(func.max(AuditEntry.seq))) or 0
    report.unsealed = max(0, last - covered)
    return tree


def _nodes(session: Session, tree: merkle.MerkleTree, report: AuditReport) -> None:
    stored = {(n.level, n.idx): n.hash for n in session.execute(select(AuditNode.level, AuditNode.idx,
                                                                      AuditNode.hash))}
    expected = {}
    for level in range(tree.size.bit_length()):
        for index in range(tree.size >> level):
            expected[(level, index)] = tree.store.get(level, index).hex()
    for key in sorted(set(stored) | set(expected)):
        if stored.get(key) != expected.get(key):
            report.problems.append(f"node store ({key[0]}, {key[1]}) differs from the tree recomputed from the rows")


def _heads(session: Session, tree: merkle.MerkleTree, report: AuditReport) -> None:
    try:
        keys = keys_from_jwks(head_keys(session))
    except JWKSError as exc:
        report.problems.append(f"archived head keys unusable: {exc}")
        keys = {}
    previous: tuple[int, heads.SignedTreeHead] | None = None
    for row in session.scalars(select(AuditTreeHead).order_by(AuditTreeHead.id)):
        report.heads += 1
        head = as_head(row)
        name = f"tree head {row.id} (size {head.tree_size})"
        try:
            heads.verify(head, keys)
        except heads.TreeHeadError as exc:
            report.problems.append(f"{name}: {exc}")
        if head.tree_size > tree.size:
            report.problems.append(f"{name}: the tree has only {tree.size} leaves")
            continue
        if head.root_hash != tree.root(head.tree_size):
            report.problems.append(f"{name}: root does not match the tree recomputed from the rows")
        if previous is not None:
            before_id, before = previous
            try:
                proof = tree.consistency_proof(before.tree_size, head.tree_size) \
                    if 0 < before.tree_size <= head.tree_size else []
                heads.check_consistency(before, head, proof)
            except heads.ForkedHeads as exc:
                report.problems.append(f"forked: tree heads {before_id} and {row.id}: {exc}")
        previous = (row.id, head)
