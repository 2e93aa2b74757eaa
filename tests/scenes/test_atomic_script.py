"""The lean script call: one EVALSHA on a pooled connection, loading the script when the server
lost it, and ``Degraded`` — never an exception of Redis's own — when the server is gone."""
from __future__ import annotations

import pytest
import redis

from app.codes.errors import Degraded
from app.scenes.atomic import AtomicScript

_COUNT = "return {redis.call('INCRBY', KEYS[1], ARGV[1]), ARGV[2]}"


def test_script_runs_with_keys_and_args_and_answers_raw_replies(redis_client: "redis.Redis[bytes]") -> None:
    script = AtomicScript(redis_client, _COUNT, "test.count")
    assert script(["cc:test:atomic"], [2, "x"]) == [2, b"x"]
    assert script(["cc:test:atomic"], [3, "y"]) == [5, b"y"]


def test_script_is_loaded_again_after_the_server_lost_its_scripts(redis_client: "redis.Redis[bytes]") -> None:
    script = AtomicScript(redis_client, _COUNT, "test.count")
    script(["cc:test:atomic"], [1, "a"])
    redis_client.script_flush()
    assert script(["cc:test:atomic"], [1, "b"]) == [2, b"b"]
    assert redis_client.script_exists(script.sha) == [True]


def test_script_error_is_degraded_and_leaves_the_connection_usable(redis_client: "redis.Redis[bytes]") -> None:
    broken = AtomicScript(redis_client, "return redis.call('NOSUCHCOMMAND')", "test.broken")
    with pytest.raises(Degraded):
        broken([], [])
    assert AtomicScript(redis_client, _COUNT, "test.count")(["cc:test:atomic"], [1, "c"]) == [1, b"c"]


def test_unreachable_server_is_degraded() -> None:
    client = redis.Redis.from_url("unix:///nonexistent/citycode-test.sock", socket_timeout=0.2)
    with pytest.raises(Degraded):
        AtomicScript(client, _COUNT, "test.count")(["k"], [1, "d"])
