"""The Redis client for hot state. Short timeouts: a gate must get a degraded answer fast, not hang."""
from __future__ import annotations

import redis


def connect(url: str) -> "redis.Redis[bytes]":
    return redis.Redis.from_url(
        url,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        health_check_interval=30,
        retry_on_timeout=False,
    )
