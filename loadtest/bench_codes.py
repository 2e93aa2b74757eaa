"""Benchmark the codes core on one core: mint, raw signature checks, ``Verifier.check``/``verify``
(memory and real Redis replay stores) and QR rendering (``app.codes.qr``, as the API serves it);
then device-bound codes (``CC2:`` and sealed ``CC3:``, ``app.codes.device``): size and QR version
of the formats, phone-side mint time, ``check`` with the certificate cached and uncached against
one raw P-256 verify in the same run (CC2 goals >= 0.8 and >= 0.4; CC3 adds one ECDH, an HKDF
and AES-CTR per code, and has no goal of its own).

    python -m loadtest.bench_codes [--seconds 10] [--rounds 5] [--algorithm ES256]

The machine is shared and noisy, so every figure is the best of ``--rounds`` rounds; within a
round, raw checks, ``check`` and ``verify`` alternate in batches of 100, and the overhead ratios
are given both from the best rates and as the median of per-round ratios.
"""
from __future__ import annotations

import argparse
import gc
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import PIL
import redis
import segno
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from app.codes import qr
from app.codes.device import (issue_certificate, issue_sealed_certificate, mint_device_code, mint_sealed_code,
                              reader_kid)
from app.codes.mint import mint
from app.codes.replay import MemoryReplayStore, RedisReplayStore
from app.codes.trust import StaticTrust
from app.codes.verify import Verifier
from app.codes.wire import b64url_decode
from app.signing.keyfiles import thumbprint_kid
from app.signing.keyring import KeyRing, KeyStore
from app.store.embedded import EmbeddedRedis

ISSUER = "cc"
SUBJECT = secrets.token_urlsafe(8)  # 11 characters, as app.registry.citizens makes pseudonyms
ENTITLEMENTS = ("sen", "dis", "sap", "hg")  # senior + disabled + scenic pass + health green
QR_LIBRARIES = {"png": f"segno {segno.__version__} symbol, Pillow {PIL.__version__} PNG",
                "svg": f"segno {segno.__version__}"}
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


def _qr_seconds(codes: list[str], render: Callable[[str], object]) -> float:
    """Seconds per code for ``render`` over distinct codes (each picks its own mask)."""
    start = time.perf_counter()
    for code in codes:
        render(code)
    return (time.perf_counter() - start) / len(codes)


def _pin_to_one_core(redis_pid: int | None = None) -> str:
    """Pin this process to its first CPU and move redis-server (``redis_pid``, if given) to the
    others, so the replay store's server never takes cycles from the core being measured."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[0]})
    except (AttributeError, OSError):
        return "not pinned"
    where = f"pinned to CPU {cpus[0]}"
    if redis_pid is None:
        return where
    if len(cpus) < 2:
        return where + "; redis-server shares it (one CPU only)"
    try:
        os.sched_setaffinity(redis_pid, set(cpus[1:]))
    except OSError:
        return where + "; redis-server could not be moved off it"
    return where + f"; redis-server on CPU {','.join(map(str, cpus[1:]))}"


def run(seconds: float, rounds: int, algorithm: str) -> None:
    with tempfile.TemporaryDirectory(prefix="cc-bench-") as folder:
        store = KeyStore(Path(folder) / "keys")
        store.generate(algorithm)
        ring = store.load()
        # redis-server runs on the other cores, like a real deployment's (own host or core).
        with EmbeddedRedis(Path(folder) / "redis") as server:
            client = redis.Redis.from_url(server.url or "")
            pinning = _pin_to_one_core(server.pid)
            _bench(ring, client, seconds, rounds, pinning)
            client.close()


def _bench(ring: KeyRing, client: "redis.Redis[bytes]", seconds: float, rounds: int,
           pinning: str) -> None:
    keys = ring.verification_keys

    def verifier(replay: object) -> Verifier:
        return Verifier(lambda: keys, StaticTrust(), replay,  # type: ignore[arg-type]
                        ISSUER, max_ttl=TTL)

    code = _mint(ring)
    raw = _raw_check(ring, code)
    checker = verifier(MemoryReplayStore())
    assert checker.check(code).decision == "accept"
    # Calibrate: a round mints 2.5 n codes and runs 5 n checks (raw, check, verify, redis ≈ 2),
    # about 8 n raw-check times in all.
    per_op = 1 / _rate(raw, 200)
    n = max(200, int(seconds / rounds / (8 * per_op)))
    mint_n = max(100, n // 2)
    results: dict[str, list[float]] = {
        k: [] for k in ("mint", "raw", "check", "verify_mem", "verify_redis")}
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
            codes = pool_mem[start:start + batch]  # fresh codes, as at a gate
            spent["check"] += batch / _rate_over(codes, checker.check)
            spent["verify_mem"] += batch / _rate_over(codes, memory.verify)
        done = n - n % batch
        for name, seconds_spent in spent.items():
            results[name].append(done / seconds_spent)
        ratios["check"].append(spent["raw"] / spent["check"])
        ratios["verify_mem"].append(spent["raw"] / spent["verify_mem"])
        results["verify_redis"].append(_rate_over(pool_redis, online.verify))
        assert memory.verify(pool_mem[0]).reason == "replayed"
        assert online.verify(pool_redis[0]).reason == "replayed"
    qr_codes = [_mint(ring) for _ in range(20)]
    png = min(_qr_seconds(qr_codes, qr.png) for _ in range(rounds))
    svg = min(_qr_seconds(qr_codes, qr.svg) for _ in range(rounds))
    version = qr.png(code).version
    assert version == qr.version_of(code)

    best = {k: max(v) for k, v in results.items()}
    print(f"codes bench: {ring.current.algorithm}, {rounds} rounds, {n} ops/round, {pinning}")
    print(f"code: {len(code)} chars ({'+'.join(ENTITLEMENTS)}, {len(SUBJECT)}-char sub)"
          f" -> QR version {version} at EC M (budget <= {qr.MAX_VERSION})")
    print(f"mint                      {best['mint']:9.0f} /s")
    print(f"raw cryptography verify   {best['raw']:9.0f} /s")
    print(f"Verifier.check            {best['check']:9.0f} /s")
    print(f"Verifier.verify (memory)  {best['verify_mem']:9.0f} /s")
    print(f"Verifier.verify (redis)   {best['verify_redis']:9.0f} /s")
    for name in ("check", "verify_mem"):
        print(f"ratio {name:10s}/raw     best-of {best[name] / best['raw']:.3f}"
              f"   median per-round {statistics.median(ratios[name]):.3f}   (goal >= 0.85)")
    print(f"QR PNG render             {png * 1000:9.2f} ms/code   ({QR_LIBRARIES['png']})")
    print(f"QR SVG render             {svg * 1000:9.2f} ms/code   ({QR_LIBRARIES['svg']})")
    _bench_device(code, seconds, rounds)


def _bench_device(jws_code: str, seconds: float, rounds: int) -> None:
    """Device-bound codes: one service key, one phone key and one reader key (P-256 all, as the
    formats pin)."""
    service, phone = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    reader = ec.generate_private_key(ec.SECP256R1())
    rkid = reader_kid(reader.public_key())
    held = {rkid: reader}
    kid = thumbprint_kid(service.public_key())  # as the key ring names keys (8 characters)
    keys = {kid: ("ES256", service.public_key())}
    now = time.time()
    cert = issue_certificate(service, kid, subject=SUBJECT, entitlements=ENTITLEMENTS,
                             device_key=phone.public_key(), now=now - 60, expires_at=now + 86400).certificate
    cert3 = issue_sealed_certificate(service, kid, subject=SUBJECT, entitlements=ENTITLEMENTS,
                                     device_key=phone.public_key(), now=now - 60,
                                     expires_at=now + 86400).certificate

    def fresh() -> str:
        return mint_device_code(cert, phone, now=time.time()).code

    def fresh_sealed() -> str:
        return mint_sealed_code(cert3, phone, rkid, reader.public_key(), now=time.time()).code

    def verifier(cache_size: int) -> Verifier:
        return Verifier(lambda: keys, StaticTrust(), MemoryReplayStore(), ISSUER, max_ttl=60,  # type: ignore[arg-type]
                        certificate_cache_size=cache_size, reader_keys=lambda: held)

    sample, sealed_sample = fresh(), fresh_sealed()
    message, der = b"x" * 200, service.sign(b"x" * 200, ec.ECDSA(hashes.SHA256()))
    ecdsa, public = ec.ECDSA(hashes.SHA256()), service.public_key()

    def raw() -> None:
        public.verify(der, message, ecdsa)

    per_op = 1 / _rate(raw, 200)
    n = max(200, int(seconds / rounds / (12 * per_op)))
    batch = 100
    measured = ("cached", "uncached", "sealed_cached", "sealed_uncached")
    best = {"raw": 0.0, "mint": 0.0, "sealed_mint": 0.0, **{name: 0.0 for name in measured}}
    ratios: dict[str, list[float]] = {name: [] for name in measured}
    for _ in range(rounds):
        cached, uncached = verifier(4096), verifier(0)
        pool, sealed_pool = [fresh() for _ in range(n)], [fresh_sealed() for _ in range(n)]
        assert cached.check(pool[0]).accepted and uncached.check(pool[0]).accepted
        assert cached.check(sealed_pool[0]).accepted and uncached.check(sealed_pool[0]).accepted
        gc.collect()
        best["mint"] = max(best["mint"], _rate(fresh, max(100, n // 4)))
        best["sealed_mint"] = max(best["sealed_mint"], _rate(fresh_sealed, max(100, n // 4)))
        spent = {"raw": 0.0, **{name: 0.0 for name in measured}}
        for start in range(0, n - batch + 1, batch):  # all five alternate: load changes hit them alike
            codes, sealed = pool[start:start + batch], sealed_pool[start:start + batch]
            spent["raw"] += batch / _rate(raw, batch)
            spent["cached"] += batch / _rate_over(codes, cached.check)
            spent["uncached"] += batch / _rate_over(codes, uncached.check)
            spent["sealed_cached"] += batch / _rate_over(sealed, cached.check)
            spent["sealed_uncached"] += batch / _rate_over(sealed, uncached.check)
        done = n - n % batch
        for name, used in spent.items():
            best[name] = max(best[name], done / used)
        for name in ratios:
            ratios[name].append(spent["raw"] / spent[name])
    jws_version, device_version = qr.version_of(jws_code), qr.version_of(sample)
    sealed_version = qr.version_of(sealed_sample)
    assert device_version == qr.png(sample).version and sealed_version == qr.png(sealed_sample).version
    print(f"device code: {len(sample)} chars (CC2: + base45 of {len(sample[4:]) * 2 // 3} bytes, certificate "
          f"{len(cert)} bytes) -> QR version {device_version} at EC M, alphanumeric mode")
    print(f"sealed code: {len(sealed_sample)} chars (CC3: + base45 of {len(sealed_sample[4:]) * 2 // 3} bytes, "
          f"certificate {len(cert3)} bytes) -> QR version {sealed_version} at EC M, alphanumeric mode")
    print(f"JWS code:    {len(jws_code)} chars -> QR version {jws_version} at EC M, byte mode")
    print(f"device mint (phone side, Python)  {best['mint']:9.0f} /s  ({1e6 / best['mint']:.0f} us)")
    print(f"sealed mint (phone side, Python)  {best['sealed_mint']:9.0f} /s  ({1e6 / best['sealed_mint']:.0f} us)")
    print(f"raw cryptography P-256 verify     {best['raw']:9.0f} /s")
    print(f"CC2 check, certificate cached     {best['cached']:9.0f} /s")
    print(f"CC2 check, certificate not cached {best['uncached']:9.0f} /s")
    print(f"CC3 check, certificate cached     {best['sealed_cached']:9.0f} /s")
    print(f"CC3 check, certificate not cached {best['sealed_uncached']:9.0f} /s")
    for name, goal in (("cached", " (goal >= 0.8)"), ("uncached", " (goal >= 0.4)"),
                       ("sealed_cached", ""), ("sealed_uncached", "")):
        label = ("CC3 " if name.startswith("sealed") else "CC2 ") + name.removeprefix("sealed_")
        print(f"ratio {label:12s}/raw  best-of {best[name] / best['raw']:.3f}"
              f"   median per-round {statistics.median(ratios[name]):.3f}  {goal}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="approximate total run time")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--algorithm", choices=("ES256", "EdDSA"), default="ES256")
    args = parser.parse_args(argv)
    run(args.seconds, args.rounds, args.algorithm)


if __name__ == "__main__":
    main()
