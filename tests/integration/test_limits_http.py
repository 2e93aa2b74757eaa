"""Over real HTTP through gunicorn, what the test client cannot show: a chunked body over the size
limit is 413 problem+json like one sent with Content-Length (gunicorn decodes the chunks and hands
the app a body without a length), and odd methods or probed paths from the network do not grow
/metrics (aggregated over both workers' files)."""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from app.config import DEFAULT_MAX_BODY_BYTES

if TYPE_CHECKING:  # the helpers come from tests/integration/conftest.py
    from conftest import Server

pytestmark = pytest.mark.slow

ISSUER = b'{"name": "x", "credential_types": ["id_card"]}'


def in_chunks(body: bytes, size: int = 4096) -> Iterator[bytes]:
    """A generator body: requests sends it with ``Transfer-Encoding: chunked`` and no length."""
    for start in range(0, len(body), size):
        yield body[start:start + size]


def padded(size: int) -> bytes:
    return ISSUER + b" " * (size - len(ISSUER))


def post_chunked(srv: Server, path: str, body: bytes) -> requests.Response:
    headers = {**srv.admin_headers(), "Content-Type": "application/json"}
    with requests.Session() as session:
        return session.post(srv.url(path), data=in_chunks(body), headers=headers, timeout=30)


def assert_too_large(response: requests.Response) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 413 and body["type"].endswith("payload-too-large"), body


def test_a_chunked_body_over_the_limit_is_413_like_a_sized_one(srv: Server) -> None:
    sized = srv.fresh("POST", "/v1/admin/issuers", data=padded(DEFAULT_MAX_BODY_BYTES + 1),
                      headers={**srv.admin_headers(), "Content-Type": "application/json"})
    assert_too_large(sized)
    for size in (DEFAULT_MAX_BODY_BYTES + 1, 4 * DEFAULT_MAX_BODY_BYTES):
        assert_too_large(post_chunked(srv, "/v1/admin/issuers", padded(size)))
    assert srv.fresh("GET", "/healthz/live").status_code == 200


def test_a_chunked_body_over_the_limit_changes_nothing_where_the_view_reads_no_body(srv: Server) -> None:
    ring = (srv.data_dir / "keys" / "keyring.json").read_bytes()
    assert_too_large(post_chunked(srv, "/v1/admin/keys/rotate", padded(DEFAULT_MAX_BODY_BYTES + 1)))
    assert (srv.data_dir / "keys" / "keyring.json").read_bytes() == ring


def test_a_chunked_body_at_the_limit_is_taken_whole(srv: Server) -> None:
    response = post_chunked(srv, "/v1/admin/issuers", padded(DEFAULT_MAX_BODY_BYTES))
    assert response.status_code == 201, response.text
    assert response.json()["issuer_id"]


def request_series(srv: Server) -> set[tuple[str, str, str]]:
    page = srv.fresh("GET", "/metrics").text
    return {(s.labels["method"], s.labels["route"], s.labels["status"])
            for family in text_string_to_metric_families(page) for s in family.samples
            if s.name == "citycode_http_requests_total"}


def test_odd_methods_and_probed_paths_over_http_add_a_bounded_number_of_series(srv: Server) -> None:
    before = request_series(srv)
    with requests.Session() as session:
        for n in range(500):
            assert session.request(f"X{n}YZ", srv.url("/healthz/live"), timeout=10).status_code == 405
            assert session.get(srv.url(f"/v1/probe/{n}"), timeout=10).status_code == 404
    added = request_series(srv) - before
    assert not any(method.startswith("X") for method, _, _ in added), sorted(added)[:5]
    assert added <= {("other", "unmatched", "405"), ("GET", "unmatched", "404"),
                     ("GET", "/metrics", "200")}, json.dumps(sorted(added)[:10])
