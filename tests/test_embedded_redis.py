"""Behaviour of app.store.embedded.EmbeddedRedis against a real redis-server binary."""
from __future__ import annotations

import os
import pathlib
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator

import pytest
import redis

from app.store.embedded import EmbeddedRedis, find_redis_server

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def short_dir(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    """A directory short enough that <dir>/data/redis.sock fits in a unix socket path."""
    if len(os.fsencode(str(tmp_path / "data" / "redis.sock"))) <= 100:
        yield tmp_path
        return
    d = pathlib.Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, decode_responses=True)


def _gone(pid: int) -> bool:
    """True if pid no longer runs (exited and reaped, or a zombie awaiting an init that never reaps)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        status = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return status.rsplit(")", 1)[1].split()[0] == "Z"


def test_find_redis_server_returns_an_executable() -> None:
    assert os.access(find_redis_server(), os.X_OK)


def test_starts_answers_ping_and_data_survives_restart(short_dir: pathlib.Path) -> None:
    data = short_dir / "data"
    with EmbeddedRedis(data) as server:
        assert server.url == f"unix://{data}/redis.sock?db=0"
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        client = _client(server.url)
        try:
            assert client.ping() is True
            client.set("city", "hangzhou")
        finally:
            client.close()

    with EmbeddedRedis(data) as server:
        client = _client(server.url)
        try:
            assert client.get("city") == "hangzhou"
        finally:
            client.close()


def test_stop_leaves_no_process_and_next_start_works(short_dir: pathlib.Path) -> None:
    data = short_dir / "data"
    server = EmbeddedRedis(data)
    server.start()
    pid = server.pid
    assert pid is not None
    server.stop()
    server.stop()  # idempotent
    assert server.pid is None and server.url is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not (data / "redis.sock").exists()
    assert (data / "appendonly.aof").exists()
    url = server.start()
    try:
        client = _client(url)
        try:
            assert client.ping() is True
        finally:
            client.close()
    finally:
        server.stop()


def test_second_instance_on_same_data_dir_is_refused(short_dir: pathlib.Path) -> None:
    data = short_dir / "data"
    with EmbeddedRedis(data) as first:
        with pytest.raises(RuntimeError, match="already in use by a running Redis"):
            EmbeddedRedis(data).start(timeout=5)
        client = _client(first.url)
        try:
            assert client.ping() is True  # the first one is untouched
        finally:
            client.close()


def test_stale_socket_file_is_removed_before_start(short_dir: pathlib.Path) -> None:
    data = short_dir / "data"
    data.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(data / "redis.sock"))  # leaves a socket file nobody listens on
    with EmbeddedRedis(data) as server:
        client = _client(server.url)
        try:
            assert client.ping() is True
        finally:
            client.close()


def test_server_that_exits_early_raises_with_log_tail(short_dir: pathlib.Path) -> None:
    server = EmbeddedRedis(short_dir / "data", executable="/bin/false")
    with pytest.raises(RuntimeError, match="exited early"):
        server.start(timeout=5)
    assert server.pid is None


def test_child_dies_when_parent_is_sigkilled(short_dir: pathlib.Path) -> None:
    script = textwrap.dedent("""
        import pathlib, sys, time
        from app.store.embedded import EmbeddedRedis
        server = EmbeddedRedis(pathlib.Path(sys.argv[1]))
        server.start()
        print(server.pid, flush=True)
        time.sleep(60)
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    redis_pid = None
    with subprocess.Popen([sys.executable, "-c", script, str(short_dir / "data")],
                          cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True) as parent:
        try:
            line = parent.stdout.readline()
            assert line.strip().isdigit(), f"parent printed {line!r}"
            redis_pid = int(line)
            assert not _gone(redis_pid)
        finally:
            parent.kill()
            parent.wait()
    try:
        deadline = time.monotonic() + 5
        while not _gone(redis_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(redis_pid), "redis-server outlived its SIGKILLed parent"
    finally:
        if redis_pid is not None and not _gone(redis_pid):
            os.kill(redis_pid, signal.SIGKILL)


def test_long_data_dir_falls_back_to_tcp_on_localhost(tmp_path: pathlib.Path) -> None:
    data = tmp_path / ("d" * 110)
    assert len(os.fsencode(str(data / "redis.sock"))) > 100
    with EmbeddedRedis(data) as server:
        assert server.url.startswith("redis://127.0.0.1:") and server.url.endswith("/0")
        client = _client(server.url)
        try:
            assert client.ping() is True
            client.set("k", "v")
            assert client.get("k") == "v"
        finally:
            client.close()
    assert not (data / "redis.sock").exists()


def test_supervisor_restarts_a_dead_server_with_its_data(short_dir) -> None:  # type: ignore[no-untyped-def]
    from app.store.supervisor import RedisSupervisor

    supervisor = RedisSupervisor(EmbeddedRedis(short_dir), restart_delay=0.1)
    url = supervisor.start()
    client = redis.Redis.from_url(url)
    try:
        client.set("cc:replay:2:cc:supervised000", 1)
        first = supervisor.embedded.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while supervisor.embedded.pid in (None, first) or not _answers(url):
            assert time.monotonic() < deadline, "not restarted"
            time.sleep(0.05)
        assert supervisor.embedded.url == url
        assert client.get("cc:replay:2:cc:supervised000") == b"1"
    finally:
        client.close()
        supervisor.stop()
    assert supervisor.embedded.pid is None


def _answers(url: str) -> bool:
    probe = redis.Redis.from_url(url, socket_connect_timeout=0.2)
    try:
        return bool(probe.ping())
    except redis.RedisError:
        return False
    finally:
        probe.close()
