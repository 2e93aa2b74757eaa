"""Driving scans for the record and audit-tree tests."""
from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

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
