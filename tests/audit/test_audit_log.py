"""The hash-chained audit log on a real, migrated database: tampering is found, appends from threads
and processes never fork the chain or leave a gap.

Each test runs on a SQLite file and on a throw-away PostgreSQL server (skipped, saying why, only
when no PostgreSQL binaries are installed; see ``tests/pg_support.py``).
"""
from __future__ import annotations

import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from app.audit import log as audit
from app.audit.models import AuditEntry, AuditHead
from app.db import Database

ROOT = Path(__file__).resolve().parents[2]


def _append(database: Database, n: int = 1, **overrides: Any) -> None:
    for i in range(n):
        fields: dict[str, Any] = {
            "actor_kind": "terminal", "actor_id": f"trm_{i % 3}", "action": "scan",
            "subject": f"pseud{i % 4}", "site": {"kind": "metro", "station": "五四广场"},
            "reason": "ok", "details": {"decision": "accept", "fare": {"amount_cents": 200 + i}}}
        fields.update(overrides)
        with database.session() as session:
            audit.append(session, **fields)


def _verify(database: Database) -> tuple[bool, int | None]:
    with database.session() as session:
        return audit.verify_chain(session)


def _sql(database: Database, statement: str, **params: Any) -> None:
    with database.session() as session:
        session.execute(text(statement), params)


def _seqs(database: Database) -> list[int]:
    with database.session() as session:
        return list(session.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)))


def test_empty_log_verifies(database: Database) -> None:
    assert _verify(database) == (True, None)


def test_chain_is_intact_after_many_appends(database: Database) -> None:
    _append(database, 250)
    assert _verify(database) == (True, None)
    with database.session() as session:
        rows = list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
        head = session.get(AuditHead, 1)
    assert [r.seq for r in rows] == list(range(1, 251))
    assert rows[0].prev_hash == audit.GENESIS_HASH
    assert all(later.prev_hash == earlier.hash for earlier, later in zip(rows, rows[1:]))
    assert head is not None and (head.seq, head.hash) == (250, rows[-1].hash)


@pytest.mark.parametrize(("column", "value"), [
    ("details", {"decision": "deny"}), ("subject", "someone-else"), ("actor_id", "trm_x"),
    ("action", "disclosure_read"), ("purpose", "edited"), ("reason", "replayed"),
    ("site", {"kind": "bus"}), ("at", datetime(2020, 1, 1, tzinfo=timezone.utc))])
def test_editing_any_field_of_a_row_is_detected(database: Database, column: str, value: Any) -> None:
    _append(database, 10)
    with database.session() as session:
        setattr(session.get(AuditEntry, 5), column, value)
    assert _verify(database) == (False, 5)


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(database: Database) -> None:
    _append(database, 10)
    with database.session() as session:
        row = session.get(AuditEntry, 5)
        assert row is not None
        row.details = {"decision": "deny"}
        session.flush()
        row.hash = audit.entry_hash({c: getattr(row, c) for c in (
            "seq", "at", "actor_kind", "actor_id", "action", "subject", "site", "purpose",
            "reason", "details", "prev_hash")})
    assert _verify(database) == (False, 6)


def test_a_deleted_row_is_detected(database: Database) -> None:
    _append(database, 10)
    _sql(database, "DELETE FROM audit_log WHERE seq = 7")
    assert _verify(database) == (False, 7)


def test_rows_cut_off_the_end_are_detected(database: Database) -> None:
    _append(database, 10)
    _sql(database, "DELETE FROM audit_log WHERE seq >= 9")
    assert _verify(database) == (False, 9)


def test_swapping_two_rows_contents_is_detected(database: Database) -> None:
    _append(database, 3)
    _append(database, 3, actor_id="trm_other", details={"decision": "deny"}, reason="expired")
    columns = ("at", "actor_kind", "actor_id", "action", "subject", "site", "purpose", "reason",
               "details", "prev_hash", "hash")
    with database.session() as session:
        three, four = session.get(AuditEntry, 3), session.get(AuditEntry, 4)
        values = {c: (getattr(three, c), getattr(four, c)) for c in columns}
        for column, (of_three, of_four) in values.items():
            setattr(three, column, of_four)
            setattr(four, column, of_three)
    assert _verify(database) == (False, 3)


def test_reordering_sequence_numbers_is_detected(database: Database) -> None:
    _append(database, 6)
    _sql(database, "UPDATE audit_log SET seq = -1 WHERE seq = 3")
    _sql(database, "UPDATE audit_log SET seq = 3 WHERE seq = 4")
    _sql(database, "UPDATE audit_log SET seq = 4 WHERE seq = -1")
    assert _verify(database) == (False, 3)


def test_a_rolled_back_append_leaves_no_gap(database: Database) -> None:
    _append(database, 2)
    with pytest.raises(RuntimeError):
        with database.session() as session:
            audit.append(session, actor_kind="system", actor_id="t", action="scan")
            raise RuntimeError("the caller's transaction fails after appending")
    _append(database, 1)
    assert _seqs(database) == [1, 2, 3]
    assert _verify(database) == (True, None)


def test_unknown_actor_kind_is_refused(database: Database) -> None:
    with database.session() as session, pytest.raises(ValueError):
        audit.append(session, actor_kind="robot", actor_id="r", action="scan")


def test_entries_for_a_subject_are_newest_first_and_page_by_seq(database: Database) -> None:
    _append(database, 12)  # subjects pseud0..pseud3 in turn
    with database.session() as session:
        first = audit.entries_for(session, "pseud1", limit=2)
        older = audit.entries_for(session, "pseud1", limit=5, before=first[-1].seq)
    assert [e.seq for e in first] == [10, 6] and [e.seq for e in older] == [2]


def test_concurrent_appends_from_8_threads_keep_a_gapless_valid_chain(database: Database) -> None:
    per_thread, threads = 40, 8
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            start.wait()
            _append(database, per_thread, actor_id=f"thread-{n}")
        except BaseException as exc:  # collected and asserted below
            failures.append(exc)

    running = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    assert failures == []
    assert _seqs(database) == list(range(1, per_thread * threads + 1))
    assert _verify(database) == (True, None)
    with database.session() as session:
        counts = dict(session.execute(select(AuditEntry.actor_id, func.count()).group_by(AuditEntry.actor_id)).all())
    assert counts == {f"thread-{n}": per_thread for n in range(threads)}


_PROCESS_APPENDER = """
import sys
from app.audit import log
from app.db import Database
database = Database(sys.argv[1])
for i in range(int(sys.argv[2])):
    with database.session() as session:
        log.append(session, actor_kind="terminal", actor_id=sys.argv[3], action="scan",
                   details={"i": i})
database.dispose()
"""


def test_concurrent_appends_from_several_processes_keep_a_gapless_valid_chain(database: Database) -> None:
    """Like gunicorn workers: separate processes, separate connections, one database file."""
    processes = [subprocess.Popen([sys.executable, "-c", _PROCESS_APPENDER, database.url, "30", f"proc-{n}"],
                                  cwd=ROOT) for n in range(4)]
    assert [p.wait(timeout=120) for p in processes] == [0, 0, 0, 0]
    assert _seqs(database) == list(range(1, 121))
    assert _verify(database) == (True, None)


def _scan_entry(record_id: str, i: int) -> dict[str, Any]:
    return {"record_id": record_id, "at": datetime(2026, 12, 1, 8, 0, i % 60, tzinfo=timezone.utc),
            "actor_kind": "terminal", "actor_id": "trm_1", "action": "scan", "subject": f"pseud{i}",
            "site": {"kind": "bus", "line": "321"}, "reason": "ok",
            "details": {"decision": "accept", "fare": {"amount_cents": 200, "category": "full"}}}


def test_batch_append_takes_one_contiguous_range_and_stores_each_record_once(database: Database) -> None:
    _append(database, 2)
    first = [_scan_entry(f"r{i:03d}", i) for i in range(5)]
    with database.session() as session:
        assert audit.append_batch(session, first + first[:2]) == (3, 7)  # repeats within the batch
    again = first[3:] + [_scan_entry(f"r{i:03d}", i) for i in range(5, 8)]
    with database.session() as session:
        assert audit.append_batch(session, again) == (8, 10)  # r003, r004 were stored already
    with database.session() as session:
        assert audit.append_batch(session, first) is None
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 10
    assert _verify(database) == (True, None)
