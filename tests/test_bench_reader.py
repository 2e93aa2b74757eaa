"""The reader benchmark runs for a moment against a real ``citycode serve``, so it cannot rot."""
from __future__ import annotations

import pytest

from loadtest import bench_reader

pytestmark = pytest.mark.slow


def test_reader_bench_runs_briefly_and_prints_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    bench_reader.main(["--seconds", "0.2", "--rounds", "1", "--images", "10", "--records", "60",
                       "--batch", "25"])
    out = capsys.readouterr().out
    for line in ("Reader.scan offline, bus, synchronous=FULL", "Reader.scan offline, metro entry/exit",
                 "bare write+fsync", "image -> decision (10 PNGs", "total   p50",
                 "Reader.upload, new records", "raw POST, all duplicates"):
        assert line in out, out
    assert "60 rec" in out
