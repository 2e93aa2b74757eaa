"""The HTTP benchmark runs for a moment against a real pinned ``citycode serve`` and the bare
baseline, so it cannot rot; and its answer checks catch denies, so it cannot measure them."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Iterator

import pytest

from app.demo_service import _free_port
from loadtest import bench_http, openloop
from loadtest.http_targets import BareTarget, Checkout, CityCodeTarget, enrol

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("wrk") is None,
                       reason="wrk is not installed (Debian: apt-get install -y wrk)"),
    pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 or shutil.which("taskset") is None,
                       reason="needs taskset and two cores to pin server and client apart"),
]


def test_http_bench_runs_briefly_and_reports_every_figure(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out, affinity = tmp_path / "figures.json", os.sched_getaffinity(0)
    assert bench_http.main(["--seconds", "1", "--runs", "1", "--warmup", "0", "--json", str(out)]) == 0
    assert os.sched_getaffinity(0) == affinity  # pinned itself to the client core only meanwhile
    text = capsys.readouterr().out
    for row in ("hall terminal (core only)", "bus reader", "bare Flask POST", "`POST /v1/me/code`",
                "`GET /v1/me/code.png`", "| hall @ 50 % |", "| bus @ 80 % |", "| bare @ 80 % |"):
        assert row in text, text
    figures = json.loads(out.read_text())
    for runs in [*figures["closed"].values(), *figures["latency"].values()]:
        (run,) = runs
        assert run["unexpected"] == {} and run["ok"] > 0 and run["rate"] > 0
    assert figures["capacity"]["bare"] > figures["capacity"]["hall"] > 0
    pinning = figures["header"]["pinning"]
    assert "service worker pid" in pinning and "redis-server" in pinning and "on core 1" in pinning


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[bench_http.Bench]:
    checkout = Checkout.of(Path(sys.executable).with_name("citycode"))
    folder = tmp_path_factory.mktemp("bench-http")
    options = argparse.Namespace(connections=4, wrk_threads=1, client_core=1, latency_connections=4,
                                 expect=500.0)
    with CityCodeTarget(checkout, 0, 1) as svc, BareTarget(checkout, 0, _free_port(), folder / "bare.log") as bare:
        yield bench_http.Bench(options, checkout, svc, bare, enrol(svc), folder)


def test_codes_sent_twice_are_counted_as_replayed_denies_not_as_decisions(bench: bench_http.Bench) -> None:
    pool = bench.mint(5000)  # more than a second of decisions
    args = [str(pool), bench.actors.hall_token, "1"]
    first = bench.wrk(bench.svc, "verify.lua", args, 1)
    assert first["unexpected"] == {} and first["ok"] > 0 and first["exhausted"] == 0
    # Send again only codes the first run certainly used: it sent `ok` codes in order, starting at
    # the first or the second line (wrk's pre-connect request() may take the first), so lines
    # 2..ok were sent either way. A faster second run must not reach codes the first never sent.
    used = pool.read_text().split()[1:first["ok"]]
    pool.write_text("\n".join(used) + "\n")
    again = bench.wrk(bench.svc, "verify.lua", args, 1)
    assert again["ok"] == 0 and again["unexpected"].get("replayed", 0) > 0
    codes = pool.read_text().split()[1:]  # wrk calls request() once before it connects: never sent
    late = openloop.run(bench.svc.base_url, "/v1/verify", bench.actors.hall_token, codes, 50, 1, 4)
    assert late.ok == 0 and late.unexpected["replayed"] == 50


def test_a_pool_that_runs_out_is_reported_exhausted(bench: bench_http.Bench) -> None:
    pool = bench.mint(20)
    got = bench.wrk(bench.svc, "verify.lua", [str(pool), bench.actors.bus_token, "1"], 1)
    assert got["exhausted"] > 0 and got["unexpected"].get("replayed", 0) > 0


def test_a_terminal_token_that_is_not_one_is_counted_by_status(bench: bench_http.Bench) -> None:
    got = bench.wrk(bench.svc, "request.lua", ["POST", "/v1/me/code", "not-a-token", "201"], 1)
    assert got["ok"] == 0 and got["unexpected"].get("http_401", 0) > 0


def test_capacity_bench_runs_the_default_two_worker_service_briefly(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from loadtest import bench_capacity

    out = tmp_path / "capacity.json"
    assert bench_capacity.main(["--seconds", "1", "--runs", "1", "--warmup", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| hall |" in text and "| bus |" in text, text
    figures = json.loads(out.read_text())
    assert figures["header"]["processes"].count("pid") >= 4  # two workers, redis-server, the writer
    for path in ("hall", "bus"):
        (run,) = figures["latency"][path]
        assert run["unexpected"] == {} and run["ok"] > 0 and figures["capacity"][path] > 0
