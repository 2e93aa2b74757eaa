"""Single-client latency of `POST /v1/verify` against a running server on THIS machine.

    CITYCODE_ADMIN_TOKEN=… .venv/bin/python -m loadtest.latency --host http://127.0.0.1:8000 [-n 200]

Enrols one citizen, registers a hall terminal (the core's decision only) and a bus reader, mints
2n codes, then sends them one by one on one keep-alive connection and prints the median and p90,
next to `GET /healthz/live` on the same connection (the HTTP floor).
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from urllib.parse import urlparse

import requests

from app.registry.resident_id import check_char

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _timed(call) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def _summary(name: str, millis: list[float]) -> str:
    ordered = sorted(millis)
    return f"{name:<28} median {statistics.median(ordered):6.2f} ms   p90 {ordered[int(len(ordered) * .9)]:6.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="http://127.0.0.1:8000")
    parser.add_argument("-n", type=int, default=200)
    args = parser.parse_args()
    if urlparse(args.host).hostname not in LOOPBACK:
        raise SystemExit("loopback addresses only")
    base, admin = args.host.rstrip("/"), {"Authorization": f"Bearer {os.environ['CITYCODE_ADMIN_TOKEN']}"}
    first17 = f"370202{random.randrange(1950, 2005)}0101{random.randrange(1000):03d}"
    with requests.Session() as http:
        citizen = http.post(f"{base}/v1/admin/citizens", headers=admin,
                            json={"name": "测试", "id_number": first17 + check_char(first17)})
        citizen.raise_for_status()
        app = {"Authorization": f"Bearer {citizen.json()['app_token']}"}
        readers = {}
        for name, body in (("verify, core only (hall)", {"kind": "hall", "site": {"hall": "city"}}),
                           ("verify, bus tap", {"kind": "bus", "site": {"line": "1", "vehicle": "L-1"}})):
            response = http.post(f"{base}/v1/admin/terminals", headers=admin, json=body)
            response.raise_for_status()
            readers[name] = {"Authorization": f"Bearer {response.json()['terminal_token']}"}
        for name, reader in readers.items():
            codes = [http.post(f"{base}/v1/me/code", headers=app).json()["code"] for _ in range(args.n)]
            print(_summary(name, [_timed(lambda c=c: http.post(f"{base}/v1/verify", headers=reader,
                                                               json={"code": c})) for c in codes]))
        print(_summary("GET /healthz/live", [_timed(lambda: http.get(f"{base}/healthz/live"))
                                             for _ in range(args.n)]))


if __name__ == "__main__":
    main()
