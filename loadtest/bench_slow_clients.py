"""Slow clients against a real ``citycode serve`` (issue #9): ``POST /v1/verify`` latency unloaded,
then while 1,000 connections that sent a request line and never finish their headers are held
open, and ``/healthz/live`` polled on fresh connections all along.

    .venv/bin/python -m loadtest.bench_slow_clients [--seconds 30] [--half-open 1000] [--rate 100]
        [--workers 0] [--env CITYCODE_WORKER_CLASS=gthread] [--json out.json]

One ``citycode serve`` with its default settings (``--workers 0``: one per core), started fresh on
a free port; a hall terminal enrolled through the admin API; fresh codes minted per phase from the
service's key ring (``loadtest/targets/mint_pool.py``), so every answer must be an accept.

1. Unloaded: verify open loop at ``--rate`` for ``--seconds`` (latency from when each request was
   due, as ``loadtest.openloop``: stalls count), on ``--connections`` keep-alive connections.
2. Attacked: first ``--half-open`` connections (from a process of their own), each sending ``GET /healthz/live HTTP/1.1`` and
   one header line, then nothing. A connection the server closes (a header timeout) is opened
   again at once, so the count stays at ``--half-open`` for the whole phase, as an attacker would
   keep it; closes are counted. Then the verify client opens its connections (behind the attacker
   in the accept queue) and runs as in 1.

Any verify not answered within ``--timeout`` seconds counts as unanswered. The goal (exit 0):
every verify answered with an accept, every liveness probe answered 200, and the attacked p99
within 2x of the unloaded p99. ``--env`` passes settings to the server (e.g. the old model:
``CITYCODE_WORKER_CLASS=gthread``).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.demo_service import LocalService
from loadtest.openloop import Connection, OpenLoopResult, drive

MINTER = Path(__file__).with_name("targets") / "mint_pool.py"
HALF_OPEN_REQUEST = b"GET /healthz/live HTTP/1.1\r\nHost: gate\r\n"  # the blank line never comes


class Service(LocalService):
    """``citycode serve --workers N`` (0: its default) with extra settings in its environment."""

    def __init__(self, workers: int = 0, env: dict[str, str] | None = None) -> None:
        super().__init__(workers=workers)
        self.extra_env = dict(env or {})

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.extra_env}


def raise_open_file_limit() -> int:
    """The soft RLIMIT_NOFILE up to the hard one (this process holds thousands of sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def mint(svc: LocalService, count: int, folder: Path) -> list[str]:
    out = folder / "pool.txt"
    subprocess.run([sys.executable, str(MINTER), str(svc.data_dir / "keys"), str(count), str(out)],
                   check=True, capture_output=True, text=True)
    return out.read_text().split()


# -- the attacker -----------------------------------------------------------------------------
@dataclass
class HalfOpen:
    """Connections that sent a request line and one header and then nothing."""

    opened: int = 0
    closed_by_server: int = 0
    answers: Counter[str] = field(default_factory=Counter)  # first line of whatever the server sent
    connect_errors: Counter[str] = field(default_factory=Counter)
    live: int = 0


async def _one_half_open(host: str, port: int, state: HalfOpen, stop: asyncio.Event,
                         ready: asyncio.Event, target: int) -> None:
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            state.connect_errors[type(exc).__name__] += 1
            await asyncio.sleep(0.05)
            continue
        try:
            writer.write(HALF_OPEN_REQUEST)
            await writer.drain()
            state.opened += 1
            state.live += 1
            if state.live >= target:
                ready.set()
            reading = asyncio.ensure_future(reader.read(4096))
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if reading.done():
                state.closed_by_server += 1
                data = reading.result() if reading.exception() is None else b""
                state.answers[data.split(b"\r\n", 1)[0].decode("latin-1")[:40] or "(closed)"] += 1
            else:
                reading.cancel()
        except OSError as exc:
            state.connect_errors[type(exc).__name__] += 1
        finally:
            state.live -= 1
            writer.close()


async def hold_half_open(host: str, port: int, count: int, stop: asyncio.Event,
                         ready: asyncio.Event) -> HalfOpen:
    """Keep ``count`` half-open connections until ``stop``; ``ready`` is set once all are open."""
    state = HalfOpen()
    tasks = []
    for i in range(count):
        tasks.append(asyncio.create_task(_one_half_open(host, port, state, stop, ready, count)))
        if i % 100 == 99:
            await asyncio.sleep(0)  # let the first ones connect
    await asyncio.gather(*tasks)
    return state


# -- the gate ---------------------------------------------------------------------------------
def _verify_summary(result: OpenLoopResult) -> dict[str, Any]:
    lat = sorted(result.latencies_ms)
    cuts = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else [0.0] * 99
    return {"sent": len(lat) + result.unanswered, "ok": result.ok, "unanswered": result.unanswered,
            "unexpected": dict(result.unexpected), "reconnects": result.reconnects,
            "p50_ms": round(cuts[49], 2), "p99_ms": round(cuts[98], 2),
            "max_ms": round(lat[-1], 2) if lat else None}


async def probe_live(host: str, port: int, stop: asyncio.Event, timeout: float,
                     interval: float = 1.0) -> list[float | None]:
    """``GET /healthz/live`` on a fresh connection every ``interval`` s: each latency in ms, or
    None for a probe not answered 200 within ``timeout``."""
    found: list[float | None] = []
    while not stop.is_set():
        started = time.perf_counter()
        conn = Connection(host, port)
        try:
            status, _ = await asyncio.wait_for(
                conn.exchange(f"GET /healthz/live HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                              .encode()), timeout)
            found.append((time.perf_counter() - started) * 1000 if status == 200 else None)
        except (asyncio.TimeoutError, OSError, asyncio.IncompleteReadError):
            found.append(None)
        finally:
            conn.close()
        try:
            await asyncio.wait_for(stop.wait(), max(0.0, interval - (time.perf_counter() - started)))
        except asyncio.TimeoutError:
            pass
    return found


# -- the two phases ---------------------------------------------------------------------------
@dataclass
class Phase:
    verify: dict[str, Any]
    live: dict[str, Any]
    half_open: dict[str, Any] | None = None


def _live_summary(probes: list[float | None]) -> dict[str, Any]:
    answered = [p for p in probes if p is not None]
    return {"probes": len(probes), "answered": len(answered),
            "max_ms": round(max(answered), 2) if answered else None}


def _attack(host: str, port: int, count: int, ready: Any, stop: Any, out: Any) -> None:
    """The attacker, in a process of its own as it would be on a machine of its own: in the gate's
    event loop, its bursts (a thousand reconnects at each header timeout) would delay the gate's
    requests on the client side and count as server latency."""
    async def hold() -> HalfOpen:
        stopping, all_open = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(hold_half_open(host, port, count, stopping, all_open))
        while not stop.is_set():
            if all_open.is_set():
                ready.set()
            await asyncio.sleep(0.05)
        stopping.set()
        return await task

    raise_open_file_limit()
    state = asyncio.run(hold())
    out.put({"held": count, "opened": state.opened, "closed_by_server": state.closed_by_server,
             "server_said": dict(state.answers.most_common(5)), "connect_errors": dict(state.connect_errors)})


async def run_phase(host: str, port: int, token: str, codes: list[str], *, rate: float, seconds: float,
                    connections: int, timeout: float, half_open: int = 0) -> Phase:
    """One phase: ``half_open`` connections held (0: none) by another process while verifying and
    probing liveness."""
    loop = asyncio.get_running_loop()
    attacker = None
    if half_open:
        spawn = multiprocessing.get_context("spawn")
        ready, stop, out = spawn.Event(), spawn.Event(), spawn.Queue()
        attacker = spawn.Process(target=_attack, args=(host, port, half_open, ready, stop, out), daemon=True)
        attacker.start()
        if not await loop.run_in_executor(None, ready.wait, 60):
            stop.set()
            attacker.join(30)
            raise RuntimeError(f"could not open {half_open} half-open connections")
        await asyncio.sleep(0.5)  # let the server take them in
    live_stop = asyncio.Event()
    prober = asyncio.create_task(probe_live(host, port, live_stop, timeout))
    verified = await drive(host, port, "/v1/verify", token, codes, rate, seconds, connections,
                           timeout=timeout, warm=False)
    live_stop.set()
    probes = await prober
    figures = None
    if attacker is not None:
        stop.set()
        figures = await loop.run_in_executor(None, out.get, True, 60)
        attacker.join(30)
    return Phase(_verify_summary(verified), _live_summary(probes), figures)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from loadtest.http_targets import enrol, machine

    env = dict(item.split("=", 1) for item in args.env)
    host = "127.0.0.1"
    header: dict[str, Any] = {**machine(), "args": {k: str(v) for k, v in vars(args).items()},
                              "open_files": raise_open_file_limit()}
    phases: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cc-slow-", dir="/tmp") as folder, \
            Service(args.workers, env) as svc:
        token = enrol(svc).hall_token
        for name, held in (("unloaded", 0), ("half_open", args.half_open)):
            count = int(args.rate * args.seconds) + 4 * args.connections + 100
            codes = mint(svc, count, Path(folder))
            phase = asyncio.run(run_phase(host, svc.port, token, codes, rate=args.rate, seconds=args.seconds,
                                          connections=args.connections, timeout=args.timeout,
                                          half_open=held))
            phases[name] = {"verify": phase.verify, "live": phase.live, "half_open": phase.half_open}
            print(f"  {name:<10} {json.dumps(phases[name])}", file=sys.stderr, flush=True)
        header["serve_log_tail"] = svc.log_tail(5)
    header["load_after"] = "%.2f %.2f %.2f" % os.getloadavg()
    return {"header": header, **phases}


def verdict(report: dict[str, Any]) -> tuple[bool, list[str]]:
    """Whether the goal is met, and why not."""
    why: list[str] = []
    base, hit = report["unloaded"], report["half_open"]
    for name in ("unloaded", "half_open"):
        v, live = report[name]["verify"], report[name]["live"]
        if v["unanswered"] or v["unexpected"] or v["ok"] != v["sent"]:
            why.append(f"{name}: {v['unanswered']} unanswered, {v['unexpected']} not accepted of {v['sent']}")
        if live["answered"] != live["probes"]:
            why.append(f"{name}: /healthz/live answered {live['answered']} of {live['probes']}")
    if hit["verify"]["p99_ms"] > 2 * base["verify"]["p99_ms"]:
        why.append(f"p99 {hit['verify']['p99_ms']} ms under attack > 2 x {base['verify']['p99_ms']} ms")
    return not why, why


def print_report(report: dict[str, Any]) -> int:
    ok, why = verdict(report)
    h = report["header"]
    print(f"{h['date']}, {h['cpu']}, load {h['load_before']} -> {h['load_after']}; args {h['args']}")
    print()
    print("| phase | verifies sent | answered (accept) | unanswered | p50 ms | p99 ms | max ms "
          "| /healthz/live answered | half-open held / closed by server |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in ("unloaded", "half_open"):
        v, live, held = report[name]["verify"], report[name]["live"], report[name]["half_open"]
        attack = f"{held['held']} / {held['closed_by_server']}" if held else "—"
        print(f"| {name} | {v['sent']} | {v['ok']} | {v['unanswered']} | {v['p50_ms']} | {v['p99_ms']} "
              f"| {v['max_ms']} | {live['answered']} / {live['probes']} "
              f"| {attack} |")
    print()
    print("goal met: every verify answered, liveness answered, p99 within 2x" if ok
          else "GOAL NOT MET: " + "; ".join(why))
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="per phase, at most 45 (codes live 60 s)")
    parser.add_argument("--half-open", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="verifies per second")
    parser.add_argument("--connections", type=int, default=8, help="the verify client's keep-alive connections")
    parser.add_argument("--timeout", type=float, default=10.0, help="a verify later than this is unanswered")
    parser.add_argument("--workers", type=int, default=0, help="citycode serve --workers (0: its default)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for the server (repeatable)")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 45:
        parser.error("--seconds must be in (0, 45]")
    if any("=" not in item for item in args.env):
        parser.error("--env takes NAME=VALUE")
    report = measure(args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    return print_report(report)


if __name__ == "__main__":
    sys.exit(main())
