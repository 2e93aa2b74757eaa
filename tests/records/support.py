"""Driving scans for the record and audit-tree tests."""
from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from app.records.stream import GROUP, record_streams
from app.runtime import Runtime
from tests.helpers import bearer, terminal
from tests.scenes.metro_support import mint_code


def runtime_of(app: Flask) -> Runtime:
    return app.extensions["citycode"]  # type: ignore[no-any-return]


def scan_some(app: Flask, client: FlaskClient, n: int, prefix: str) -> None:
    """``n`` accepted bus scans of distinct pseudonyms ``<prefix><i>``."""
    token = terminal(client, "bus")
    for i in range(n):
        response = client.post("/v1/verify", headers=bearer(token), json={"code": mint_code(app, f"{prefix}{i}")})
        assert response.get_json()["decision"] == "accept"


def stream_entries(rt: Runtime) -> dict[str, list[tuple[bytes, dict[bytes, bytes]]]]:
    """Every record waiting in the scan-record streams (one per rider shard, and the base), by stream."""
    found = {name: rt.redis.xrange(name) for name in record_streams(rt.settings.records_stream)}
    return {name: entries for name, entries in found.items() if entries}


def stream_length(rt: Runtime) -> int:
    """Records waiting in all scan-record streams."""
    return sum(int(rt.redis.xlen(name)) for name in record_streams(rt.settings.records_stream))


def stream_pending(rt: Runtime) -> int:
    """Records delivered to a writer and not acknowledged, over all scan-record streams."""
    return sum(int(rt.redis.xpending(name, GROUP)["pending"])
               for name in record_streams(rt.settings.records_stream))
