"""Benchmark the offline reader (``scanners.reader.Reader``) against a real ``citycode serve``:
offline decisions/s, QR image → decision latency, and tap upload records/s.

    python -m loadtest.bench_reader [--seconds 10] [--rounds 5] [--images 1000] [--records 20000]
                                    [--uploaders 4]

The service is started first (unpinned: its gunicorn workers and redis-server float over the
machine's cores); readers enrol against it for real, and codes are minted with ``app.codes.mint``
from the service's own key ring, whose JWKS the readers synced. Then this process pins itself to
one core, as ``bench_codes`` does.

1. Decisions: within each round, batches of raw ES256 checks, ``Verifier.check``, the core's
   ``Verifier.verify`` (in-memory replay), ``Reader.scan(offline=True)`` of a bus reader and a
   metro gate (WAL, ``synchronous=FULL``: one fsync per decision), a bus reader switched to
   ``synchronous=NORMAL`` (no fsync at commit) and a bare ``write``+``fsync`` of one page beside
   the readers' files alternate, so load changes hit them alike. Best of ``--rounds``, ratios
   also as the median per round.
2. Images: ``--images`` PNGs rendered by ``app.codes.qr`` (as ``GET /v1/me/code.png``), in chunks
   of 100 rendered just before use (codes live 60 s), decoded by ``scanners.decode`` and decided
   offline by the bus reader; decode and decide timed apart.
3. Upload: two bus readers each journal ``--records`` decisions (filled with ``synchronous=OFF``:
   set-up, not measured). One uploads through ``Reader.upload(batch)`` (end to end; the HTTP call
   timed apart from the reader's own work), the other's journal is POSTed raw as pre-encoded
   batches (the server's share). Then both again with every record a duplicate. Last (unless
   ``--uploaders 0``), ``--uploaders`` readers (default 4) upload ``--records`` between them at
   once, through ``Reader.upload`` and then as raw POSTs: the service's throughput when several
   readers come back online together (its 2 gthread workers × 4 threads take them in parallel).
"""
from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import secrets
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import requests

from app.codes import qr
from app.codes.mint import mint
from app.codes.replay import MemoryReplayStore
from app.codes.verify import Verifier
from app.demo_service import LocalService
from app.signing.keyring import KeyRing, KeyStore
from loadtest.bench_codes import _pin_to_one_core, _rate, _rate_over, _raw_check
from scanners.decode import decode_png, warm_up
from scanners.provision import CityApi
from scanners.reader import Reader

ENTITLEMENT_MIX = ((), ("stu",), ("sen",), (), ("dis", "hg"), ("sen", "dis", "sap", "hg"))
BUS_SITE = {"line": "321"}
WHERE = {"lat": 36.0671, "lon": 120.3826}  # a moving bus reports where it is


class Bench:
    """The service, its key ring, and readers enrolled against it."""

    def __init__(self, service: LocalService, folder: Path) -> None:
        self.service, self.folder = service, folder
        self.api = CityApi(service.base_url, service.admin_token)
        self.ring: KeyRing = KeyStore(service.data_dir / "keys").load()
        network = self.api.call("GET", "/v1/network/metro")
        self.station = network["lines"][0]["stations"][0]
        self.readers: list[Reader] = []

    def reader(self, kind: str, **site: str) -> Reader:
        terminal = self.api.register_terminal(kind, **site)
        made = Reader.enrol(self.folder / f"reader-{len(self.readers)}", self.service.base_url,
                            terminal.token, offline=True)
        self.readers.append(made)
        return made

    def codes(self, reader: Reader, count: int, subjects: list[str] | None = None) -> list[str]:
        """Fresh codes of distinct riders (or of ``subjects``), with a realistic entitlement mix."""
        now, subs = time.time(), subjects or [secrets.token_urlsafe(8) for _ in range(count)]
        mix = itertools.cycle(ENTITLEMENT_MIX)
        return [mint(self.ring, issuer=reader.verifier.issuer, subject=sub, entitlements=next(mix),
                     ttl_seconds=reader.verifier.max_ttl, now=now).code for sub in subs]

    def close(self) -> None:
        for reader in self.readers:
            reader.close()
        self.api.session.close()


def _fsync(fd: int) -> Callable[[], None]:
    """One 4 KiB page appended and fsynced: the floor under a durable commit on this disk."""
    page = b"\0" * 4096
    return lambda: (os.write(fd, page), os.fsync(fd))  # type: ignore[func-returns-value]


def _scanned(reader: Reader, codes: list[str], directions: list[str | None], seen: Counter[str]
             ) -> float:
    start = time.perf_counter()
    for code, direction in zip(codes, directions):
        seen[reader.scan(code, direction=direction, offline=True).reason] += 1
    return time.perf_counter() - start


def decisions(bench: Bench, seconds: float, rounds: int) -> dict[str, Any]:
    bus = bench.reader("bus", **BUS_SITE, vehicle="鲁B-90001")
    metro = bench.reader("metro", station=bench.station)
    bus_normal = bench.reader("bus", **BUS_SITE, vehicle="鲁B-90002")
    bus_normal.db.conn.execute("PRAGMA synchronous=NORMAL")
    core = Verifier(lambda: bus.material.keys, bus.material.state, MemoryReplayStore(),
                    bus.verifier.issuer, max_ttl=bus.verifier.max_ttl, leeway=bus.verifier.leeway)
    sample = bench.codes(bus, 60)
    fd = os.open(bench.folder / "fsync.probe", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        return _decisions(bench, seconds, rounds, bus, metro, bus_normal, core, sample, fd)
    finally:
        os.close(fd)


def _decisions(bench: Bench, seconds: float, rounds: int, bus: Reader, metro: Reader,
               bus_normal: Reader, core: Verifier, sample: list[str], fd: int) -> dict[str, Any]:
    raw, fsync = _raw_check(bench.ring, sample[0]), _fsync(fd)
    seen: Counter[str] = Counter()
    # Calibrate: one op of each kind, timed on a sample, sets the ops per round.
    per_op = (1 / _rate(raw, 200) + 2 / _rate_over(sample[:20], bus.verifier.check)
              + _scanned(bus, sample[20:40], [None] * 20, seen) / 20 * 2
              + _scanned(bus_normal, sample[40:60], [None] * 20, seen) / 20 + 1 / _rate(fsync, 20))
    n = max(10, int(seconds / rounds / (1.2 * per_op)))
    batch = min(100, n)
    names = ("raw", "check", "verify_mem", "bus", "metro", "bus_normal", "fsync")
    results: dict[str, list[float]] = {k: [] for k in names}
    per_round: dict[str, list[float]] = {k: [] for k in ("check", "verify_mem", "bus", "metro")}
    split: dict[str, list[float]] = {"check_ms": [], "commit_ms": [], "total_ms": []}
    for _ in range(rounds):
        pool_bus, pool_normal = bench.codes(bus, n), bench.codes(bus_normal, n)
        riders = [secrets.token_urlsafe(8) for _ in range(n // 2)]
        pool_metro = bench.codes(metro, 0, riders * 2)  # an entry then an exit per rider
        gc.collect()
        spent = dict.fromkeys(names, 0.0)
        for start in range(0, n - batch + 1, batch):
            part = slice(start, start + batch)
            spent["raw"] += batch / _rate(raw, batch)
            spent["check"] += batch / _rate_over(pool_bus[part], bus.verifier.check)
            spent["verify_mem"] += batch / _rate_over(pool_bus[part], core.verify)
            spent["bus"] += _scanned(bus, pool_bus[part], [None] * batch, seen)
            half = [*range(start // 2, (start + batch) // 2)]
            spent["metro"] += _scanned(metro, [pool_metro[i] for i in half] +
                                       [pool_metro[len(riders) + i] for i in half],
                                       ["entry"] * len(half) + ["exit"] * len(half), seen) \
                * batch / (2 * len(half) or 1)
            spent["bus_normal"] += _scanned(bus_normal, pool_normal[part], [None] * batch, seen)
            spent["fsync"] += batch / _rate(fsync, batch)
        done = n - n % batch
        for name in names:
            results[name].append(done / spent[name])
        for name in per_round:
            per_round[name].append(spent["raw"] / spent[name])
    probe = bench.codes(bus, 200)
    for code in probe:  # where a durable offline decision's time goes, from the reader's timings
        timings = bus.scan(code, offline=True).timings
        split["check_ms"].append(timings["check_ms"])
        split["commit_ms"].append(timings["commit_ms"])
        split["total_ms"].append(timings["total_ms"])
    wrong = {reason: count for reason, count in seen.items() if reason != "ok"}
    assert not wrong, f"offline decisions other than ok: {wrong}"
    best = {k: max(v) for k, v in results.items()}
    return {"n": n, "best": best, "ratios": {k: statistics.median(v) for k, v in per_round.items()},
            "split": {k: statistics.median(v) for k, v in split.items()}, "decided": sum(seen.values())}


def _percentiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:  # a tiny run (one batch): every percentile is that one value
        return dict.fromkeys(("p50", "p95", "p99", "max"), values[0])
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "max": max(values)}


def images(bench: Bench, count: int) -> dict[str, Any]:
    reader = bench.reader("bus", **BUS_SITE, vehicle="鲁B-90003")
    warm_up()
    decode_ms: list[float] = []
    decide_ms: list[float] = []
    total_ms: list[float] = []
    reasons: Counter[str] = Counter()
    for chunk in range(0, count, 100):  # rendered just before use: a code lives 60 s
        codes = bench.codes(reader, min(100, count - chunk))
        pictures = [(code, qr.png(code).content) for code in codes]
        gc.collect()
        for code, png in pictures:
            started = time.perf_counter()
            text = decode_png(png).text
            decoded = time.perf_counter()
            reasons[reader.scan(text, offline=True).reason] += 1
            done = time.perf_counter()
            assert text == code
            decode_ms.append((decoded - started) * 1000)
            decide_ms.append((done - decoded) * 1000)
            total_ms.append((done - started) * 1000)
    assert reasons == Counter(ok=count), reasons
    return {"count": count, "size": len(pictures[0][1]), "decode": _percentiles(decode_ms),
            "decide": _percentiles(decide_ms), "total": _percentiles(total_ms)}


def _fill(bench: Bench, reader: Reader, records: int) -> None:
    """Journal ``records`` offline bus decisions (no fsync: this is set-up)."""
    reader.db.conn.execute("PRAGMA synchronous=OFF")
    for start in range(0, records, 1000):
        for code in bench.codes(reader, min(1000, records - start)):
            assert reader.scan(code, offline=True, location=WHERE).reason == "ok"
    reader.db.conn.execute("PRAGMA synchronous=FULL")


def _timed_http(reader: Reader) -> list[float]:
    """Time every POST /v1/taps the reader's uploader makes (on this bench's own instance)."""
    spent: list[float] = []
    send = reader.client.taps

    def taps(records: list[Any], timeout: float) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            return send(records, timeout=timeout)
        finally:
            spent.append(time.perf_counter() - started)

    reader.client.taps = taps  # type: ignore[method-assign]
    return spent


def _reader_upload(reader: Reader, batch: int, http: list[float]) -> dict[str, Any]:
    http.clear()
    started = time.perf_counter()
    result = reader.upload(batch)
    elapsed = time.perf_counter() - started
    assert result.error is None and result.pending == 0, result
    sent = result.stored + result.duplicates
    return {"records": sent, "stored": result.stored, "duplicates": result.duplicates,
            "anomalies": len(result.anomalies), "per_s": sent / elapsed, "seconds": elapsed,
            "http_share": sum(http) / elapsed, "batch_ms": _percentiles([s * 1000 for s in http])}


def _raw_upload(url: str, token: str, bodies: list[tuple[int, bytes]]) -> dict[str, Any]:
    spent: list[float] = []
    totals: Counter[str] = Counter()
    with requests.Session() as session:
        session.headers.update({"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        for _, body in bodies:
            started = time.perf_counter()
            response = session.post(url, data=body, timeout=60)
            spent.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text[:500]
            totals.update({k: v for k, v in response.json().items() if k != "anomalies"})
    records = sum(count for count, _ in bodies)
    return {"records": records, **totals, "per_s": records / sum(spent),
            "batch_ms": _percentiles([s * 1000 for s in spent])}


def upload(bench: Bench, records: int, batch: int) -> dict[str, Any]:
    client_side = bench.reader("bus", **BUS_SITE, vehicle="鲁B-90004")
    server_side = bench.reader("bus", **BUS_SITE, vehicle="鲁B-90005")
    _fill(bench, client_side, records)
    _fill(bench, server_side, records)
    rows = server_side.journal.pending_batch(records)
    bodies = [(len(rows[i:i + batch]), json.dumps({"records": rows[i:i + batch]}).encode())
              for i in range(0, len(rows), batch)]
    token = server_side.db.get("terminal.token")
    url = bench.service.base_url + "/v1/taps"
    http = _timed_http(client_side)
    figures = {"reader": _reader_upload(client_side, batch, http), "raw": _raw_upload(url, token, bodies)}
    with client_side.db.transaction() as conn:  # the same journal once more: all duplicates
        conn.execute("UPDATE journal SET acked = 0")
    figures["reader_dup"] = _reader_upload(client_side, batch, http)
    figures["raw_dup"] = _raw_upload(url, token, bodies)
    assert figures["reader"]["stored"] == records and figures["reader_dup"]["duplicates"] == records
    assert figures["raw"]["stored"] == records and figures["raw_dup"]["duplicates"] == records
    return figures


def _at_once(jobs: list[Callable[[], Any]]) -> tuple[float, list[Any]]:
    """Run ``jobs`` in threads started together; wall time from the start to the last one done."""
    results: list[Any] = [None] * len(jobs)
    errors: list[BaseException] = []
    go = threading.Barrier(len(jobs) + 1)

    def work(index: int) -> None:
        go.wait()
        try:
            results[index] = jobs[index]()
        except BaseException as exc:  # noqa: BLE001  (re-raised in the caller's thread)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    go.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed, results


def concurrent(bench: Bench, records: int, batch: int, uploaders: int) -> dict[str, Any]:
    """``uploaders`` bus readers, ``records / uploaders`` journaled decisions each, all calling
    ``Reader.upload(batch)`` at once (one thread each, in this pinned process); then the same
    with raw POSTs of another ``uploaders`` readers' pre-encoded batches. Records/s is all
    records over the wall time until the last reader is done."""
    each = records // uploaders
    readers = [bench.reader("bus", **BUS_SITE, vehicle=f"鲁B-91{i:03d}") for i in range(uploaders)]
    raw = [bench.reader("bus", **BUS_SITE, vehicle=f"鲁B-92{i:03d}") for i in range(uploaders)]
    for reader in readers + raw:
        _fill(bench, reader, each)
    url = bench.service.base_url + "/v1/taps"
    posts = []
    for reader in raw:
        rows = reader.journal.pending_batch(each)
        bodies = [(len(rows[i:i + batch]), json.dumps({"records": rows[i:i + batch]}).encode())
                  for i in range(0, len(rows), batch)]
        posts.append((reader.db.get("terminal.token"), bodies))
    gc.collect()
    figures: dict[str, Any] = {"uploaders": uploaders}
    for key, jobs in (
            ("reader", [lambda r=r: r.upload(batch) for r in readers]),
            ("raw", [lambda t=t, b=b: _raw_upload(url, t, b) for t, b in posts])):
        elapsed, results = _at_once(jobs)
        if key == "reader":
            assert all(r.error is None and r.pending == 0 for r in results), results
            stored = sum(r.stored for r in results)
        else:
            stored = sum(r.get("stored", 0) for r in results)
        assert stored == each * uploaders, (key, stored)
        figures[key] = {"records": stored, "per_s": stored / elapsed, "seconds": elapsed}
    return figures


def report(d: dict[str, Any], im: dict[str, Any], up: dict[str, Any], batch: int) -> None:
    b, r = d["best"], d["ratios"]
    print(f"\n1. offline decisions ({d['n']} ops/round, {d['decided']} scans, all 'ok')")
    rows = [("raw cryptography ES256 verify", b["raw"], None), ("Verifier.check", b["check"], "check"),
            ("Verifier.verify, memory replay (core alone)", b["verify_mem"], "verify_mem"),
            ("Reader.scan offline, bus, synchronous=FULL", b["bus"], "bus"),
            ("Reader.scan offline, metro entry/exit, FULL", b["metro"], "metro"),
            ("Reader.scan offline, bus, synchronous=NORMAL", b["bus_normal"], None),
            ("bare write+fsync of 4 KiB, same disk", b["fsync"], None)]
    for label, rate, key in rows:
        ratio = f"   ÷ raw {rate / b['raw']:.3f} (median per round {r[key]:.3f})" if key else ""
        print(f"  {label:46s} {rate:9.0f} /s{ratio}")
    s = d["split"]
    print(f"  bus scan, median of 200: total {s['total_ms']:.3f} ms = check {s['check_ms']:.3f} ms"
          f" + commit {s['commit_ms']:.3f} ms (claim + fare + journal, one FULL-sync transaction)"
          f" + the rest {s['total_ms'] - s['check_ms'] - s['commit_ms']:.3f} ms")
    print(f"\n2. image -> decision ({im['count']} PNGs of {im['size']} bytes, ms)")
    for name in ("decode", "decide", "total"):
        p = im[name]
        print(f"  {name:7s} p50 {p['p50']:7.2f}   p95 {p['p95']:7.2f}   p99 {p['p99']:7.2f}"
              f"   max {p['max']:7.2f}" + ("   (goal p99 <= 20)" if name == "total" else ""))
    print(f"\n3. tap upload, batches of {batch} (goal >= 20,000 records/s)")
    for key, label in (("reader", "Reader.upload, new records"), ("raw", "raw POST, new records"),
                       ("reader_dup", "Reader.upload, all duplicates"),
                       ("raw_dup", "raw POST, all duplicates")):
        f, p = up[key], up[key]["batch_ms"]
        extra = f"   HTTP {f['http_share']:.0%} of the time" if "http_share" in f else ""
        print(f"  {label:30s} {f['records']:6d} rec {f['per_s']:8.0f} /s   per batch p50 "
              f"{p['p50']:6.1f} p95 {p['p95']:6.1f} max {p['max']:6.1f} ms{extra}")
    together = up.get("concurrent")
    if together:
        n = together["uploaders"]
        for key, label in (("reader", f"{n} x Reader.upload at once"), ("raw", f"{n} x raw POST at once")):
            f = together[key]
            print(f"  {label:30s} {f['records']:6d} rec {f['per_s']:8.0f} /s   (all records / wall time, "
                  f"{f['seconds']:.2f} s)")


def run(seconds: float, rounds: int, count: int, records: int, batch: int, uploaders: int = 0) -> None:
    with tempfile.TemporaryDirectory(prefix="cc-bench-reader-", dir="/tmp") as folder:
        with LocalService() as service:  # started before pinning: its processes float
            bench = Bench(service, Path(folder))
            try:
                pinning = _pin_to_one_core()
                print(f"reader bench: {rounds} rounds, {pinning}; service {service.base_url} "
                      f"(2 gthread workers, unpinned); readers in {folder}")
                d = decisions(bench, seconds, rounds)
                im = images(bench, count)
                up = upload(bench, records, batch)
                if uploaders:
                    up["concurrent"] = concurrent(bench, records, batch, uploaders)
            finally:
                bench.close()
    report(d, im, up, batch)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="approximate time of part 1")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=1000, help="PNG images decoded and decided")
    parser.add_argument("--records", type=int, default=20_000, help="journal records uploaded")
    parser.add_argument("--batch", type=int, default=500, help="records per upload batch")
    parser.add_argument("--uploaders", type=int, default=4,
                        help="readers uploading at once in part 3's concurrent run (0: skip it)")
    args = parser.parse_args(argv)
    run(args.seconds, args.rounds, args.images, args.records, args.batch, args.uploaders)


if __name__ == "__main__":
    main()
