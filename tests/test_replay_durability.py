"""DESIGN.md: a Redis restart must never let a used code pass twice — not even after a crash."""
from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from app.codes.replay import RedisReplayStore
from app.store.embedded import EmbeddedRedis, find_redis_server


def test_used_code_stays_used_after_redis_is_killed_and_restarted() -> None:
    with tempfile.TemporaryDirectory(prefix="cc-crash-", dir="/tmp") as folder:
        server = EmbeddedRedis(Path(folder))
        client = redis.Redis.from_url(server.start())
        try:
            store = RedisReplayStore(client)
            jtis = [f"crashTestJti{n:04d}" for n in range(200)]
            assert all(store.claim("cc", jti, expires_at=4_000_000_000) for jti in jtis)
            os.kill(server.pid, signal.SIGKILL)  # no graceful shutdown, no final flush
            server.stop()
            client.close()
            client = redis.Redis.from_url(server.start())
            store = RedisReplayStore(client)
            assert not any(store.claim("cc", jti, expires_at=4_000_000_000) for jti in jtis)
        finally:
            client.close()
            server.stop()


def test_start_up_warns_when_an_external_redis_keeps_no_aof(redis_server: EmbeddedRedis, caplog) -> None:  # type: ignore[no-untyped-def]
    from app.serving.prepare import warn_if_not_durable

    with tempfile.TemporaryDirectory(prefix="cc-noaof-", dir="/tmp") as folder:
        sock = f"{folder}/redis.sock"
        proc = subprocess.Popen([find_redis_server(), "--port", "0", "--unixsocket", sock, "--dir", folder,
                                 "--appendonly", "no", "--save", ""], stdout=subprocess.DEVNULL)
        try:
            client = redis.Redis(unix_socket_path=sock)
            for _ in range(200):
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.02)
            client.close()
            with caplog.at_level("WARNING", logger="citycode.serve"):
                warn_if_not_durable(f"unix://{sock}")
            assert "appendonly=no" in caplog.text
        finally:
            proc.terminate()
            proc.wait(10)
    caplog.clear()
    with caplog.at_level("WARNING", logger="citycode.serve"):
        warn_if_not_durable(redis_server.url)  # the embedded one keeps an AOF
    assert "appendonly" not in caplog.text
