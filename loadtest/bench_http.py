"""Online throughput and latency through gunicorn: one pinned ``citycode serve`` worker against a
bare Flask POST endpoint under the same gunicorn settings, in the same run (issue #8, Benchmarks
items 2 and 3).

    .venv/bin/python -m loadtest.bench_http [--seconds 10] [--runs 3] [--connections 16]
        [--rate R ...] [--citycode /tmp/bench-head/.venv/bin/citycode] [--json out.json]

Both servers are started fresh, pinned with ``taskset -c 0`` (``--server-core``), one gunicorn
worker each with the threads, keep-alive and max_requests ``citycode serve`` uses (the baseline
copies every plain setting of the checkout's ``app/serving/gunicorn_conf.py``). The service's
other processes, started by its gunicorn master and so first on core 0 too — the embedded
redis-server, and a record writer where a checkout has one — are then moved to core 1
(``--helpers-core``), beside the load generator: the worker has core 0 to itself. This process,
wrk (Debian's ``wrk``, closed loop), the minting and the open-loop latency client run on core 1
(``--client-core``).

Each run of a ``POST /v1/verify`` path gets a pool of fresh codes minted just before it, with
the service's current key from its data dir, by the checkout's own interpreter
(``loadtest/targets/mint_pool.py``); random pseudonyms, so every bus tap is charged. Every answer
is checked (``loadtest/wrk/*.lua``): a run with any non-accept is reported as INVALID and the
command exits 1.

1. Capacity, closed loop (wrk, ``--connections``): per round, in this order, hall terminal
   (the core's decision only), bus reader, bare Flask POST, ``POST /v1/me/code`` and
   ``GET /v1/me/code.png`` with a citizen's app token. Medians of ``--runs`` rounds; ratios to
   the bare endpoint are medians of per-round ratios.
2. Latency at a fixed rate, open loop (``loadtest.openloop``; wrk has no constant-rate mode): hall
   and bus at 50 % and 80 % of their median capacity (or at each ``--rate``), the bare endpoint at
   the hall's rates. Latency runs from when a request was due, so stalls count.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from app.demo_service import _free_port
from loadtest import openloop
from loadtest.http_report import print_report
from loadtest.http_targets import (Actors, BareTarget, Checkout, CityCodeTarget, children_cpu, cores,
                                   cpu_seconds, enrol, machine, self_cpu)

WRK = Path(__file__).with_name("wrk")
MINTER = Path(__file__).with_name("targets") / "mint_pool.py"
MAX_SECONDS = 30  # a code lives 60 s: minting + a run must end well inside it
CLOSED_PATHS = ("hall", "bus", "bare", "me_code", "me_code_png")


class Bench:
    """The two running servers, the actors enrolled on the service, and one method per kind of run."""

    def __init__(self, args: argparse.Namespace, checkout: Checkout, svc: CityCodeTarget,
                 bare: BareTarget, actors: Actors, folder: Path) -> None:
        self.args, self.checkout, self.svc, self.bare, self.actors = args, checkout, svc, bare, actors
        self.folder = folder
        self.best: dict[str, float] = {}
        self.mint_seconds: list[float] = []

    # -- pieces ----------------------------------------------------------------------------
    def mint(self, count: int) -> Path:
        out = self.folder / "pool.txt"
        done = subprocess.run([str(self.checkout.python), str(MINTER), str(self.svc.data_dir / "keys"),
                               str(count), str(out)], capture_output=True, text=True, check=True,
                              cwd=self.checkout.root)
        self.mint_seconds.append(float(done.stdout.strip()))
        return out

    def _verifier(self, path: str) -> tuple[CityCodeTarget | BareTarget, str]:
        """Where a ``POST /v1/verify`` of ``path`` goes, and with which terminal's token."""
        if path == "bare":
            return self.bare, "bare"  # the baseline reads no token
        return self.svc, self.actors.hall_token if path == "hall" else self.actors.bus_token

    def _pool_size(self, path: str, seconds: float) -> int:
        expected = max(self.args.expect, 1.5 * self.best.get(path, 0.0))
        return int(seconds * expected) + 50 * self.args.connections

    def _measured(self, target: CityCodeTarget | BareTarget, command: Callable[[], dict[str, Any]]
                  ) -> dict[str, Any]:
        """Run ``command`` and add the server's CPU per request, redis-server's and this side's."""
        workers, helpers = target.worker_pids(), self.svc.helper_pids()
        before = {p: cpu_seconds(p) for p in workers + helpers}
        children_before = children_cpu()
        self_before, started = self_cpu(), time.perf_counter()
        figures = command()
        wall = time.perf_counter() - started
        recycled = target.worker_pids() != workers
        spent = sum(cpu_seconds(p) - before[p] for p in workers)
        figures.update(
            recycled=recycled,
            server_cpu_ms=None if recycled or not figures["requests"] else spent / figures["requests"] * 1000,
            server_cpu_pct=None if recycled else 100 * spent / wall,
            helpers_cpu_pct=100 * sum(cpu_seconds(p) - before[p] for p in helpers) / wall,
            client_cpu_pct=100 * (children_cpu() - children_before + self_cpu() - self_before) / wall)
        return figures

    def wrk(self, target: CityCodeTarget | BareTarget, script: str, script_args: list[str],
            seconds: float) -> dict[str, Any]:
        def command() -> dict[str, Any]:
            argv = ["taskset", "-c", str(self.args.client_core), "wrk", "-t", str(self.args.wrk_threads),
                    "-c", str(self.args.connections), "-d", f"{int(seconds)}s", "--timeout", "10s",
                    "-s", str(WRK / script), target.base_url, "--", *script_args]
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
            if done.returncode != 0 or line is None:
                raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-1500:]} {done.stderr[-1500:]}")
            raw = json.loads(line.removeprefix("BENCH_JSON "))
            lat = raw["latency_us"]
            reasons: dict[str, int] = {}
            for part in raw["reasons"]:
                for name, count in part.items():
                    reasons[name] = reasons.get(name, 0) + count
            duration = raw["duration_us"] / 1e6
            return {"requests": raw["requests"], "ok": raw["ok"], "rate": raw["ok"] / duration,
                    "unexpected": reasons, "exhausted": raw["exhausted"], "errors": raw["errors"],
                    "p50_ms": lat["p50"] / 1000, "p99_ms": lat["p99"] / 1000, "max_ms": lat["max"] / 1000}
        return self._measured(target, command)

    def closed(self, path: str, seconds: float) -> dict[str, Any]:
        """One closed-loop run of ``path``; a verify run whose pool ran out is redone, larger."""
        a = self.actors
        if path in ("me_code", "me_code_png"):
            method, url, status = (("POST", "/v1/me/code", "201") if path == "me_code"
                                   else ("GET", "/v1/me/code.png", "200"))
            return self.wrk(self.svc, "request.lua", [method, url, a.app_token, status], seconds)
        target, token = self._verifier(path)
        for _ in range(3):
            pool = self.mint(self._pool_size(path, seconds))
            figures = self.wrk(target, "verify.lua", [str(pool), token, str(self.args.wrk_threads)], seconds)
            if not figures["exhausted"] or path == "bare":  # the baseline does not care about reuse
                return figures
            self.best[path] = max(self.best.get(path, 0.0), figures["rate"] * 2)
        raise RuntimeError(f"{path}: the code pool ran out three times; pass a larger --expect")

    def open_loop(self, path: str, rate: float, seconds: float) -> dict[str, Any]:
        target, token = self._verifier(path)
        codes = self.mint(int(rate * seconds * 1.05) + 100 + 2 * self.args.latency_connections
                          ).read_text().split()

        def command() -> dict[str, Any]:
            got = openloop.run(target.base_url, "/v1/verify", token, codes, rate, seconds,
                               self.args.latency_connections)
            cuts = statistics.quantiles(got.latencies_ms, n=100, method="inclusive")
            return {"requests": len(got.latencies_ms), "ok": got.ok, "target_rate": rate,
                    "rate": got.achieved, "unexpected": dict(got.unexpected), "reconnects": got.reconnects,
                    "p50_ms": cuts[49], "p99_ms": cuts[98], "max_ms": max(got.latencies_ms),
                    "scheduler_lag_ms": got.late_start_ms}
        return self._measured(target, command)

    # -- the two phases ----------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        args = self.args
        results: dict[str, list[dict[str, Any]]] = {p: [] for p in CLOSED_PATHS}
        if args.warmup > 0:
            for path in CLOSED_PATHS:
                self.closed(path, args.warmup)
        for round_ in range(args.runs):
            for path in CLOSED_PATHS:
                figures = self.closed(path, args.seconds)
                results[path].append(figures)
                self.best[path] = max(self.best.get(path, 0.0), figures["rate"])
                _progress(f"round {round_ + 1} {path}", figures)
        capacity = {p: statistics.median(f["rate"] for f in results[p]) for p in CLOSED_PATHS}
        plan: list[tuple[str, str, float]] = []
        for label, share in _rate_labels(args.rate):
            plan.append(("hall", label, share if args.rate else share * capacity["hall"]))
            plan.append(("bus", label, share if args.rate else share * capacity["bus"]))
            plan.append(("bare", label, share if args.rate else share * capacity["hall"]))
        latency: dict[str, list[dict[str, Any]]] = {f"{p} @ {label}": [] for p, label, _ in plan}
        for round_ in range(args.runs if plan else 0):
            for path, label, rate in plan:
                figures = self.open_loop(path, rate, args.seconds)
                latency[f"{path} @ {label}"].append(figures)
                _progress(f"round {round_ + 1} {path} @ {label} ({rate:.0f}/s)", figures)
        return {"closed": results, "capacity": capacity, "latency": latency}


def _rate_labels(rates: list[float] | None) -> list[tuple[str, float]]:
    if rates:
        return [(f"{r:.0f}/s", r) for r in rates]
    return [("50 %", 0.5), ("80 %", 0.8)]


def _progress(what: str, figures: dict[str, Any]) -> None:
    flag = " INVALID: " + json.dumps(figures["unexpected"]) if figures["unexpected"] else ""
    print(f"  {what:<34} {figures['rate']:8.1f}/s  p50 {figures['p50_ms']:7.2f} ms  "
          f"p99 {figures['p99_ms']:7.2f} ms{' (worker recycled)' if figures['recycled'] else ''}{flag}",
          file=sys.stderr, flush=True)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Start both servers, run both phases, and return every figure with what they were run on."""
    checkout = Checkout.of(args.citycode.absolute())
    header = {**machine(), "checkout": f"{checkout.root} at {checkout.revision()}",
              "gunicorn": checkout.gunicorn_settings(), "args": {k: str(v) for k, v in vars(args).items()}}
    print(f"bench_http: {header['checkout']}; {header['cpu']}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="cc-bench-http-", dir="/tmp") as folder, \
            CityCodeTarget(checkout, args.server_core, args.helpers_core) as svc, \
            BareTarget(checkout, args.server_core, _free_port(), Path(folder) / "bare.log") as bare:
        actors = enrol(svc)
        header["pinning"] = (f"service worker {cores(svc.worker_pids())}; its other processes "
                             f"{cores(svc.helper_pids(), named=True)}; bare worker "
                             f"{cores(bare.worker_pids())}; wrk, minting and the open-loop client "
                             f"on core {args.client_core}")
        bench = Bench(args, checkout, svc, bare, actors, Path(folder))
        figures = bench.run()
    header["load_after"] = "%.2f %.2f %.2f" % os.getloadavg()
    header["mint_seconds_median"] = statistics.median(bench.mint_seconds) if bench.mint_seconds else 0
    return {"header": header, **figures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help=f"per run, at most {MAX_SECONDS}")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (closed loop)")
    parser.add_argument("--rate", type=float, action="append",
                        help="latency at this rate (req/s; repeatable) instead of 50 %% and 80 %% of capacity")
    parser.add_argument("--citycode", type=Path, default=Path(sys.executable).with_name("citycode"),
                        help="the citycode script of the venv under test (default: this venv's)")
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--client-core", type=int, default=1)
    parser.add_argument("--helpers-core", type=int, default=1,
                        help="where the service's embedded redis-server (and other non-worker "
                             "processes, e.g. a record writer) run")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--latency-connections", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2, help="seconds per path before round 1 (0: none)")
    parser.add_argument("--expect", type=float, default=3000.0,
                        help="the most decisions/s expected (sizes the first code pools)")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= MAX_SECONDS:
        parser.error(f"--seconds must be in (0, {MAX_SECONDS}]: codes live 60 s and are minted per run")
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} not found; on Debian: apt-get install -y {'wrk' if tool == 'wrk' else 'util-linux'}")
    affinity = os.sched_getaffinity(0)
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out
    os.sched_setaffinity(0, {args.client_core})
    try:
        report = measure(args)
    finally:  # leave a calling process (e.g. pytest) as it was
        os.sched_setaffinity(0, affinity)
        signal.signal(signal.SIGTERM, previous)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    return print_report(report)


if __name__ == "__main__":
    sys.exit(main())
