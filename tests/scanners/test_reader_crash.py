"""A reader process SIGKILLed mid-decision or mid-upload loses nothing and doubles nothing.

The reader runs in a child process (``python -c``) on a data dir enrolled by the test. To kill it
at a precise point, the child wraps one method (``Journal.append`` — inside the scan's open
transaction — or ``Journal.acknowledge`` — after the server stored a batch, before the reader
recorded it) to announce itself and hang; the parent then SIGKILLs it. A third test kills a
scanning loop at an arbitrary moment.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, sys, time
from pathlib import Path
from scanners import journal
from scanners.reader import Reader

data_dir, codes_file, mode, stop_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if mode == "decision":
    original = journal.Journal.append
    def append(self, record):
        seq = original(self, record)
        if seq == stop_at:
            print("HANG in-transaction", seq, flush=True)
            time.sleep(120)
        return seq
    journal.Journal.append = append
elif mode == "upload":
    def acknowledge(self, seqs):
        print("HANG stored-not-acknowledged", len(list(seqs)), flush=True)
        time.sleep(120)
    journal.Journal.acknowledge = acknowledge
reader = Reader.open(Path(data_dir), offline=True)
if mode == "upload":
    reader.upload(batch_size=stop_at)
else:
    for code in json.loads(Path(codes_file).read_text()):
        decision = reader.scan(code, direction="exit")
        print("DECIDED", decision.seq, decision.reason, flush=True)
print("DONE", flush=True)
"""


def _child(data_dir: Path, codes: list[str], mode: str, stop_at: int) -> subprocess.Popen[str]:
    codes_file = data_dir.parent / "codes.json"
    codes_file.write_text(json.dumps(codes))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(data_dir), str(codes_file), mode,
                             str(stop_at)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)


def _run_until(proc: subprocess.Popen[str], marker: str, *, lines_before_kill: int | None = None) -> list[str]:
    """Read the child's lines until ``marker`` (or that many lines), then SIGKILL it."""
    seen: list[str] = []
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            seen.append(line.strip())
            if line.startswith(marker) or (lines_before_kill and len(seen) >= lines_before_kill):
                break
        else:
            pytest.fail(f"child ended before {marker!r}: {seen[-5:]}")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
    return seen


def _codes(city, n: int) -> list[str]:
    return [city.code(city.citizen()[1]) for _ in range(n)]


def _decided(lines: list[str]) -> list[int]:
    return [int(line.split()[1]) for line in lines if line.startswith("DECIDED")]


def _integrity(data_dir: Path) -> str:
    with sqlite3.connect(data_dir / "reader.sqlite3") as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def test_reader_killed_mid_decision_keeps_every_answered_decision_and_no_half(city, tmp_path: Path) -> None:
    data_dir = tmp_path / "gate"
    city.reader(data_dir, "metro", {"station": "五四广场"}).close()
    codes = _codes(city, 12)
    lines = _run_until(_child(data_dir, codes, "decision", 10), "HANG")
    assert _decided(lines) == list(range(1, 10))
    assert _integrity(data_dir) == "ok"
    reader = city.reopen(data_dir, offline=True)
    assert reader.journal.seqs() == list(range(1, 10))  # every answered decision, nothing else
    assert all(reader.journal.record(seq)["decision"] == "accept" for seq in range(1, 10))
    # the 10th scan never committed: its code is unused and the next decision takes seq 10
    retried = reader.scan(codes[9], direction="exit")
    assert (retried.reason, retried.seq) == ("ok", 10)
    assert reader.scan(codes[0], direction="exit").reason == "replayed"


def test_reader_killed_at_an_arbitrary_moment_has_a_contiguous_journal(city, tmp_path: Path) -> None:
    data_dir = tmp_path / "gate"
    city.reader(data_dir, "metro", {"station": "五四广场"}).close()
    codes = _codes(city, 4) * 100  # mostly `replayed` denies: cheap, and journaled all the same
    lines = _run_until(_child(data_dir, codes, "loop", 0), "DONE", lines_before_kill=150)
    decided = _decided(lines)
    assert len(decided) >= 149
    reader = city.reopen(data_dir, offline=True)
    seqs = reader.journal.seqs()
    assert seqs == list(range(1, len(seqs) + 1)) and set(decided) <= set(seqs)
    assert len(seqs) - len(decided) <= 1  # at most the one answered as the kill landed
    assert reader.journal.last_seq() == len(seqs)


def test_reader_killed_mid_upload_resends_and_the_server_stores_each_record_once(city, tmp_path: Path) -> None:
    data_dir = tmp_path / "gate"
    gate = city.reader(data_dir, "metro", {"station": "五四广场"}, offline=True)
    for code in _codes(city, 25):
        gate.scan(code, direction="exit")
    gate.close()
    lines = _run_until(_child(data_dir, [], "upload", 10), "HANG")
    assert lines[-1] == "HANG stored-not-acknowledged 10"
    reader = city.reopen(data_dir)
    assert reader.pending() == 25  # the server's 200 was never recorded
    result = reader.upload(batch_size=10)
    assert (result.error, result.duplicates, result.stored) == (None, 10, 15)
    assert reader.pending() == 0 and reader.journal.seqs() == list(range(1, 26))
    assert reader.upload().sent == 0
    assert _stored_seqs(city, reader.terminal_id) == list(range(1, 26))  # each exactly once


def _stored_seqs(city, terminal_id: str) -> list[int]:
    from sqlalchemy import text

    with city.app.extensions["citycode"].db.session() as session:
        rows = session.execute(text("SELECT seq FROM taps WHERE terminal_id = :t ORDER BY seq"),
                               {"t": terminal_id})
        return [int(seq) for (seq,) in rows]
