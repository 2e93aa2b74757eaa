"""Scan records: the writer's durable records/s, its lag under a steady load, and the in-process
cost of a hall and a bus verify (Flask test client) — optionally interleaved with another source
tree (e.g. the commit before, unpacked with `git archive`) to compare before/after.

    .venv/bin/python -m loadtest.bench_records writer --records 100000 --batch 1000
    .venv/bin/python -m loadtest.bench_records lag --rate 5000 --seconds 10
    .venv/bin/python -m loadtest.bench_records verify --rounds 5 --n 500 [--other-tree /tmp/cc-before]

Each part starts its own redis-server (embedded, AOF on as in production) and SQLite file in a
temporary folder. `writer` fills the stream with realistic records (one third each bus tap,
metro exit — priced at drain time — and scenic admission) and times `RecordWriter.drain()`.
`lag` appends records from a separate process at a fixed rate while the writer drains, sampling
its lag every 100 ms. `verify` runs rounds of n verifies per kind; with `--other-tree` each round
runs in a subprocess, alternating between the trees, so both see the same machine state.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _records(n: int, start: int = 0) -> list[dict[str, str]]:
    from app.records.stream import RECORD_VERSION

    out = []
    for i in range(start, start + n):
        base: dict[str, Any] = {"v": RECORD_VERSION, "id": f"{i:024x}", "at": time.time(),
                                "sub": f"p{i % 5000:05d}", "jti": f"jti{i:012d}", "iss": "cc"}
        if i % 3 == 0:
            rec = {**base, "t": "trm_bus1", "k": "bus", "s": {"line": "321", "vehicle": "鲁B-10001"},
                   "acc": {"fare": {"amount_cents": 200, "category": "full"}}}
            out.append({"rec": json.dumps(rec, ensure_ascii=False), "r": "ok"})
        elif i % 3 == 1:
            rec = {**base, "t": "trm_m1", "k": "metro", "s": {"station": "青岛站"}, "d": "exit",
                   "c": {"to": "青岛站", "ent": ["stu"]}}
            out.append({"rec": json.dumps(rec, ensure_ascii=False), "r": "ok", "from": "五四广场",
                        "entered_at": str(time.time() - 900)})
        else:
            rec = {**base, "t": "trm_s1", "k": "scenic", "s": {"spot": "laoshan"}, "c": {"spot": "laoshan"}}
            out.append({"rec": json.dumps(rec, ensure_ascii=False), "r": "ok", "remaining": "812"})
    return out


def _fill(client: Any, stream: str, records: list[dict[str, str]]) -> None:
    for chunk in range(0, len(records), 1000):
        pipe = client.pipeline(transaction=False)
        for fields in records[chunk:chunk + 1000]:
            pipe.xadd(stream, fields)
        pipe.execute()


class _Env:
    """A redis-server and a migrated SQLite file in a temporary folder."""

    def __enter__(self) -> "_Env":
        import redis

        from app import db
        from app.db import Database
        from app.store.embedded import EmbeddedRedis

        self.folder = tempfile.TemporaryDirectory(prefix="cc-bench-", dir="/tmp")
        self.redis = EmbeddedRedis(Path(self.folder.name) / "redis")
        self.url = self.redis.start()
        self.db_url = f"sqlite:///{self.folder.name}/bench.sqlite3"
        db.migrate(self.db_url)
        self.database = Database(self.db_url)
        self.client = redis.Redis.from_url(self.url, socket_timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.database.dispose()
        self.redis.stop()
        self.folder.cleanup()


def bench_writer(records: int, batch: int) -> None:
    from app.records.writer import RecordWriter

    with _Env() as env:
        writer = RecordWriter(env.client, env.database, batch=batch, consumer="bench")
        writer.ensure_group()
        _fill(env.client, writer.stream, _records(2000, start=10**9))  # warm-up: imports, caches
        writer.drain()
        _fill(env.client, writer.stream, _records(records))
        started = time.perf_counter()
        written = writer.drain()
        elapsed = time.perf_counter() - started
        print(f"writer: {written} records in {elapsed:.2f} s = {written / elapsed:,.0f} records/s "
              f"(batch {batch}, SQLite WAL synchronous=NORMAL, one transaction per batch)")


def bench_lag(rate: int, seconds: float, batch: int) -> None:
    import threading

    from app.records.lag import lag
    from app.records.writer import RecordWriter

    with _Env() as env:
        writer = RecordWriter(env.client, env.database, batch=batch, consumer="bench")
        writer.ensure_group()
        producer = subprocess.Popen([sys.executable, "-m", "loadtest.bench_records", "_produce",
                                     "--url", env.url, "--rate", str(rate), "--seconds", str(seconds)],
                                    cwd=ROOT)
        stop = threading.Event()
        samples: list[tuple[int, float]] = []

        def sample() -> None:
            while not stop.is_set():
                behind = lag(env.client, writer.stream)
                samples.append((behind.records, behind.oldest_seconds))
                time.sleep(0.1)

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.monotonic()
        written = 0
        while producer.poll() is None or env.client.xlen(writer.stream):
            written += writer.step()
        stop.set()
        sampler.join()
        elapsed = time.monotonic() - started
        pending = sorted(s[0] for s in samples)
        ages = sorted(s[1] for s in samples)
        print(f"lag at {rate:,}/s for {seconds:.0f} s: {written} written in {elapsed:.1f} s; pending "
              f"median {statistics.median(pending):.0f} max {pending[-1]}; oldest age median "
              f"{statistics.median(ages) * 1000:.0f} ms p99 {ages[int(len(ages) * .99)] * 1000:.0f} ms "
              f"max {ages[-1] * 1000:.0f} ms")


def _produce(url: str, rate: int, seconds: float) -> None:
    import redis

    from app.records.stream import DEFAULT_STREAM

    client = redis.Redis.from_url(url)
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < seconds:
        _fill(client, DEFAULT_STREAM, _records(per_tick, start=n))
        n += per_tick
        ahead = started + n / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)


def _verify_round(n: int) -> dict[str, float]:
    """n hall verifies and n bus verifies through the Flask test client; ms per verify."""
    from app import create_app
    from app import db as database
    from app.codes.mint import mint
    from app.config import Settings
    from app.registry.pii import PiiVault
    from app.signing.keyring import KeyStore
    from app.verification.issuing import ISSUER

    with _Env() as env:
        data = Path(env.folder.name) / "data"
        data.mkdir()
        settings = Settings(data_dir=data, redis_url=env.url, admin_token="cca_bench-admin-token-0123456789",
                            log_level="WARNING")
        database.migrate(settings.resolved_database_url)
        KeyStore(settings.resolved_keys_dir).generate("ES256")
        PiiVault.create_if_missing(settings.resolved_keys_dir)
        app = create_app(settings)
        client = app.test_client()
        admin = {"Authorization": f"Bearer {settings.admin_token}"}
        tokens = {}
        for kind, site in (("hall", {"hall": "city"}), ("bus", {"line": "321", "vehicle": "鲁B-10001"})):
            body = client.post("/v1/admin/terminals", headers=admin, json={"kind": kind, "site": site}).get_json()
            tokens[kind] = {"Authorization": f"Bearer {body['terminal_token']}"}
        ring = app.extensions["citycode"].keys.get()
        out = {}
        for kind in ("hall", "bus", "hall", "bus"):  # the first pass of each warms up
            codes = [mint(ring, issuer=ISSUER, subject=f"p{kind}{i:05d}", entitlements=[],
                          ttl_seconds=60, now=time.time()).code for i in range(n)]
            started = time.perf_counter()
            for code in codes:
                assert client.post("/v1/verify", headers=tokens[kind], json={"code": code}).status_code == 200
            out[kind] = (time.perf_counter() - started) * 1000 / n
        app.extensions["citycode"].close()
        return out


def bench_verify(rounds: int, n: int, other: str | None) -> None:
    trees = [("this", str(ROOT))] + ([("other", other)] if other else [])
    results: dict[str, list[dict[str, float]]] = {name: [] for name, _ in trees}
    for _ in range(rounds):
        for name, tree in trees:
            env = {**os.environ, "PYTHONPATH": tree, "CITYCODE_LOG_LEVEL": "WARNING"}
            # This file, loaded by path, so `app` comes from `tree` (the working directory).
            probe = subprocess.run([sys.executable, "-c",
                                    "import importlib.util, json; spec = importlib.util."
                                    f"spec_from_file_location('bench', {__file__!r}); "
                                    "bench = importlib.util.module_from_spec(spec); "
                                    "spec.loader.exec_module(bench); "
                                    f"print(json.dumps(bench._verify_round({n})))"],
                                   cwd=tree, env=env, capture_output=True, text=True, check=True)
            results[name].append(json.loads(probe.stdout.strip().splitlines()[-1]))
    for name, rows in results.items():
        hall = statistics.median(r["hall"] for r in rows)
        bus = statistics.median(r["bus"] for r in rows)
        print(f"{name:>5} tree: hall verify {hall:.3f} ms, bus verify {bus:.3f} ms "
              f"(median of {rounds} interleaved rounds of {n})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="part", required=True)
    w = sub.add_parser("writer")
    w.add_argument("--records", type=int, default=100_000)
    w.add_argument("--batch", type=int, default=1000)
    lg = sub.add_parser("lag")
    lg.add_argument("--rate", type=int, default=5000)
    lg.add_argument("--seconds", type=float, default=10)
    lg.add_argument("--batch", type=int, default=1000)
    v = sub.add_parser("verify")
    v.add_argument("--rounds", type=int, default=5)
    v.add_argument("--n", type=int, default=500)
    v.add_argument("--other-tree", default=None)
    p = sub.add_parser("_produce")
    p.add_argument("--url", required=True)
    p.add_argument("--rate", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args(argv)
    if args.part == "writer":
        bench_writer(args.records, args.batch)
    elif args.part == "lag":
        bench_lag(args.rate, args.seconds, args.batch)
    elif args.part == "verify":
        bench_verify(args.rounds, args.n, args.other_tree)
    else:
        _produce(args.url, args.rate, args.seconds)


if __name__ == "__main__":
    main()
