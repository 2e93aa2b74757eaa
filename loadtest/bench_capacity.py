"""The default two-core configuration's capacity and its latency at 80 % of it (issue #8,
Benchmarks item 2: ≥ 2,000 decisions/s with p99 ≤ 20 ms at 80 % of capacity).

    .venv/bin/python -m loadtest.bench_capacity [--seconds 10] [--runs 3] [--connections 32]

``citycode serve`` as deployed by default — one worker per core, its own redis-server and record
writer — runs unpinned on both cores, and so does the load generator (wrk for the closed-loop
capacity, the open-loop client for latency at 80 % of the median capacity, minting of the code
pools between runs): this machine has two cores, so the load generator's CPU is taken from the
service's, and the report says how much it took. Hall terminal (the core's decision only) and bus
reader, fresh codes per run, every answer checked (a run with any non-accept is INVALID, exit 1).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from loadtest.bench_http import Bench
from loadtest.http_targets import Checkout, CityCodeTarget, cores, enrol, machine

PATHS = ("hall", "bus")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    checkout = Checkout.of(args.citycode.absolute())
    header = {**machine(), "checkout": f"{checkout.root} at {checkout.revision()}",
              "args": {k: str(v) for k, v in vars(args).items()}}
    everywhere = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    args.client_core = everywhere  # wrk runs under `taskset -c <client_core>`
    with tempfile.TemporaryDirectory(prefix="cc-bench-capacity-", dir="/tmp") as folder, \
            CityCodeTarget(checkout, everywhere, everywhere, workers=0) as svc:
        actors = enrol(svc)
        header["processes"] = (f"workers {cores(svc.worker_pids())}; "
                               f"{cores(svc.helper_pids(), named=True)}; load generator on {everywhere}")
        bench = Bench(args, checkout, svc, None, actors, Path(folder))  # type: ignore[arg-type]
        closed: dict[str, list[dict[str, Any]]] = {p: [] for p in PATHS}
        for path in PATHS:
            bench.closed(path, args.warmup)
        for _ in range(args.runs):
            for path in PATHS:
                figures = bench.closed(path, args.seconds)
                closed[path].append(figures)
                bench.best[path] = max(bench.best.get(path, 0.0), figures["rate"])
                _line(f"{path} closed loop", figures)
        capacity = {p: statistics.median(f["rate"] for f in closed[p]) for p in PATHS}
        latency: dict[str, list[dict[str, Any]]] = {p: [] for p in PATHS}
        for _ in range(args.runs):
            for path in PATHS:
                figures = bench.open_loop(path, 0.8 * capacity[path], args.seconds)
                latency[path].append(figures)
                _line(f"{path} at 80 % ({0.8 * capacity[path]:.0f}/s)", figures)
    header["load_after"] = "%.2f %.2f %.2f" % os.getloadavg()
    return {"header": header, "capacity": capacity, "closed": closed, "latency": latency}


def _line(what: str, f: dict[str, Any]) -> None:
    flag = " INVALID: " + json.dumps(f["unexpected"]) if f["unexpected"] else ""
    print(f"  {what:<28} {f['rate']:8.1f}/s  p50 {f['p50_ms']:7.2f}  p99 {f['p99_ms']:7.2f} ms  "
          f"service {f['server_cpu_pct'] or 0:5.0f} % + {f['helpers_cpu_pct']:4.0f} % (redis, writer)  "
          f"load generator {f['client_cpu_pct']:4.0f} %{flag}", file=sys.stderr, flush=True)


def report(figures: dict[str, Any]) -> int:
    h = figures["header"]
    print(f"{h['date']}, {h['cpu']}, load {h['load_before']} → {h['load_after']}\n{h['checkout']}\n"
          f"{h['processes']}\n")
    print("| path | capacity /s (median) | p50 / p99 at 80 %, ms (median) | service CPU % | "
          "redis + writer CPU % | load generator CPU % |\n|---|---|---|---|---|---|")
    invalid = False
    for path in PATHS:
        runs, lat = figures["closed"][path], figures["latency"][path]
        invalid |= any(f["unexpected"] for f in runs + lat)
        med = lambda key, rows: statistics.median(r[key] or 0 for r in rows)  # noqa: E731
        print(f"| {path} | {figures['capacity'][path]:,.0f} | {med('p50_ms', lat):.1f} / "
              f"{med('p99_ms', lat):.1f} | {med('server_cpu_pct', runs):.0f} | "
              f"{med('helpers_cpu_pct', runs):.0f} | {med('client_cpu_pct', runs):.0f} |")
    print("\nCPU % of one core, medians of the closed-loop runs; 200 % is the whole machine.")
    return 1 if invalid else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (closed loop)")
    parser.add_argument("--latency-connections", type=int, default=64)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--expect", type=float, default=4000.0)
    parser.add_argument("--citycode", type=Path, default=Path(sys.executable).with_name("citycode"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 30:
        parser.error("--seconds must be in (0, 30]: codes live 60 s and are minted per run")
    figures = measure(args)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, default=str))
    return report(figures)


if __name__ == "__main__":
    sys.exit(main())
