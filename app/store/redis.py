"""The Redis client for hot state. Short timeouts: a gate must get a degraded answer fast, not hang.

``REDIS_URL`` names a single Redis (``redis://``, ``rediss://``, ``unix://``) or a Redis Cluster:
``redis+cluster://host:port[,host:port...]`` (``rediss+cluster://`` for TLS; a password as in
``redis+cluster://:secret@host:port,...``): any reachable nodes, the client learns the others.
A cluster client is a ``redis.cluster.RedisCluster`` with the same timeouts; every key layout is
cluster-ready everywhere (``app.store.slots``).
"""
from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")

Client = Any  # "redis.Redis[bytes] | RedisCluster": both answer the commands the service uses


def is_cluster_url(url: str) -> bool:
    return url.split("://", 1)[0] in CLUSTER_SCHEMES


def is_cluster(client: object) -> bool:
    return isinstance(client, RedisCluster)


def connect(url: str, *, socket_timeout: float = 0.5, connect_timeout: float = 0.5) -> Client:
    """A client for ``url``: ``RedisCluster`` for a cluster URL, else ``redis.Redis``."""
    if is_cluster_url(url):
        return connect_cluster(url, socket_timeout=socket_timeout, connect_timeout=connect_timeout)
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        health_check_interval=30,
        retry_on_timeout=False,
    )


def connect_cluster(url: str, *, socket_timeout: float = 0.5, connect_timeout: float = 0.5) -> RedisCluster:
    """``redis+cluster://[:password@]host:port,host:port`` → ``RedisCluster``. One attempt per
    command on a node error (then the topology is refreshed on the next command): a gate answers
    ``degraded`` during a failover rather than wait for it."""
    parts = urlsplit(url)
    auth, _, hosts = parts.netloc.rpartition("@")
    nodes = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"REDIS_URL: cluster node {item!r} is not host:port")
        nodes.append(ClusterNode(host.strip("[]"), int(port)))
    username, _, password = auth.partition(":") if auth else ("", "", "")
    return RedisCluster(
        startup_nodes=nodes,
        username=unquote(username) or None,
        password=unquote(password) or None,
        ssl=parts.scheme == "rediss+cluster",
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        retry=Retry(NoBackoff(), 1),
        require_full_coverage=False,  # a shard without a master degrades its riders, not everyone
    )


def like(client: Client, *, socket_timeout: float) -> Client:
    """A new client to the same Redis (or cluster) as ``client`` with another socket timeout
    (for blocking reads that must not hit the workers' short one)."""
    if is_cluster(client):
        kwargs = client.nodes_manager.connection_kwargs
        nodes = [ClusterNode(n.host, n.port) for n in client.get_nodes()] or list(
            client.nodes_manager.startup_nodes.values())
        return RedisCluster(startup_nodes=nodes, username=kwargs.get("username"),
                            password=kwargs.get("password"), socket_timeout=socket_timeout,
                            socket_connect_timeout=kwargs.get("socket_connect_timeout", 1),
                            retry=Retry(NoBackoff(), 1), require_full_coverage=False)
    kwargs = dict(client.connection_pool.connection_kwargs)
    kwargs["socket_timeout"] = socket_timeout
    return redis.Redis(connection_pool=redis.ConnectionPool(
        connection_class=client.connection_pool.connection_class, **kwargs))
