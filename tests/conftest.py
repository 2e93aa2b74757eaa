"""Fixtures: a real redis-server for the session, a fresh SQLite file and key ring per test."""
from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from app import create_app, db
from app.config import Settings
from app.registry.pii import PiiVault
from app.signing.keyring import KeyStore
from app.store.embedded import EmbeddedRedis

ADMIN_TOKEN = "cca_test-admin-token-for-the-test-suite-only"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    with tempfile.TemporaryDirectory(prefix="cc-redis-", dir="/tmp") as folder:
        with EmbeddedRedis(Path(folder)) as server:
            yield server


@pytest.fixture
def redis_client(redis_server: EmbeddedRedis) -> Iterator["redis.Redis[bytes]"]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def settings(tmp_path: Path, redis_server: EmbeddedRedis) -> Settings:
    return Settings(data_dir=tmp_path / "data", redis_url=redis_server.url, admin_token=ADMIN_TOKEN)


@contextmanager
def app_for(settings: Settings) -> Iterator[Flask]:
    """A test app on ``settings``: migrated database, fresh key ring and PII secret."""
    settings.data_dir.mkdir(parents=True)
    db.migrate(settings.resolved_database_url)
    KeyStore(settings.resolved_keys_dir).generate(settings.key_algorithm)
    PiiVault.create_if_missing(settings.resolved_keys_dir)
    application = create_app(settings)
    application.config["TESTING"] = True
    try:
        yield application
    finally:
        application.extensions["citycode"].close()


@pytest.fixture
def app(settings: Settings, redis_client: "redis.Redis[bytes]") -> Iterator[Flask]:
    with app_for(settings) as application:
        yield application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
