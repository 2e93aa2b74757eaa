"""MemoryReplayStore: first use wins, records expire, pairs never collide, threads race fairly."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from app.codes.replay import MemoryReplayStore, replay_key

from codes_support import T0, FrozenClock


def test_first_claim_wins_and_later_ones_lose(clock: FrozenClock) -> None:
    store = MemoryReplayStore(clock)
    assert store.claim("cc", "jti000000001", T0 + 65) is True
    assert store.claim("cc", "jti000000001", T0 + 65) is False
    assert store.claim("cc", "jti000000001", T0 + 999) is False


def test_same_jti_from_another_issuer_is_another_code(clock: FrozenClock) -> None:
    store = MemoryReplayStore(clock)
    assert store.claim("cc", "jti000000001", T0 + 65)
    assert store.claim("qd", "jti000000001", T0 + 65)


def test_pairs_that_concatenate_alike_do_not_collide(clock: FrozenClock) -> None:
    store = MemoryReplayStore(clock)
    assert store.claim("a:b", "c", T0 + 65)
    assert store.claim("a", "b:c", T0 + 65)
    assert replay_key("p:", "a:b", "c") != replay_key("p:", "a", "b:c")


def test_record_is_kept_until_its_expiry_and_pruned_after(clock: FrozenClock) -> None:
    store = MemoryReplayStore(clock)
    store.claim("cc", "early0000001", T0 + 10)
    store.claim("cc", "late00000001", T0 + 100)
    clock.now = T0 + 10
    assert store.claim("cc", "early0000001", T0 + 10) is False  # still inside its lifetime
    clock.now = T0 + 11
    store.claim("cc", "other0000001", T0 + 200)  # any claim prunes what has expired
    assert len(store) == 2
    assert store.claim("cc", "early0000001", T0 + 200) is True  # expired record no longer counts


def test_out_of_order_expiries_are_honoured(clock: FrozenClock) -> None:
    store = MemoryReplayStore(clock)
    store.claim("cc", "long00000001", T0 + 100)
    store.claim("cc", "short0000001", T0 + 10)
    clock.now = T0 + 50
    assert store.claim("cc", "short0000001", T0 + 200) is True  # expired though behind a live one
    assert store.claim("cc", "long00000001", T0 + 200) is False


def test_sixteen_threads_racing_for_one_code_produce_one_winner() -> None:
    store = MemoryReplayStore(lambda: T0)
    for round_number in range(20):
        barrier = threading.Barrier(16)

        def contend(_: int, jti: str = f"race{round_number:08d}") -> bool:
            barrier.wait()
            return store.claim("cc", jti, T0 + 65)

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(contend, range(16)))
        assert results.count(True) == 1
