"""The audit Merkle tree as the record writer builds it, and ``citycode audit verify`` finding a
tampered row, an altered node store and a forked head; old heads verify after key rotation."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert, select, text, update

from app.audit import log as audit
from app.audit import merkle, tree_store
from app.audit.auditor import audit as check
from app.audit.models import AuditEntry, AuditLeaf, AuditTreeHead
from app.audit.tree_head import sign_tree_head
from app.cli import main
from app.codes.wire import b64url_encode
from app.records.writer import RecordWriter
from app.signing.keyring import KeyStore
from tests.helpers import drain
from tests.records.support import runtime_of, scan_some, stream_entries


def _writer(app: Flask, batch: int = 1000, head_seconds: float = 1.0) -> RecordWriter:
    rt = runtime_of(app)
    writer = RecordWriter(rt.redis, rt.db, stream=rt.settings.records_stream, consumer="tree", batch=batch,
                          keys=rt.keys, head_seconds=head_seconds, wall=lambda: 1_767_225_600.0)
    writer.ensure_group()
    return writer


def _leaves(app: Flask) -> list[tuple[int, int, int]]:
    with runtime_of(app).db.session() as session:
        return [(leaf.idx, leaf.first_seq, leaf.last_seq)
                for leaf in session.scalars(select(AuditLeaf).order_by(AuditLeaf.idx))]


def _admin_entry(app: Flask) -> None:
    with runtime_of(app).db.session() as session:
        audit.append(session, actor_kind="admin", actor_id="adm", action="citizen_suspended", subject="pX")


def _verify(app: Flask) -> Result:
    settings = runtime_of(app).settings
    env = {"CITYCODE_DATA_DIR": str(settings.data_dir), "DATABASE_URL": None, "REDIS_URL": None}
    return CliRunner().invoke(main, ["audit", "verify"], env=env, catch_exceptions=False)


def test_leaves_cover_every_row_exactly_once_including_admin_rows_between_batches(
        app: Flask, client: FlaskClient) -> None:
    scan_some(app, client, 7, "p_t")  # registering the terminal appended an admin row first
    writer = _writer(app, batch=4)
    assert writer.step(block=False) == 4
    _admin_entry(app)
    _admin_entry(app)
    assert writer.step(block=False) == 3
    _admin_entry(app)
    writer.seal(force=True)  # an idle writer closes a leaf for the admin row
    leaves = _leaves(app)
    with runtime_of(app).db.session() as session:
        last = session.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1))
    assert [index for index, _, _ in leaves] == list(range(len(leaves))) and len(leaves) == 3
    covered = [seq for _, first, last_seq in leaves for seq in range(first, last_seq + 1)]
    assert covered == list(range(1, last + 1))  # every row once, in order, no gap
    assert leaves[1][2] - leaves[1][1] + 1 == 5  # the second batch took the two admin rows before it
    with runtime_of(app).db.session() as session:
        report = check(session)
        assert report.ok, report.problems
        assert (report.leaves, report.heads, report.unsealed) == (3, 2, 0)  # a head with leaf 0, one sealing all


def test_draining_the_same_records_again_adds_no_leaf_and_no_head(app: Flask, client: FlaskClient) -> None:
    scan_some(app, client, 5, "p_t")
    rt = runtime_of(app)
    entries = stream_entries(rt)
    writer = _writer(app)
    writer.write_streams(entries)
    writer.seal(force=True)
    before = _leaves(app)
    writer.write_streams(entries)  # redelivered: every record already stored
    writer.write_streams(dict(list(entries.items())[1:3]))
    writer.seal(force=True)
    assert drain(app) == 0
    assert _leaves(app) == before and len(before) == 1
    with rt.db.session() as session:
        assert len(session.scalars(select(AuditTreeHead)).all()) == 1


def test_a_head_is_signed_at_most_every_head_seconds_and_drain_seals_the_rest(
        app: Flask, client: FlaskClient) -> None:
    rt = runtime_of(app)
    now = [1_767_225_600.0]
    writer = RecordWriter(rt.redis, rt.db, stream=rt.settings.records_stream, consumer="tree", batch=2,
                          keys=rt.keys, head_seconds=10, wall=lambda: now[0])
    writer.ensure_group()
    scan_some(app, client, 6, "p_t")
    for _ in range(3):  # three batches, three leaves, within one interval: one head
        assert writer.step(block=False) == 2
    with rt.db.session() as session:
        sizes = list(session.scalars(select(AuditTreeHead.tree_size).order_by(AuditTreeHead.id)))
    assert sizes == [1]
    now[0] += 10
    writer.drain()
    with rt.db.session() as session:
        sizes = list(session.scalars(select(AuditTreeHead.tree_size).order_by(AuditTreeHead.id)))
        assert sizes == [1, 3] and check(session).ok


def test_with_leaf_seconds_batches_share_a_leaf_until_a_head_is_due_and_every_row_is_sealed(
        app: Flask, client: FlaskClient) -> None:
    rt = runtime_of(app)
    now = [1_767_225_600.0]
    writer = RecordWriter(rt.redis, rt.db, stream=rt.settings.records_stream, consumer="tree", batch=2,
                          keys=rt.keys, head_seconds=10, leaf_seconds=10, wall=lambda: now[0])
    writer.ensure_group()
    scan_some(app, client, 8, "p_t")
    for _ in range(3):  # the first batch closes a leaf and signs a head; the next two wait
        assert writer.step(block=False) == 2
    first_leaf = _leaves(app)
    assert len(first_leaf) == 1
    now[0] += 10  # a head is due: the next batch closes one leaf over both waiting batches and itself
    assert writer.step(block=False) == 2
    leaves = _leaves(app)
    assert len(leaves) == 2 and leaves[1][2] - leaves[1][1] + 1 == 6
    with rt.db.session() as session:
        sizes = list(session.scalars(select(AuditTreeHead.tree_size).order_by(AuditTreeHead.id)))
        report = check(session)
    assert sizes == [1, 2] and report.ok and report.unsealed == 0, report.problems


def test_an_intact_tree_verifies(app: Flask, client: FlaskClient) -> None:
    scan_some(app, client, 3, "p_t")
    drain(app)
    result = _verify(app)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("audit log ok (") and ", 1 signed heads, 0 not yet in a leaf" in result.output


def test_a_tampered_row_fails_naming_its_seq_and_leaf(app: Flask, client: FlaskClient) -> None:
    scan_some(app, client, 4, "p_t")
    drain(app)
    (index, first, last), = _leaves(app)
    with runtime_of(app).db.session() as session:
        session.execute(update(AuditEntry).where(AuditEntry.seq == last - 1).values(actor_id="trm_forged"))
    result = _verify(app)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert f"seq {last - 1} in leaf {index} (seq {first}..{last}): the row does not match its entry hash" in lines
    assert f"leaf {index} (seq {first}..{last}) does not match its rows" in lines
    assert lines[-1].startswith("audit log broken (")


def test_a_row_rewritten_with_its_whole_hash_chain_recomputed_is_caught_by_its_leaf(
        app: Flask, client: FlaskClient) -> None:
    scan_some(app, client, 4, "p_t")
    drain(app)
    (index, first, last), = _leaves(app)
    with runtime_of(app).db.session() as session:  # an insider edits a row and re-chains everything after it
        rows = list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
        prev = audit.GENESIS_HASH
        for row in rows:
            values: dict[str, Any] = {c.name: getattr(row, c.name) for c in AuditEntry.__table__.c}
            if row.seq == last:
                values["details"] = {**values["details"], "decision": "deny"}
            values["prev_hash"] = prev
            prev = values["hash"] = audit.entry_hash(values)
            session.execute(update(AuditEntry).where(AuditEntry.seq == row.seq)
                            .values(details=values["details"], prev_hash=values["prev_hash"], hash=prev))
        session.execute(text("UPDATE audit_head SET hash = :h"), {"h": prev})
    result = _verify(app)
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == f"leaf {index} (seq {first}..{last}) does not match its rows"


def test_an_altered_node_store_fails(app: Flask, client: FlaskClient) -> None:
    writer = _writer(app, batch=2)
    scan_some(app, client, 4, "p_t")
    writer.drain()  # leaves 0 and 1: the level-1 node (1, 0) completes
    with runtime_of(app).db.session() as session:
        session.execute(text("UPDATE audit_nodes SET hash = :h WHERE level = 1 AND idx = 0"), {"h": "ab" * 32})
    result = _verify(app)
    assert result.exit_code == 1
    assert "node store (1, 0) differs from the tree recomputed from the rows" in result.output.splitlines()


def test_a_second_head_of_the_same_size_with_another_root_is_a_fork(app: Flask, client: FlaskClient) -> None:
    scan_some(app, client, 2, "p_t")
    drain(app)
    rt = runtime_of(app)
    with rt.db.session() as session:
        honest = tree_store.latest_head(session)
        assert honest is not None
        forged = sign_tree_head(rt.keys.get(), tree_size=honest.tree_size, root_hash=b"\x07" * 32,
                                now=honest.timestamp / 1000 + 1)  # validly signed, with the service's key
        session.execute(insert(AuditTreeHead).values(
            tree_size=forged.tree_size, root_hash=forged.root_hash.hex(), timestamp=forged.timestamp,
            kid=forged.kid, signature=b64url_encode(forged.signature).decode()))
        ids = list(session.scalars(select(AuditTreeHead.id).order_by(AuditTreeHead.id)))
    result = _verify(app)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert f"tree head {ids[1]} (size {honest.tree_size}): root does not match the tree recomputed from the rows" in lines
    assert any(line.startswith(f"forked: tree heads {ids[0]} and {ids[1]}: ") for line in lines), lines


def test_a_head_with_a_bad_signature_fails(app: Flask, client: FlaskClient) -> None:
    scan_some(app, client, 1, "p_t")
    drain(app)
    with runtime_of(app).db.session() as session:
        session.execute(update(AuditTreeHead).values(timestamp=AuditTreeHead.timestamp + 1))
    result = _verify(app)
    assert result.exit_code == 1 and "tree head signature does not verify" in result.output


def test_old_heads_still_verify_after_their_key_left_the_jwks(app: Flask, client: FlaskClient) -> None:
    rt = runtime_of(app)
    scan_some(app, client, 2, prefix="p_old")
    drain(app)
    old_kid = rt.keys.get().current_kid
    store = KeyStore(rt.settings.resolved_keys_dir, retire_after_seconds=0)
    store.rotate()
    store.rotate()  # the first key's publication window (0 s) is over: pruned from the ring
    rt.keys.invalidate()
    assert old_kid not in [k["kid"] for k in client.get("/.well-known/jwks.json").get_json()["keys"]]
    scan_some(app, client, 2, prefix="p_new")
    drain(app)
    archived = [k["kid"] for k in client.get("/v1/audit/keys").get_json()["keys"]]
    assert archived == [old_kid, rt.keys.get().current_kid]
    result = _verify(app)
    assert result.exit_code == 0, result.output
    assert ", 2 signed heads, " in result.output
