"""The per-process runtime: settings plus the clients built from them, kept in ``app.extensions``."""
from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import Flask, current_app

from app.config import Settings
from app.db import Database
from app.signing.keyring import KeyRingCache, KeyStore
from app.store.redis import connect

EXTENSION = "citycode"


@dataclass
class Runtime:
    settings: Settings
    db: Database
    redis: "redis.Redis[bytes]"
    keystore: KeyStore
    keys: KeyRingCache

    @classmethod
    def build(cls, settings: Settings) -> "Runtime":
        if settings.redis_url is None:
            raise RuntimeError("REDIS_URL is not set and no embedded Redis was started; "
                               "run the service with `citycode serve`")
        keystore = KeyStore(settings.resolved_keys_dir,
                            retire_after_seconds=settings.code_ttl_seconds + settings.clock_leeway_seconds)
        return cls(settings, Database(settings.resolved_database_url), connect(settings.redis_url),
                   keystore, KeyRingCache(keystore))

    def close(self) -> None:
        self.db.dispose()
        self.redis.close()


def init_app(app: Flask, runtime: Runtime) -> None:
    app.extensions[EXTENSION] = runtime


def runtime() -> Runtime:
    """The runtime of the app handling the current request."""
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]
