"""The audit tree's SQL store on SQLite and PostgreSQL: two writers draining one stream while
admin entries are appended one by one still give leaves that cover every row exactly once, and a
tree, node store and heads that ``app.audit.auditor`` finds intact.

PostgreSQL runs on a throw-away server (``tests/pg_support.py``; skipped, saying why, without it).
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import redis
from sqlalchemy import select, text

from app.audit import log as audit
from app.audit.auditor import audit as check
from app.audit.models import AuditEntry, AuditLeaf
from app.db import Database
from app.records.stream import RECORD_VERSION
from app.records.writer import RecordWriter
from app.signing.keyring import KeyRingCache, KeyStore

STREAM = "cc:scans:tree-test"


@pytest.fixture
def keys(tmp_path: Path) -> KeyRingCache:
    store = KeyStore(tmp_path / "keys")
    store.generate("ES256")
    return KeyRingCache(store)


def _fill(client: "redis.Redis[bytes]", n: int) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        rec = {"v": RECORD_VERSION, "id": f"{i:024x}", "at": time.time(), "sub": f"p{i % 7}", "jti": f"j{i}",
               "iss": "cc", "t": "trm_bus1", "k": "bus", "s": {"line": "321", "vehicle": "鲁B-10001"},
               "acc": {"fare": {"amount_cents": 200, "category": "full"}}}
        pipe.xadd(STREAM, {"rec": json.dumps(rec, ensure_ascii=False), "r": "ok"})
    pipe.execute()


def test_two_writers_and_admin_appends_leave_every_row_in_exactly_one_leaf(
        database: Database, keys: KeyRingCache, redis_client: "redis.Redis[bytes]") -> None:
    _fill(redis_client, 1200)
    writers = [RecordWriter(redis_client, database, stream=STREAM, batch=50, consumer=f"w{i}", keys=keys,
                            head_seconds=0) for i in range(2)]
    writers[0].ensure_group()

    def admin() -> None:
        for i in range(30):
            with database.session() as session:
                audit.append(session, actor_kind="admin", actor_id="adm", action="citizen_suspended",
                             subject=f"p{i}")

    threads = [threading.Thread(target=w.drain) for w in writers] + [threading.Thread(target=admin)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    writers[0].seal(force=True)
    with database.session() as session:
        leaves = list(session.execute(select(AuditLeaf.idx, AuditLeaf.first_seq, AuditLeaf.last_seq)
                                      .order_by(AuditLeaf.idx)))
        total = session.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1))
        report = check(session)
    assert total == 1230
    assert [leaf.idx for leaf in leaves] == list(range(len(leaves)))
    assert [seq for leaf in leaves for seq in range(leaf.first_seq, leaf.last_seq + 1)] == list(range(1, 1231))
    assert report.ok, report.problems
    assert report.heads >= 2 and report.unsealed == 0


def test_a_tampered_row_is_named_on_either_database(database: Database, keys: KeyRingCache,
                                                    redis_client: "redis.Redis[bytes]") -> None:
    _fill(redis_client, 20)
    RecordWriter(redis_client, database, stream=STREAM, batch=8, consumer="w", keys=keys).drain()
    with database.session() as session:
        session.execute(text("UPDATE audit_log SET reason = 'forged' WHERE seq = 10"))
    with database.session() as session:
        problems = check(session).problems
    assert "seq 10 in leaf 1 (seq 9..16): the row does not match its entry hash" in problems
    assert "leaf 1 (seq 9..16) does not match its rows" in problems
