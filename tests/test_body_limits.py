"""A body over the size limit is 413 problem+json however it is framed: with ``Content-Length`` or
sent ``Transfer-Encoding: chunked`` (no length up front; the WSGI server decodes the chunks and
says so with ``wsgi.input_terminated``, as gunicorn does). Either way the request changes nothing,
and a body within the limit is taken whole."""
from __future__ import annotations

import io

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from app.db.models import Issuer
from tests.helpers import ADMIN, bearer, terminal

JSON = {**ADMIN, "Content-Type": "application/json"}


def chunked(client: FlaskClient, path: str, body: bytes, headers: dict[str, str]) -> TestResponse:
    """``body`` as a gunicorn worker hands a chunked request to the app: no length, terminated input."""
    return client.post(path, headers={**headers, "Transfer-Encoding": "chunked"},
                       input_stream=io.BytesIO(body), environ_overrides={"wsgi.input_terminated": True})


def issuer_body(size: int) -> bytes:
    """A valid issuer registration of exactly ``size`` bytes (trailing JSON whitespace)."""
    body = b'{"name": "x", "credential_types": ["id_card"]}'
    return body + b" " * (size - len(body))


def issuers(app: Flask) -> int:
    with app.extensions["citycode"].db.session() as session:
        return session.scalar(select(func.count()).select_from(Issuer)) or 0


def assert_too_large(response: TestResponse) -> None:
    assert response.status_code == 413, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body["status"] == 413 and body["type"].endswith("payload-too-large")


def test_a_chunked_body_over_the_limit_is_413_and_stores_nothing(app: Flask, client: FlaskClient) -> None:
    limit = app.config["MAX_CONTENT_LENGTH"]
    for size in (limit + 1, limit + 10, 4 * limit):
        assert_too_large(chunked(client, "/v1/admin/issuers", issuer_body(size), JSON))
    assert issuers(app) == 0


def test_a_chunked_body_over_the_limit_is_413_where_the_view_reads_no_body(
        app: Flask, client: FlaskClient) -> None:
    before = client.get("/.well-known/jwks.json").get_json()
    assert_too_large(chunked(client, "/v1/admin/keys/rotate",
                             issuer_body(app.config["MAX_CONTENT_LENGTH"] + 1), JSON))
    assert client.get("/.well-known/jwks.json").get_json() == before  # no key was rotated


def test_a_chunked_body_at_the_limit_is_taken_whole(app: Flask, client: FlaskClient) -> None:
    limit = app.config["MAX_CONTENT_LENGTH"]
    for size in (limit - 1, limit):
        response = chunked(client, "/v1/admin/issuers", issuer_body(size), JSON)
        assert response.status_code == 201, response.get_json()
    assert issuers(app) == 2


def test_a_route_with_its_own_limit_keeps_it_for_chunked_bodies(app: Flask, client: FlaskClient) -> None:
    """Tap uploads may be larger than other bodies: a chunked upload between the two limits is
    answered as the same upload with a Content-Length is, not refused as too large."""
    reader = {**bearer(terminal(client, "bus")), "Content-Type": "application/json"}
    body = b'{"records": []}' + b" " * (2 * app.config["MAX_CONTENT_LENGTH"])
    framed = client.post("/v1/taps", headers=reader, data=body)
    assert framed.status_code != 413
    assert chunked(client, "/v1/taps", body, reader).status_code == framed.status_code
