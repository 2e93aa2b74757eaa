"""Small API drivers shared by tests: enrol a citizen, register an issuer or terminal."""
from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from typing import Any, Iterator

import redis
from flask import Flask

from flask.testing import FlaskClient

from tests.conftest import ADMIN_TOKEN
from tests.ids import resident_id

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def enrol(client: FlaskClient, name: str = "张三丰", id_number: str | None = None,
          phone: str | None = "13800138000") -> dict[str, Any]:
    body = {"name": name, "id_number": id_number or resident_id()}
    if phone:
        body["phone"] = phone
    response = client.post("/v1/admin/citizens", headers=ADMIN, json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def issuer(client: FlaskClient, *types: str, name: str = "青岛市教育局") -> str:
    response = client.post("/v1/admin/issuers", headers=ADMIN,
                           json={"name": name, "credential_types": list(types)})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["issuer_token"]  # type: ignore[no-any-return]


DEFAULT_SITES = {"bus": {"line": "321", "vehicle": "鲁B-10001"}, "metro": {"station": "五四广场"},
                 "scenic": {"spot": "laoshan"}, "hall": {"hall": "city"}}


def terminal(client: FlaskClient, kind: str = "hall", **site: str) -> str:
    """A registered terminal. The default, a hall terminal, has no scene policy at /v1/verify:
    it accepts any valid, fresh, unreplayed code (what the core alone decides)."""
    response = client.post("/v1/admin/terminals", headers=ADMIN,
                           json={"kind": kind, "site": site or DEFAULT_SITES[kind]})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["terminal_token"]  # type: ignore[no-any-return]


def credential(client: FlaskClient, issuer_token: str, citizen_id: str, ctype: str,
               number: str = "S2026000123", **attributes: str) -> dict[str, Any]:
    response = client.post("/v1/issuer/credentials", headers=bearer(issuer_token),
                           json={"citizen_id": citizen_id, "type": ctype, "number": number,
                                 "attributes": attributes})
    assert response.status_code == 201, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def code(client: FlaskClient, app_token: str) -> str:
    response = client.post("/v1/me/code", headers=bearer(app_token))
    assert response.status_code == 201, response.get_json()
    return response.get_json()["code"]  # type: ignore[no-any-return]


NO_REDIS_URL = "unix:///nonexistent/citycode-test-redis.sock"


def drain(app: Any) -> int:
    """Write every scan record waiting in the stream to the audit log, as the writer process of
    ``citycode serve`` does in the background; the number of stream entries written. ``app`` is
    the Flask app or its runtime."""
    from app.records.writer import RecordWriter

    rt = app.extensions["citycode"] if isinstance(app, Flask) else app
    return RecordWriter(rt.redis, rt.db, stream=rt.settings.records_stream, consumer="tests",
                        keys=rt.keys).drain()


def dead_redis() -> "redis.Redis[bytes]":
    """A client for a Redis that is not there (fails fast)."""
    return redis.Redis.from_url(NO_REDIS_URL, socket_timeout=0.2, socket_connect_timeout=0.2)


@contextmanager
def redis_unreachable(app: Flask) -> Iterator[None]:
    """Point the app's runtime at a Redis that is not there (its parts built over it by the
    composition root), then back at the live client and the live parts."""
    from app import compose

    rt = app.extensions["citycode"]
    live = dataclasses.replace(rt)
    _take_parts(rt, compose.assemble(rt.settings, db=rt.db, client=dead_redis(), keystore=rt.keystore,
                                     keys=rt.keys, vault=rt.vault))
    try:
        yield
    finally:
        rt.redis.close()
        _take_parts(rt, live)


def _take_parts(rt: Any, source: Any) -> None:
    for part in dataclasses.fields(rt):
        setattr(rt, part.name, getattr(source, part.name))


def listening(*caches: Any) -> None:
    """Start the ``PrincipalCache``s' revocation listeners and wait until they are subscribed."""
    deadline = time.monotonic() + 5
    for cache in caches:
        cache._start_listener()
        while not cache.listening:
            assert time.monotonic() < deadline, "the listener did not subscribe"
            time.sleep(0.005)
