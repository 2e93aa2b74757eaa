"""Uploading the journal to POST /v1/taps (the real endpoint of the served app): batches in seq
order, acknowledgement only after a 200, a resent journal stored once, a refused batch reported
and kept rather than retried forever."""
from __future__ import annotations

from pathlib import Path


def _decisions(city, reader, n: int) -> list[int]:
    return [reader.scan(city.code(city.citizen()[1]), direction="exit", offline=True).seq
            for _ in range(n)]


def _gate(city, tmp_path: Path):
    return city.reader(tmp_path / "gate", "metro", {"station": "五四广场"})


def test_upload_sends_pending_records_in_batches_and_acknowledges_them(city, tmp_path: Path) -> None:
    gate = _gate(city, tmp_path)
    assert _decisions(city, gate, 7) == list(range(1, 8))
    result = gate.upload(batch_size=3)
    assert (result.error, result.batches, result.stored, result.duplicates) == (None, 3, 7, 0)
    assert result.acknowledged == 7 and gate.pending() == 0
    assert gate.upload().sent == 0


def test_same_journal_sent_again_after_a_lost_acknowledgement_is_stored_once(city, tmp_path: Path) -> None:
    gate = _gate(city, tmp_path)
    _decisions(city, gate, 5)
    assert gate.upload().stored == 5
    with gate.db.transaction() as conn:  # as if every 200 had been lost before it was recorded
        conn.execute("UPDATE journal SET acked = 0")
    again = gate.upload(batch_size=2)
    assert (again.stored, again.duplicates, again.pending) == (0, 5, 0)


def test_refused_batch_is_reported_kept_and_not_retried(city, tmp_path: Path) -> None:
    gate = _gate(city, tmp_path)
    _decisions(city, gate, 2)
    gate.journal.append({"jti": None, "sub": None, "scanned_at": 1.0, "decision": "accept",
                         "reason": "no_such_reason"})  # what a buggy reader might have written
    result = gate.upload()
    assert result.error and "422" in result.error and result.attempts == 1
    assert gate.pending() == 3
    assert gate.status()["upload_error"]["status"] == 422


def test_sync_prunes_acknowledged_rows_but_never_pending_ones_and_seqs_keep_growing(
        city, tmp_path: Path) -> None:
    gate = city.reader(tmp_path / "gate", "metro", {"station": "五四广场"}, journal_keep_acknowledged=2)
    _decisions(city, gate, 6)
    assert gate.upload().acknowledged == 6
    assert _decisions(city, gate, 2) == [7, 8]  # pending, newer than every acknowledged row
    assert gate.sync().ok
    assert gate.journal.seqs() == [5, 6, 7, 8] and gate.pending() == 2
    assert _decisions(city, gate, 1) == [9]
    assert gate.upload().stored == 3
