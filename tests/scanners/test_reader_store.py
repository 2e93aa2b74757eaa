"""The reader's SQLite parts on their own: durability settings, replay cache, journal numbering,
trust material that refuses what it cannot understand."""
from __future__ import annotations

from pathlib import Path

import pytest

from app.codes.replay import ReplayStore
from scanners.journal import Journal
from scanners.local import LocalDB
from scanners.replay import SqliteReplayStore
from scanners.trust import TrustMaterial


@pytest.fixture
def db(tmp_path: Path):
    made = LocalDB.in_dir(tmp_path)
    yield made
    made.close()


def test_database_is_wal_with_full_sync(db: LocalDB) -> None:
    assert db.query("PRAGMA journal_mode")[0][0] == "wal"
    assert db.query("PRAGMA synchronous")[0][0] == 2  # FULL


def test_replay_store_is_the_cores_protocol_and_frees_a_code_after_its_end(db: LocalDB) -> None:
    now = [1000.0]
    store: ReplayStore = SqliteReplayStore(db, lambda: now[0], margin_seconds=30)
    assert store.claim("cc", "jti-aaaaaaaaaaaa", 1060) is True
    assert store.claim("cc", "jti-aaaaaaaaaaaa", 1060) is False
    assert store.claim("cc2", "jti-aaaaaaaaaaaa", 1060) is True  # another issuer's jti
    now[0] = 1091  # past expiry + margin: the code itself no longer verifies
    assert store.claim("cc", "jti-aaaaaaaaaaaa", 1150) is True


def test_replay_claim_rolls_back_with_the_scan_transaction(db: LocalDB) -> None:
    store = SqliteReplayStore(db, lambda: 1000.0)
    with pytest.raises(RuntimeError):
        with db.transaction():
            assert store.claim("cc", "jti-bbbbbbbbbbbb", 1060)
            raise RuntimeError("killed before commit")
    assert store.claim("cc", "jti-bbbbbbbbbbbb", 1060) is True


def test_replay_cache_survives_reopening_the_file(tmp_path: Path) -> None:
    first = LocalDB.in_dir(tmp_path)
    SqliteReplayStore(first, lambda: 1000.0).claim("cc", "jti-cccccccccccc", 1060)
    first.close()
    second = LocalDB.in_dir(tmp_path)
    try:
        assert SqliteReplayStore(second, lambda: 1000.0).claim("cc", "jti-cccccccccccc", 1060) is False
    finally:
        second.close()


def test_journal_never_reuses_a_seq_after_pruning_or_a_rollback(db: LocalDB) -> None:
    journal = Journal(db)
    assert [journal.append({"n": i}) for i in range(3)] == [1, 2, 3]
    journal.acknowledge([1, 2, 3])
    assert journal.prune_acknowledged(keep_last=0) == 3
    with pytest.raises(RuntimeError):
        with db.transaction():
            journal.append({"n": "lost"})
            raise RuntimeError("crash")
    assert journal.append({"n": 4}) == 4
    assert journal.seqs() == [4] and journal.pending() == 1


def test_acknowledged_rows_leave_the_pending_batch_in_seq_order(db: LocalDB) -> None:
    journal = Journal(db)
    for i in range(5):
        journal.append({"n": i})
    journal.acknowledge([2, 4])
    assert [r["seq"] for r in journal.pending_batch(10)] == [1, 3, 5]


def test_feed_page_with_an_unknown_kind_changes_nothing(db: LocalDB) -> None:
    trust = TrustMaterial(db)
    trust.apply_page([{"version": 1, "kind": "citizen_suspended", "id": "sub-a", "at": 1}], 1, full=True)
    with pytest.raises(ValueError):
        trust.apply_page([{"version": 2, "kind": "citizen_restored", "id": "sub-a", "at": 2},
                          {"version": 3, "kind": "mystery", "id": "x", "at": 3}], 3, full=False)
    assert trust.feed_version == 1 and trust.state.is_suspended("sub-a")
    assert TrustMaterial(db).state.is_suspended("sub-a")


def test_reader_library_imports_the_core_without_flask() -> None:
    import subprocess
    import sys

    probe = "import sys, scanners.reader; print('flask' in sys.modules, 'app.codes.verify' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=Path(__file__).resolve().parents[2],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]
