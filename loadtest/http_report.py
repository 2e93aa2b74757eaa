"""Print ``loadtest.bench_http``'s figures as Markdown tables, ready for BENCHMARKS.md: medians of
the runs, ratios to the bare endpoint as medians of per-round ratios (same run, same core), and
every run's own figure so the spread shows. A run with any answer other than the expected one
makes the report INVALID (exit status 1).

    python -m loadtest.http_report FIGURES.json   # a run saved with bench_http --json, again
"""
from __future__ import annotations

import statistics
from typing import Any

LABELS = {"hall": "`POST /v1/verify`, hall terminal (core only)", "bus": "`POST /v1/verify`, bus reader",
          "bare": "bare Flask POST (JSON in, JSON out)", "me_code": "`POST /v1/me/code`",
          "me_code_png": "`GET /v1/me/code.png`"}


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def _fmt(value: float | None, spec: str = ".0f", unit: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{unit}"


def _each(runs: list[dict[str, Any]], key: str, spec: str) -> str:
    return ", ".join(format(r[key], spec) for r in runs)


def _errors(runs: list[dict[str, Any]]) -> str:
    total = sum(sum(r.get("errors", {}).values()) + r.get("reconnects", 0) for r in runs)
    recycled = sum(1 for r in runs if r["recycled"])
    notes = [f"{total} socket errors/reconnects" if total else "", f"worker recycled in {recycled}" if recycled else ""]
    return ", ".join(n for n in notes if n) or "none"


def print_report(report: dict[str, Any]) -> int:
    header, closed, latency = report["header"], report["closed"], report["latency"]
    runs = len(closed["hall"])
    print(f"## bench_http — {header['date']}\n")
    print(f"- checkout: {header['checkout']}")
    print(f"- machine: {header['cpu']}, kernel {header['kernel']}; load average before "
          f"{header['load_before']}, after {header['load_after']}")
    print(f"- load generator: {header['wrk']} (closed loop) and loadtest.openloop (fixed rate)")
    print(f"- pinning: {header['pinning']}")
    print(f"- gunicorn, both servers: `--workers 1` and the rest of the checkout's "
          f"app/serving/gunicorn_conf.py: {header['gunicorn']}")
    print(f"- pool of fresh codes per run, minted in a median {header['mint_seconds_median']:.2f} s\n")
    print(f"| path | /s, median of {runs} | bare Flask POST /s, same rounds | ratio (median per round) "
          "| each run /s | wrk p50 / p99 at capacity | worker CPU per request | worker busy "
          "| redis-server (+ helpers) CPU | load generator CPU | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    bare = closed["bare"]
    for path, figures in closed.items():
        ratios = [f["rate"] / b["rate"] for f, b in zip(figures, bare) if b["rate"]]
        print(f"| {LABELS[path]} | **{_fmt(_median(figures, 'rate'))}** | {_fmt(_median(bare, 'rate'))} "
              f"| {'—' if path == 'bare' else f'{statistics.median(ratios):.3f}'} "
              f"| {_each(figures, 'rate', '.0f')} "
              f"| {_fmt(_median(figures, 'p50_ms'), '.1f')} / {_fmt(_median(figures, 'p99_ms'), '.1f')} ms "
              f"| {_fmt(_median(figures, 'server_cpu_ms'), '.2f', ' ms')} "
              f"| {_fmt(_median(figures, 'server_cpu_pct'), '.0f', ' %')} "
              f"| {_fmt(_median(figures, 'helpers_cpu_pct'), '.0f', ' %')} "
              f"| {_fmt(_median(figures, 'client_cpu_pct'), '.0f', ' %')} | {_errors(figures)} |")
    if latency:
        print(f"\nLatency at a fixed rate (open loop, from when each request was due; medians of {runs}; "
              "the client's worst lag is how late its own scheduler sent a request, which counts "
              "in the latency: large values mean the client core was busy):\n")
        print("| path @ load | target /s | achieved /s | p50 | p99 | max | each run's p99 "
              "| client CPU | client's worst lag | errors |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name, figures in latency.items():
            print(f"| {name} | {_fmt(_median(figures, 'target_rate'))} | {_fmt(_median(figures, 'rate'))} "
                  f"| {_fmt(_median(figures, 'p50_ms'), '.2f', ' ms')} | {_fmt(_median(figures, 'p99_ms'), '.2f', ' ms')} "
                  f"| {_fmt(_median(figures, 'max_ms'), '.1f', ' ms')} "
                  f"| {_each(figures, 'p99_ms', '.1f')} "
                  f"| {_fmt(_median(figures, 'client_cpu_pct'), '.0f', ' %')} "
                  f"| {_fmt(max(f['scheduler_lag_ms'] for f in figures), '.1f', ' ms')} | {_errors(figures)} |")
    wrong = [(name, i + 1, r["unexpected"]) for group in (closed, latency) for name, rs in group.items()
             for i, r in enumerate(rs) if r["unexpected"]]
    for name, number, unexpected in wrong:
        print(f"\nINVALID: {name} run {number} got answers other than accept: {unexpected}")
    return 1 if wrong else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m loadtest.http_report FIGURES.json``: print a run saved with ``--json`` again."""
    import argparse
    import json
    from pathlib import Path

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("figures", type=Path)
    return print_report(json.loads(parser.parse_args(argv).figures.read_text()))


if __name__ == "__main__":
    raise SystemExit(main())
