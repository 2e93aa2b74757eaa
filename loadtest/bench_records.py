"""Scan records: the writer's durable records/s, its lag under a steady load, and the in-process
cost of a hall and a bus verify (Flask test client) — optionally interleaved with another source
tree (e.g. the commit before, unpacked with `git archive`) to compare before/after.

    .venv/bin/python -m loadtest.bench_records writer --records 100000 --batch 1000 [--as-served]
    .venv/bin/python -m loadtest.bench_records writer --rounds 3 --other-tree /tmp/cc-before
    .venv/bin/python -m loadtest.bench_records lag --rate 5000 --seconds 10
    .venv/bin/python -m loadtest.bench_records verify --rounds 5 --n 500 [--other-tree /tmp/cc-before]

Each part starts its own redis-server (embedded, AOF on as in production) and SQLite file in a
temporary folder. `writer` fills the stream with realistic records (one third each bus tap,
metro exit — priced at drain time — and scenic admission) and times `RecordWriter.drain()`; with
`--rounds`/`--other-tree` each round runs in a subprocess, interleaved with the other tree.
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


def _records(n: int, start: int = 0, realistic: bool = False) -> list[dict[str, str]]:
    """``n`` records. Their keys are sequential (ids, codes; 5,000 riders in turn), or with
    ``realistic`` as the city's: riders drawn from a million pseudonyms, random code ids, record
    ids of ``app.records.stream.new_record_id``'s format (milliseconds, then random) — every
    index but the record id's then takes a random page per record."""
    import hashlib

    from app.records.stream import RECORD_VERSION

    def noise(i: int, salt: bytes, size: int) -> str:
        return hashlib.blake2b(b"%d" % i, digest_size=size, person=salt).hexdigest()

    out = []
    for i in range(start, start + n):
        if realistic:
            keys = {"id": f"{time.time_ns() // 1_000_000:012x}{noise(i, b'id', 10)}",
                    "sub": "p" + noise(i * 7919 % 1_000_003, b"sub", 10), "jti": noise(i, b"jti", 11)}
        else:
            keys = {"id": f"{i:024x}", "sub": f"p{i % 5000:05d}", "jti": f"jti{i:012d}"}
        base: dict[str, Any] = {"v": RECORD_VERSION, "id": keys["id"], "at": time.time(),
                                "sub": keys["sub"], "jti": keys["jti"], "iss": "cc"}
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


def _fill(client: Any, stream: str, records: list[dict[str, str]], stream_of: Any = None) -> None:
    """Append ``records`` to ``stream`` (or to ``stream_of(fields)`` each)."""
    for chunk in range(0, len(records), 1000):
        pipe = client.pipeline(transaction=False)
        for fields in records[chunk:chunk + 1000]:
            pipe.xadd(stream if stream_of is None else stream_of(fields), fields)
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


def _writer_round(records: int, batch: int, as_served: bool = False, realistic: bool = False,
                  prefill: int = 0) -> dict[str, float]:
    """One timed drain of ``records`` fresh records; records/s and seconds. ``as_served``: the
    writer configured as ``python -m app.records`` runs it (a leaf and a signed head at most every
    ``CITYCODE_AUDIT_HEAD_SECONDS``, with a generated key) and the records spread over the rider
    shards' streams as the scripts append them; otherwise a leaf per batch, no heads, one stream.
    ``realistic``: see ``_records``; ``prefill``: records written (not timed) before, so the table
    and its indexes are that large."""
    from app.records.writer import RecordWriter

    with _Env() as env:
        options: dict[str, Any] = {}
        stream_of = None
        if as_served:
            from app.config import Settings
            from app.records.stream import shard_stream
            from app.signing.keyring import KeyRingCache, KeyStore
            from app.store.slots import shard_of

            keys_dir = Path(env.folder.name) / "keys"
            KeyStore(keys_dir).generate("ES256")
            seconds = Settings.audit_head_seconds  # the default of CITYCODE_AUDIT_HEAD_SECONDS
            options = {"keys": KeyRingCache(KeyStore(keys_dir)), "head_seconds": seconds,
                       "leaf_seconds": seconds}
            stream_of = lambda fields: shard_stream("cc:scans", shard_of(json.loads(fields["rec"])["sub"]))  # noqa: E731
        writer = RecordWriter(env.client, env.database, batch=batch, consumer="bench", **options)
        writer.ensure_group()
        _fill(env.client, writer.stream, _records(2000, 10**9, realistic), stream_of)  # warm-up: imports, caches
        writer.drain()
        for start in range(0, prefill, 50_000):
            _fill(env.client, writer.stream, _records(min(50_000, prefill - start), 2 * 10**9 + start, realistic),
                  stream_of)
            writer.drain()
        _fill(env.client, writer.stream, _records(records, 0, realistic), stream_of)
        redis_cpu = _cpu_seconds(env.redis.pid)
        started, cpu = time.perf_counter(), time.process_time()
        written = writer.drain()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        redis_cpu = _cpu_seconds(env.redis.pid) - redis_cpu
        return {"records": written, "seconds": elapsed, "per_second": written / elapsed,
                "writer_cpu_us": cpu / written * 1e6, "redis_cpu_us": redis_cpu / written * 1e6}


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU of process ``pid`` so far (Linux /proc), 0.0 when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_writer(records: int, batch: int, rounds: int = 1, other: str | None = None,
                 as_served: bool = False, realistic: bool = False, prefill: int = 0) -> None:
    setup = ("as served: leaf + signed head per second, shard streams" if as_served
             else "a leaf per batch, no heads, one stream")
    setup += (", the city's random keys" if realistic else ", sequential keys")
    setup += f", {prefill:,} rows before" if prefill else ""
    if rounds == 1 and other is None:
        result = _writer_round(records, batch, as_served, realistic, prefill)
        print(f"writer: {result['records']:.0f} records in {result['seconds']:.2f} s = "
              f"{result['per_second']:,.0f} records/s (batch {batch}, one transaction per batch; "
              f"{setup}); CPU per record: writer {result['writer_cpu_us']:.1f} µs, "
              f"redis-server {result['redis_cpu_us']:.1f} µs")
        return
    results = _interleaved(f"_writer_round({records}, {batch}, {as_served}, {realistic}, {prefill})", rounds, other)
    for name, rows in results.items():
        rates = [r["per_second"] for r in rows]
        cpu = statistics.median(r.get("writer_cpu_us", 0.0) for r in rows)
        redis_cpu = statistics.median(r.get("redis_cpu_us", 0.0) for r in rows)
        print(f"{name:>5} tree: writer {statistics.median(rates):,.0f} records/s median of {rounds} "
              f"interleaved rounds ({', '.join(f'{r:,.0f}' for r in rates)}; {records} records, "
              f"batch {batch}; {setup}); CPU per record, medians: writer {cpu:.1f} µs, "
              f"redis-server {redis_cpu:.1f} µs")


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


def _interleaved(call: str, rounds: int, other: str | None) -> dict[str, list[dict[str, float]]]:
    """``call`` (an expression on this module, returning a dict) once per round in a subprocess
    per tree, alternating between this tree and ``other``, so both see the same machine state."""
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
                                    f"print(json.dumps(bench.{call}))"],
                                   cwd=tree, env=env, capture_output=True, text=True, check=True)
            results[name].append(json.loads(probe.stdout.strip().splitlines()[-1]))
    return results


def bench_verify(rounds: int, n: int, other: str | None) -> None:
    results = _interleaved(f"_verify_round({n})", rounds, other)
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
    w.add_argument("--rounds", type=int, default=1)
    w.add_argument("--other-tree", default=None)
    w.add_argument("--as-served", action="store_true",
                   help="the writer as `python -m app.records` runs it, records in the shard streams")
    w.add_argument("--realistic", action="store_true",
                   help="the city's keys: a million riders, random code ids, time-ordered record ids")
    w.add_argument("--prefill", type=int, default=0, help="records written (not timed) before")
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
        bench_writer(args.records, args.batch, args.rounds, args.other_tree, args.as_served, args.realistic,
                     args.prefill)
    elif args.part == "lag":
        bench_lag(args.rate, args.seconds, args.batch)
    elif args.part == "verify":
        bench_verify(args.rounds, args.n, args.other_tree)
    else:
        _produce(args.url, args.rate, args.seconds)


if __name__ == "__main__":
    main()
