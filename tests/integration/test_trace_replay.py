"""locust replays a tiny morning-rush trace against a real ``citycode serve``, headless, with CSV
and HTML reports, and no request fails: every answer is the one the trace expects."""
from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import pytest

from loadtest.traces.format import write
from loadtest.traces.generate import generate

REPO = Path(__file__).resolve().parents[2]
LOCUST = REPO / ".venv" / "bin" / "locust"
ENDPOINTS = {"POST /v1/me/code", "POST /v1/verify [bus]", "POST /v1/verify [metro entry]",
             "POST /v1/verify [metro exit]", "POST /v1/verify [scenic]",
             "POST /v1/halls/{hall}/tickets", "POST /v1/taps"}


@pytest.mark.slow
def test_tiny_trace_replayed_at_high_speed_has_no_failed_request(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    trace = tmp_path / "tiny.jsonl"
    write(generate(0.0003, seed=11), trace)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYCODE_")}
    env["CITYCODE_ADMIN_TOKEN"] = server.admin_token
    # 07:00–09:00 at 720× is ten seconds of replay (after a few seconds of set-up).
    run = subprocess.run(
        [str(LOCUST), "-f", str(REPO / "loadtest" / "locustfile.py"), "--headless", "--only-summary",
         "--host", server.base_url, "--trace", str(trace), "--speed", "720", "--until", "7200",
         "--csv", str(tmp_path / "run"), "--html", str(tmp_path / "run.html"), "-t", "150s"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False)
    tail = (run.stdout + run.stderr)[-4000:]
    assert run.returncode == 0, tail
    with open(tmp_path / "run_stats.csv", newline="") as stats:
        rows = {row["Name"]: row for row in csv.DictReader(stats)}
    assert ENDPOINTS <= set(rows), tail
    assert {name: int(rows[name]["Failure Count"]) for name in ENDPOINTS} == dict.fromkeys(ENDPOINTS, 0)
    assert int(rows["Aggregated"]["Failure Count"]) == 0 and int(rows["Aggregated"]["Request Count"]) > 300
    output = run.stdout + run.stderr
    assert "replay: " in output and "unexpected outcome" not in output, tail
    assert (tmp_path / "run.html").stat().st_size > 10_000
