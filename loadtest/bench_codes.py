"""Benchmark the codes core on one core: mint, raw signature checks, ``Verifier.check``/``verify``
(memory and real Redis replay stores) and QR rendering.

    python -m loadtest.bench_codes [--seconds 10] [--rounds 5] [--algorithm ES256]

The machine is shared and noisy, so every figure is the best of ``--rounds`` rounds; within a
round, raw checks, ``check`` and ``verify`` alternate in batches of 100, and the overhead ratios
are given both from the best rates and as the median of per-round ratios.
"""
from __future__ import annotations

import argparse
import gc
import io
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import qrcode
import qrcode.image.pil
import qrcode.image.svg
import redis
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from app.codes.mint import mint
from app.codes.replay import MemoryReplayStore, RedisReplayStore
from app.codes.trust import StaticTrust
from app.codes.verify import Verifier
from app.codes.wire import b64url_decode
from app.signing.keyring import KeyRing, KeyStore
from app.store.embedded import EmbeddedRedis

ISSUER = "cc"
SUBJECT = "p_7Hq2LmX9vKc4Rt"  # 16 characters: the long end of our pseudonyms
ENTITLEMENTS = ("student", "senior", "disabled", "scenic_pass")
TTL = 3600  # long enough that no code expires during a run


def _mint(ring: KeyRing) -> str:
    return mint(ring, issuer=ISSUER, subject=SUBJECT, entitlements=ENTITLEMENTS,
                ttl_seconds=TTL, now=time.time()).code


def _rate(operation: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        operation()
    return count / (time.perf_counter() - start)


def _rate_over(items: list[str], operation: Callable[[str], object]) -> float:
    start = time.perf_counter()
    for item in items:
        operation(item)
    return len(items) / (time.perf_counter() - start)


def _raw_check(ring: KeyRing, code: str) -> Callable[[], None]:
    """The bare library call the core wraps: one signature check, key and DER prepared once."""
    header, payload, signature = code.encode("ascii").split(b".")
    message, raw = header + b"." + payload, b64url_decode(signature)
    public_key = ring.current.public_key
    if ring.current.algorithm == "EdDSA":
        return lambda: public_key.verify(raw, message)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    ecdsa = ec.ECDSA(hashes.SHA256())
    return lambda: public_key.verify(der, message, ecdsa)


def _qr_seconds(code: str, factory: type, count: int) -> tuple[float, int]:
    start = time.perf_counter()
    version = 0
    for _ in range(count):
        qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4,
                           image_factory=factory)
        qr.add_data(code)
        qr.make(fit=True)
        qr.make_image().save(io.BytesIO())
        version = qr.version
    return (time.perf_counter() - start) / count, version


def _pin_to_one_core() -> str:
    try:
        cpu = sorted(os.sched_getaffinity(0))[0]
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    except (AttributeError, OSError):
        return "not pinned"


def run(seconds: float, rounds: int, algorithm: str) -> None:
    with tempfile.TemporaryDirectory(prefix="cc-bench-") as folder:
        store = KeyStore(Path(folder) / "keys")
        store.generate(algorithm)
        ring = store.load()
        # redis-server starts before pinning, so it runs on its own core, like a real deployment.
        with EmbeddedRedis(Path(folder) / "redis") as server:
            client = redis.Redis.from_url(server.url or "")
            pinning = _pin_to_one_core()
            _bench(ring, client, seconds, rounds, pinning)
            client.close()


def _bench(ring: KeyRing, client: "redis.Redis[bytes]", seconds: float, rounds: int,
           pinning: str) -> None:
    keys = ring.verification_keys

    def verifier(replay: object) -> Verifier:
        return Verifier(lambda: keys, StaticTrust(), replay, ISSUER, max_ttl=TTL)  # type: ignore[arg-type]

    code = _mint(ring)
    raw = _raw_check(ring, code)
    checker = verifier(MemoryReplayStore())
    assert checker.check(code).decision == "accept"
    # Calibrate: each measurement in a round gets about seconds / (rounds * 6) of wall time.
    slice_seconds = seconds / (rounds * 6)
    per_op = 1 / _rate(raw, 200)
    n = max(200, int(slice_seconds / per_op))
    mint_n = max(100, n // 2)
    results: dict[str, list[float]] = {k: [] for k in ("mint", "raw", "check", "verify_mem", "verify_redis")}
    ratios: dict[str, list[float]] = {"check": [], "verify_mem": []}
    batch = 100
    for _ in range(rounds):
        pool_mem = [_mint(ring) for _ in range(n)]
        pool_redis = [_mint(ring) for _ in range(n)]
        memory = verifier(MemoryReplayStore())
        online = verifier(RedisReplayStore(client))
        gc.collect()  # the garbage of minting the pools is not the verifier's to collect
        results["mint"].append(_rate(lambda: _mint(ring), mint_n))
        # raw, check and verify alternate in small batches, so load changes hit all three alike.
        spent = {"raw": 0.0, "check": 0.0, "verify_mem": 0.0}
        for start in range(0, n - batch + 1, batch):
            spent["raw"] += batch / _rate(raw, batch)
            spent["check"] += batch / _rate(lambda: checker.check(code), batch)
            spent["verify_mem"] += batch / _rate_over(pool_mem[start:start + batch], memory.verify)
        done = n - n % batch
        for name, seconds_spent in spent.items():
            results[name].append(done / seconds_spent)
        ratios["check"].append(spent["raw"] / spent["check"])
        ratios["verify_mem"].append(spent["raw"] / spent["verify_mem"])
        results["verify_redis"].append(_rate_over(pool_redis, online.verify))
        assert memory.verify(pool_mem[0]).reason == "replayed"
        assert online.verify(pool_redis[0]).reason == "replayed"
    png, version = min(_qr_seconds(code, qrcode.image.pil.PilImage, 20) for _ in range(rounds))
    svg, _ = min(_qr_seconds(code, qrcode.image.svg.SvgPathImage, 20) for _ in range(rounds))

    best = {k: max(v) for k, v in results.items()}
    print(f"codes bench: {ring.current.algorithm}, {rounds} rounds, {n} ops/round, {pinning}")
    print(f"code: {len(code)} chars ({len(ENTITLEMENTS)} entitlements, {len(SUBJECT)}-char sub)"
          f" -> QR version {version} at EC M")
    print(f"mint                      {best['mint']:9.0f} /s")
    print(f"raw cryptography verify   {best['raw']:9.0f} /s")
    print(f"Verifier.check            {best['check']:9.0f} /s")
    print(f"Verifier.verify (memory)  {best['verify_mem']:9.0f} /s")
    print(f"Verifier.verify (redis)   {best['verify_redis']:9.0f} /s")
    for name in ("check", "verify_mem"):
        print(f"ratio {name:10s}/raw     best-of {best[name] / best['raw']:.3f}"
              f"   median per-round {statistics.median(ratios[name]):.3f}   (goal >= 0.85)")
    print(f"QR PNG render             {png * 1000:9.2f} ms/code")
    print(f"QR SVG render             {svg * 1000:9.2f} ms/code")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="approximate total run time")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--algorithm", choices=("ES256", "EdDSA"), default="ES256")
    args = parser.parse_args(argv)
    run(args.seconds, args.rounds, args.algorithm)


if __name__ == "__main__":
    main()
