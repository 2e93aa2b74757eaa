"""RedisReplayStore against a real redis-server: first use, TTL, outage → degraded, restart, races."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import pytest
import redis

from app.codes.errors import ReplayUnavailable
from app.codes.mint import MintedCode
from app.codes.replay import RedisReplayStore
from app.codes.verify import Verifier
from app.store.embedded import EmbeddedRedis
from app.store.redis import connect
from app.store.slots import rider_tag

from codes_support import ISSUER


def test_first_claim_wins_in_redis(redis_client: "redis.Redis[bytes]") -> None:
    store = RedisReplayStore(redis_client)
    expires_at = time.time() + 65
    assert store.claim("cc", "jti000000001", expires_at) is True
    assert store.claim("cc", "jti000000001", expires_at) is False
    assert store.claim("qd", "jti000000001", expires_at) is True


def test_record_lives_until_expiry_plus_margin(redis_client: "redis.Redis[bytes]") -> None:
    store = RedisReplayStore(redis_client, margin_seconds=30)
    expires_at = time.time() + 65
    store.claim("cc", "jti000000001", expires_at)
    ttl = redis_client.ttl(store.key("cc", "jti000000001"))
    assert 65 + 30 - 3 <= ttl <= 65 + 30 + 1


def test_keys_are_prefixed_and_length_delimited(redis_client: "redis.Redis[bytes]") -> None:
    store = RedisReplayStore(redis_client, prefix="cc:replay:")
    assert store.key("cc", "abc", "p1") == f"cc:replay:{rider_tag('p1')}:2:cc:abc"
    expires_at = time.time() + 65
    assert store.claim("a:b", "c", expires_at) and store.claim("a", "b:c", expires_at)
    assert len(redis_client.keys("cc:replay:*")) == 2


def test_verify_uses_redis_and_denies_the_second_use(
        make_verifier: Callable[..., Verifier], issue: Callable[..., MintedCode],
        redis_client: "redis.Redis[bytes]") -> None:
    verifier = make_verifier(replay=RedisReplayStore(redis_client), clock=time.time)
    minted = issue(now=time.time())
    assert verifier.verify(minted.code).decision == "accept"
    assert verifier.verify(minted.code).reason == "replayed"
    tag = rider_tag(verifier.check(minted.code).claims.sub)  # type: ignore[union-attr]
    assert redis_client.exists(f"cc:replay:{tag}:{len(ISSUER)}:{ISSUER}:{minted.jti}") == 1


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "unix:///nonexistent/cc-redis.sock"])
def test_unreachable_redis_raises_replay_unavailable(url: str) -> None:
    client = connect(url)
    with pytest.raises(ReplayUnavailable):
        RedisReplayStore(client).claim("cc", "jti000000001", time.time() + 65)
    client.close()


def test_unreachable_redis_gives_degraded_fast_and_the_code_stays_usable(
        make_verifier: Callable[..., Verifier], issue: Callable[..., MintedCode],
        redis_client: "redis.Redis[bytes]") -> None:
    genuine = issue(now=time.time())
    down = connect("redis://127.0.0.1:1/0")
    start = time.perf_counter()
    decision = make_verifier(replay=RedisReplayStore(down), clock=time.time).verify(genuine.code)
    assert time.perf_counter() - start < 1.0
    assert (decision.decision, decision.reason) == ("deny", "degraded")
    assert decision.claims is not None and decision.claims.jti == genuine.jti
    down.close()
    # the same code, once Redis answers again, is still good for its one use
    up = make_verifier(replay=RedisReplayStore(redis_client), clock=time.time)
    assert up.verify(genuine.code).decision == "accept"
    assert up.verify(genuine.code).reason == "replayed"


@pytest.mark.slow
def test_stopped_redis_gives_degraded_and_a_restart_forgets_no_use(
        tmp_path: Path, make_verifier: Callable[..., Verifier],
        issue: Callable[..., MintedCode]) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    client = connect(server.start())
    verifier = make_verifier(replay=RedisReplayStore(client), clock=time.time)
    used, fresh = issue(now=time.time()), issue(now=time.time())
    try:
        assert verifier.verify(used.code).decision == "accept"
        server.stop()
        assert verifier.verify(fresh.code).reason == "degraded"
        assert verifier.verify(used.code).reason == "degraded"  # never a silent accept
        server.start()
        assert verifier.verify(used.code).reason == "replayed"  # graceful stop kept the record
        assert verifier.verify(fresh.code).decision == "accept"
    finally:
        client.close()
        server.stop()


def test_sixteen_threads_racing_through_redis_produce_one_accept(
        make_verifier: Callable[..., Verifier], issue: Callable[..., MintedCode],
        redis_client: "redis.Redis[bytes]") -> None:
    verifier = make_verifier(replay=RedisReplayStore(redis_client), clock=time.time)
    for _ in range(20):
        code = issue(now=time.time()).code
        barrier = threading.Barrier(16)

        def contend(_: int) -> str:
            barrier.wait()
            return verifier.verify(code).reason

        with ThreadPoolExecutor(16) as pool:
            reasons = list(pool.map(contend, range(16)))
        assert reasons.count("ok") == 1
        assert reasons.count("replayed") == 15

