"""Redis Lua scripts for scenes: first use and state change in one atomic step.

A Redis failure becomes ``Degraded`` (a ``degraded`` deny), never a stack trace or an accept.

Every scan runs one script, so the call is lean: ``EVALSHA`` packed and sent on a connection taken
from the client's pool, the reply read back, the connection returned — what redis-py's
``Script`` does, without its per-call command dispatch, retry wrapper and response callbacks
(≈ 35 → 14 µs of CPU per call, measured with a trivial script). A server that lost its scripts
(restarted, ``SCRIPT FLUSH``, a replica just promoted) answers ``NOSCRIPT``: the script is loaded
and called again once.

Redis Cluster (``app.store.redis``). A script's keys share one slot (``app.store.slots``); the
call goes the same lean way to the pool of the master that owns the slot of its first key, as the
cluster client's slot table says. ``MOVED``/``ASK`` (slots moved, a failover) refresh the table
and try once more; a node that does not answer (killed, failing over) is ``Degraded`` and refreshes
the table at most every ``REFRESH_SECONDS``, so gates answer ``degraded`` at once during a
failover and use the promoted replica as soon as the cluster has one.

Replication (``wait_replicas`` > 0, by default in a cluster). A master acknowledges a write before
its replica has it; a master killed just then takes the write with it, and the promoted replica
would accept the same code again. So the script is followed, in the same packet, by
``WAIT <wait_replicas> <wait_ms>``: when fewer replicas confirm in time the gate is answered
``degraded`` (``citycode_scans_unconfirmed_total``) — the code may be spent then, and the record
(if the master survives) says what the script decided; no accept is ever answered that a
failover could forget. A shard whose master has no working replica answers ``degraded`` until it
has one again (``CITYCODE_REDIS_WAIT_REPLICAS=0``: availability first, at that risk).
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any, Sequence

import redis
from prometheus_client import Counter
from redis.exceptions import AskError, MovedError, NoScriptError

from app.codes.decision import CodeClaims
from app.codes.errors import Degraded
from app.codes.replay import DEFAULT_PREFIX, record_until, replay_key
from app.store.redis import is_cluster
from app.store.slots import slot_of

log = logging.getLogger(__name__)

REFRESH_SECONDS = 0.25  # a cluster's slot table is read again at most this often after a node error
WAIT_MS = 100  # how long a script waits for its replicas (``wait_replicas``)

UNCONFIRMED = Counter("citycode_scans_unconfirmed_total",
                      "Scripts whose writes no replica confirmed in time (answered degraded)", ["script"])


class AtomicScript:
    """One Lua script, called lean (see the module docstring). ``wait_replicas`` > 0: each call
    waits until that many replicas have its writes, else ``Degraded``."""

    def __init__(self, client: Any, source: str, name: str, *, wait_replicas: int = 0,
                 wait_ms: int = WAIT_MS) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self.wait = ("WAIT", wait_replicas, wait_ms) if wait_replicas > 0 else None
        self.wait_replicas = wait_replicas
        self._cluster = client if is_cluster(client) else None
        self._pool = None if self._cluster is not None else client.connection_pool

    def __call__(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            if self._cluster is not None:
                return self._call_cluster(keys, args)
            return self._call(self._pool, keys, args)
        except (redis.RedisError, OSError) as exc:
            if self._cluster is not None and not isinstance(exc, redis.ResponseError):
                _refresh(self._cluster)
            log.warning("scene state unavailable", extra={"script": self.name, "error": type(exc).__name__,
                                                          "detail": str(exc)[:60]})
            raise Degraded(f"{self.name}: state store unavailable") from None

    def _call_cluster(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        cluster = self._cluster
        slot = slot_of(keys[0]) if keys else 0
        for attempt in (1, 2):
            node = cluster.nodes_manager.get_node_from_slot(slot)
            pool = (node.redis_connection or cluster.get_redis_connection(node)).connection_pool
            try:
                return self._call(pool, keys, args)
            except (MovedError, AskError):
                if attempt == 2:
                    raise
                _refresh(cluster, force=True)
        raise AssertionError("unreachable")  # pragma: no cover

    def _call(self, pool: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        conn = pool.get_connection()
        try:
            command = conn.pack_command("EVALSHA", self.sha, len(keys), *keys, *args)
            if self.wait is None:
                conn.send_packed_command(command, check_health=False)
                try:
                    return conn.read_response()
                except NoScriptError:  # the server lost its scripts: load, then once more
                    conn.send_command("SCRIPT", "LOAD", self.source, check_health=False)
                    conn.read_response()
                    conn.send_packed_command(command, check_health=False)
                    return conn.read_response()
            wait = conn.pack_command(*self.wait)
            conn.send_packed_command([*command, *wait], check_health=False)
            try:
                reply = self._both(conn)
            except NoScriptError:
                conn.send_command("SCRIPT", "LOAD", self.source, check_health=False)
                conn.read_response()
                conn.send_packed_command([*command, *wait], check_health=False)
                reply = self._both(conn)
            return reply
        finally:  # a connection broken mid-call was disconnected by redis-py: the pool reconnects it
            pool.release(conn)

    def _both(self, conn: Any) -> Any:
        """The script's reply, then WAIT's (always read both: the connection stays in step)."""
        try:
            reply = conn.read_response()
        except redis.ResponseError:
            try:
                conn.read_response()
            except redis.ResponseError:
                pass  # WAIT's own refusal (a node that is no master any more): the script's error counts
            raise
        confirmed = conn.read_response()
        if int(confirmed) < self.wait_replicas:
            UNCONFIRMED.labels(self.name).inc()
            raise redis.ResponseError(f"{self.name}: {confirmed} of {self.wait_replicas} replicas confirmed")
        return reply


_refresh_lock = threading.Lock()
_refreshed_at: dict[int, float] = {}


def _refresh(cluster: Any, *, force: bool = False) -> None:
    """Read the cluster's slot table again (at most every ``REFRESH_SECONDS`` unless ``force``);
    never raises: a cluster that cannot be asked keeps its old table until the next try."""
    now = time.monotonic()
    with _refresh_lock:
        if not force and now - _refreshed_at.get(id(cluster), 0.0) < REFRESH_SECONDS:
            return
        _refreshed_at[id(cluster)] = now
    try:
        cluster.nodes_manager.initialize()
    except (redis.RedisError, OSError) as exc:
        log.warning("cluster slot table not refreshed", extra={"error": type(exc).__name__})


def replay_key_for(claims: CodeClaims) -> str:
    """The same key ``RedisReplayStore`` claims, so scenes and plain verification agree."""
    return replay_key(DEFAULT_PREFIX, claims.iss, claims.jti, claims.sub)


def replay_expiry(claims: CodeClaims, leeway: int) -> int:
    """Unix time at which the replay record may go (EXAT argument), as ``RedisReplayStore`` keeps it."""
    return record_until(claims.exp + leeway)
