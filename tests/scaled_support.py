"""Two ``citycode serve`` instances over one PostgreSQL and one Redis, as deploy/README.md runs
them: for tests/integration/test_two_instances.py and test_nginx_front.py.

``start_pair`` creates an empty database on the session's throw-away PostgreSQL
(tests/pg_support.py), starts one external redis-server (AOF on, unix socket; ``REDIS_URL`` is set,
so neither instance embeds its own), and launches two instances at the same moment, each on its
own port and data dir, sharing ``DATABASE_URL``, ``REDIS_URL``, ``CITYCODE_ADMIN_TOKEN`` and one
keys folder (``CITYCODE_KEYS_DIR``: signing key ring and data-encryption secret). Starting them
together on an empty database and keys folder makes migrations and key generation race, as when a
fleet boots.
"""
from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import redis

from app.store.embedded import EmbeddedRedis
from tests.pg_support import PostgresServer


@dataclass
class Pair:
    a: Any  # tests/integration/conftest.py Server
    b: Any
    redis: "redis.Redis[bytes]"
    database_url: str
    keys_dir: Path
    factory: Any  # the ServerFactory that owns both

    @property
    def both(self) -> tuple[Any, Any]:
        return self.a, self.b


@contextlib.contextmanager
def start_pair(postgres_server: PostgresServer, serving: ModuleType, *, workers: int = 2,
               env: Mapping[str, str] | None = None) -> Iterator[Pair]:
    root = serving.short_tmp_dir("cc-pair-")
    database = f"cc_pair_{uuid.uuid4().hex[:10]}"
    postgres_server.admin(f'CREATE DATABASE "{database}"')  # empty: the instances migrate it
    external = EmbeddedRedis(root / "redis")
    factory = serving.ServerFactory()
    client = None
    try:
        redis_url = external.start()
        client = redis.Redis.from_url(redis_url)
        shared = {"DATABASE_URL": postgres_server.url(database), "REDIS_URL": redis_url,
                  "CITYCODE_KEYS_DIR": str(root / "keys"),
                  "CITYCODE_ADMIN_TOKEN": "cca_pair-" + uuid.uuid4().hex, **(env or {})}
        a = factory.launch(env=shared, workers=workers)
        b = factory.launch(env=shared, workers=workers)
        serving.wait_ready(a)
        serving.wait_ready(b)
        yield Pair(a, b, client, shared["DATABASE_URL"], root / "keys", factory)
    finally:
        factory.close()
        if client is not None:
            client.close()
        external.stop()
        postgres_server.admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        shutil.rmtree(root, ignore_errors=True)
