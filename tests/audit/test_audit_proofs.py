"""The audit tree over HTTP: the signed head, the head keys, consistency proofs, and a citizen's
inclusion proof for their own history entry, checked with public material only."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from flask.testing import FlaskClient

from app.audit.log import entry_hash
from app.audit.models import AuditEntry
from app.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from app.audit.tree_head import SignedTreeHead, verify_with_jwks
from tests.helpers import ADMIN, bearer, code, drain, enrol, terminal


def _scan(client: FlaskClient, citizen: dict[str, Any], gate: str) -> None:
    body = client.post("/v1/verify", headers=bearer(gate), json={"code": code(client, citizen["app_token"])})
    assert body.get_json()["decision"] == "accept"


def _my_scan_seq(client: FlaskClient, citizen: dict[str, Any]) -> int:
    entries = client.get("/v1/me/history", headers=bearer(citizen["app_token"])).get_json()["entries"]
    return next(e["seq"] for e in entries if e["action"] == "scan")


def check_entry_proof(proof: dict[str, Any], jwks: dict[str, Any]) -> None:
    """What a citizen's app does: nothing but the answer, the published head keys and RFC 9162."""
    entry = dict(proof["entry"], at=datetime.fromisoformat(proof["entry"]["at"]))
    assert entry_hash(entry) == proof["entry_hash"]
    leaf = proof["leaf"]
    verify_inclusion(leaf_hash(bytes.fromhex(proof["entry_hash"])), proof["row_index"], leaf["count"],
                     [bytes.fromhex(h) for h in proof["row_proof"]], bytes.fromhex(leaf["rows_root"]))
    leaf_bytes = (f"citycode-audit-leaf/v1\n{leaf['index']}\n{leaf['first_seq']}\n{leaf['last_seq']}\n"
                  f"{leaf['count']}\n{leaf['rows_root']}\n").encode("ascii")
    head = SignedTreeHead.from_dict(proof["tree_head"])
    verify_with_jwks(head, jwks)
    verify_inclusion(leaf_hash(leaf_bytes), leaf["index"], head.tree_size,
                     [bytes.fromhex(h) for h in proof["leaf_proof"]], head.root_hash)


def test_a_citizens_scan_is_proven_in_the_signed_tree_with_public_material_only(client: FlaskClient) -> None:
    citizen, other = enrol(client), enrol(client, name="李四")
    gate = terminal(client)
    for who in (citizen, other, citizen, other):
        _scan(client, who, gate)
    drain(client.application)
    seq = _my_scan_seq(client, citizen)
    response = client.get(f"/v1/me/history/{seq}/proof", headers=bearer(citizen["app_token"]))
    assert response.status_code == 200, response.get_json()
    proof = response.get_json()
    assert proof["leaf"]["count"] > 1  # the leaf holds other rows too ...
    assert proof["seq"] == seq and proof["entry"]["seq"] == seq
    with client.application.extensions["citycode"].db.session() as session:  # ... only as hashes
        others = set(session.scalars(select(AuditEntry.subject).where(
            AuditEntry.subject != proof["entry"]["subject"], AuditEntry.subject.is_not(None))))
    assert others and not any(subject in response.get_data(as_text=True) for subject in others)
    check_entry_proof(proof, client.get("/v1/audit/keys").get_json())
    assert proof["tree_head"] == client.get("/v1/audit/tree-head").get_json()


def test_a_citizen_gets_no_proof_for_someone_elses_entry_or_none(client: FlaskClient) -> None:
    citizen, other = enrol(client), enrol(client, name="李四")
    _scan(client, other, terminal(client))
    drain(client.application)
    theirs = _my_scan_seq(client, other)
    for seq in (theirs, 10**9):
        response = client.get(f"/v1/me/history/{seq}/proof", headers=bearer(citizen["app_token"]))
        assert response.status_code == 404 and response.mimetype == "application/problem+json"
    assert client.get(f"/v1/me/history/{theirs}/proof").status_code == 401


def test_an_entry_not_yet_under_a_signed_head_is_409_until_the_writer_seals(client: FlaskClient) -> None:
    citizen = enrol(client)
    drain(client.application)
    suspended = client.post(f"/v1/admin/citizens/{citizen['citizen_id']}/suspend", headers=ADMIN,
                            json={"reason": "lost phone"})
    assert suspended.status_code == 200, suspended.get_json()
    entries = client.get("/v1/me/history", headers=bearer(citizen["app_token"])).get_json()["entries"]
    seq = entries[0]["seq"]
    url, headers = f"/v1/me/history/{seq}/proof", bearer(citizen["app_token"])
    response = client.get(url, headers=headers)
    assert response.status_code == 409 and response.mimetype == "application/problem+json"
    drain(client.application)  # the idle writer closes a leaf over the admin entry and signs
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.get_json()
    check_entry_proof(response.get_json(), client.get("/v1/audit/keys").get_json())


def test_consecutive_heads_are_proven_consistent_over_http(client: FlaskClient) -> None:
    assert client.get("/v1/audit/tree-head").status_code == 404  # nothing signed yet
    gate = terminal(client)
    citizen = enrol(client)
    drain(client.application)
    older = SignedTreeHead.from_dict(client.get("/v1/audit/tree-head").get_json())
    _scan(client, citizen, gate)
    drain(client.application)
    newer = SignedTreeHead.from_dict(client.get("/v1/audit/tree-head").get_json())
    assert newer.tree_size > older.tree_size
    body = client.get("/v1/audit/consistency",
                      query_string={"from": older.tree_size, "to": newer.tree_size}).get_json()
    verify_consistency(older.tree_size, newer.tree_size, [bytes.fromhex(h) for h in body["proof"]],
                       older.root_hash, newer.root_hash)
    for query in ({"from": 2, "to": 1}, {"from": 1, "to": newer.tree_size + 1}, {"from": 0, "to": 1},
                  {"from": "x", "to": 1}, {"to": 1}):
        response = client.get("/v1/audit/consistency", query_string=query)
        assert response.status_code == 422 and response.mimetype == "application/problem+json", query


def test_the_head_keys_are_public_keys_only(client: FlaskClient) -> None:
    enrol(client)
    drain(client.application)
    keys = client.get("/v1/audit/keys").get_json()["keys"]
    assert len(keys) == 1 and "d" not in keys[0] and keys[0]["use"] == "sig"
