"""The audit log's Merkle tree in public: the newest signed tree head, the keys that ever signed
one, consistency proofs between two sizes, and a citizen's inclusion proof for a history entry
(``app.audit.proofs``; leaf bytes in ``app.audit.leaves``, signed bytes in ``app.audit.tree_head``)."""
from __future__ import annotations

from typing import Any

import marshmallow as ma

from app.api.blueprint import Blueprint
from app.api.platform import JwksOut
from app.api.schemas import problem_doc
from app.api.security import current_principal, require
from app.audit import proofs, tree_store
from app.auth import Role
from app.registry import citizens
from app.runtime import runtime

blp = Blueprint("audit", __name__, url_prefix="/v1", description="Audit log: signed tree heads and proofs")

_HEX = {"description": "64 lowercase hex digits"}


class TreeHeadOut(ma.Schema):
    tree_size = ma.fields.Integer(required=True, metadata={"description": "leaves in the tree"})
    root_hash = ma.fields.String(required=True, metadata=_HEX)
    timestamp = ma.fields.Integer(required=True, metadata={"description": "ms since the epoch, UTC"})
    kid = ma.fields.String(required=True, metadata={"description": "the signing key in GET /v1/audit/keys"})
    signature = ma.fields.String(required=True, metadata={
        "description": "base64url (no padding) over the head's signed bytes (README: audit log)"})


class ConsistencyIn(ma.Schema):
    first = ma.fields.Integer(required=True, data_key="from", validate=ma.validate.Range(min=1, max=2**62))
    second = ma.fields.Integer(required=True, data_key="to", validate=ma.validate.Range(min=1, max=2**62))


class ConsistencyOut(ma.Schema):
    first = ma.fields.Integer(required=True, data_key="from")
    second = ma.fields.Integer(required=True, data_key="to")
    proof = ma.fields.List(ma.fields.String(metadata=_HEX), required=True,
                           metadata={"description": "RFC 9162 §2.1.4 consistency proof"})


class LeafOut(ma.Schema):
    index = ma.fields.Integer(required=True)
    first_seq = ma.fields.Integer(required=True)
    last_seq = ma.fields.Integer(required=True)
    count = ma.fields.Integer(required=True)
    rows_root = ma.fields.String(required=True, metadata=_HEX)


class EntryProofOut(ma.Schema):
    seq = ma.fields.Integer(required=True)
    entry = ma.fields.Dict(required=True, metadata={
        "description": "the entry's fields exactly as its entry hash covers them"})
    entry_hash = ma.fields.String(required=True, metadata=_HEX)
    leaf = ma.fields.Nested(LeafOut, required=True)
    row_index = ma.fields.Integer(required=True, metadata={"description": "seq - leaf.first_seq"})
    row_proof = ma.fields.List(ma.fields.String(metadata=_HEX), required=True, metadata={
        "description": "inclusion of the entry hash in the leaf's rows tree (root leaf.rows_root)"})
    leaf_proof = ma.fields.List(ma.fields.String(metadata=_HEX), required=True, metadata={
        "description": "inclusion of the leaf in the tree of tree_head.tree_size leaves"})
    tree_head = ma.fields.Nested(TreeHeadOut, required=True)


@blp.route("/audit/tree-head", methods=["GET"])
@blp.response(200, TreeHeadOut)
@blp.alt_response(404, **problem_doc("No tree head signed yet"))
def tree_head() -> dict[str, Any]:
    """The newest signed tree head of the audit log (404 before the first)."""
    with runtime().db.session() as session:
        return proofs.newest_head(session).to_dict()


@blp.route("/audit/keys", methods=["GET"])
@blp.response(200, JwksOut)
def head_keys() -> dict[str, Any]:
    """Every key that ever signed a tree head (public JWKs), kept forever: old heads stay
    verifiable after the key left `/.well-known/jwks.json`."""
    with runtime().db.session() as session:
        return tree_store.head_keys(session)


@blp.route("/audit/consistency", methods=["GET"])
@blp.arguments(ConsistencyIn, location="query")
@blp.response(200, ConsistencyOut)
def consistency(args: dict[str, int]) -> dict[str, Any]:
    """Proof that the tree of `to` leaves extends the one of `from` leaves (hex hashes)."""
    with runtime().db.session() as session:
        proof = proofs.consistency(session, args["first"], args["second"])
    return {"first": args["first"], "second": args["second"], "proof": [h.hex() for h in proof]}


@blp.route("/me/history/<int:seq>/proof", methods=["GET"])
@require(Role.CITIZEN)
@blp.response(200, EntryProofOut)
@blp.alt_response(404, **problem_doc("No such entry of mine"))
@blp.alt_response(409, **problem_doc("Not yet covered by a signed tree head: ask again shortly"))
def entry_proof(seq: int) -> dict[str, Any]:
    """Proof that one of my history entries is in the audit log under a signed tree head; 404
    for an entry that is not mine. Other rows appear only as hashes."""
    with runtime().db.session() as session:
        subject = citizens.get(session, current_principal().principal_id).pseudonym
        return proofs.entry_proof(session, seq, subject)
