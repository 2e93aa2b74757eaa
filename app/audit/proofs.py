"""What the public and a citizen can ask of the audit tree: the newest signed head, a consistency
proof between two sizes, and a citizen's proof that one of their history entries is in the log.

An entry proof (``entry_proof``) holds the entry's own hashed fields and hash, the leaf header
(index, first/last seq, count, rows root), the entry's inclusion proof in its leaf's rows tree,
the leaf's inclusion proof in the newest signed head and that head. Other citizens' rows appear
only as hashes inside the proofs. Verification needs no database (``app.audit.leaves`` for the
leaf bytes, ``merkle.verify_inclusion`` twice, the head's signature under ``GET /v1/audit/keys``).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import leaves, tree_store
from app.audit.log import timestamp
from app.audit.models import AuditEntry, AuditLeaf
from app.audit.tree_head import SignedTreeHead
from app.errors import Conflict, InvalidInput, NotFound


def newest_head(session: Session) -> SignedTreeHead:
    head = tree_store.latest_head(session)
    if head is None:
        raise NotFound("No tree head has been signed yet.")
    return head


def consistency(session: Session, first: int, second: int) -> list[bytes]:
    """PROOF(first, D[second]) from the stored tree; 1 <= first <= second <= its size."""
    tree = tree_store.tree(session)
    if not 1 <= first <= second <= tree.size:
        raise InvalidInput("Sizes out of range.", {"to": [f"need 1 <= from <= to <= {tree.size} (the tree's size)"]})
    return tree.consistency_proof(first, second)


def entry_proof(session: Session, seq: int, subject: str) -> dict[str, Any]:
    """The proof for entry ``seq`` of the citizen with pseudonym ``subject`` (module docstring).

    Someone else's entry, or none, is ``NotFound``; an entry not yet covered by a signed head
    (the writer seals within ``audit_head_seconds``) is ``Conflict``: ask again shortly."""
    entry = session.get(AuditEntry, seq)
    if entry is None or entry.subject != subject:
        raise NotFound("No such history entry.")
    leaf = session.scalars(select(AuditLeaf).where(AuditLeaf.first_seq <= seq)
                           .order_by(AuditLeaf.first_seq.desc()).limit(1)).first()
    head = tree_store.latest_head(session)
    if leaf is None or leaf.last_seq < seq or head is None or head.tree_size <= leaf.idx:
        raise Conflict("This entry is not yet covered by a signed tree head; ask again in a few seconds.")
    hashes = list(session.scalars(select(AuditEntry.hash).where(
        AuditEntry.seq.between(leaf.first_seq, leaf.last_seq)).order_by(AuditEntry.seq)))
    leaf_proof = tree_store.tree(session).inclusion_proof(leaf.idx, head.tree_size)
    return {
        "seq": seq, "entry": _hashed_fields(entry), "entry_hash": entry.hash,
        "leaf": {"index": leaf.idx, "first_seq": leaf.first_seq, "last_seq": leaf.last_seq,
                 "count": leaf.last_seq - leaf.first_seq + 1, "rows_root": leaf.rows_root},
        "row_index": seq - leaf.first_seq,
        "row_proof": [h.hex() for h in leaves.row_proof(hashes, seq - leaf.first_seq)],
        "leaf_proof": [h.hex() for h in leaf_proof],
        "tree_head": head.to_dict()}


def _hashed_fields(entry: AuditEntry) -> dict[str, Any]:
    """The entry's fields exactly as ``app.audit.log.entry_hash`` hashes them (``at`` as its text)."""
    return {"seq": entry.seq, "at": timestamp(entry.at), "actor_kind": entry.actor_kind,
            "actor_id": entry.actor_id, "action": entry.action, "subject": entry.subject,
            "site": entry.site, "purpose": entry.purpose, "reason": entry.reason,
            "details": entry.details, "prev_hash": entry.prev_hash, "record_id": entry.record_id}
