"""/metrics stays small whatever clients send: odd HTTP methods and paths no route matches each
fold into one label value, so they cannot multiply the series every scrape has to read."""
from __future__ import annotations

from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from app.ops.metrics import METHODS, OTHER_METHOD, UNMATCHED_ROUTE


def request_series(client: FlaskClient) -> set[tuple[str, str, str]]:
    """(method, route, status) of every citycode_http_requests_total series on the page."""
    page = client.get("/metrics").get_data(as_text=True)
    return {(s.labels["method"], s.labels["route"], s.labels["status"])
            for family in text_string_to_metric_families(page) for s in family.samples
            if s.name == "citycode_http_requests_total"}


def latency_routes(client: FlaskClient) -> set[str]:
    page = client.get("/metrics").get_data(as_text=True)
    return {s.labels["route"] for family in text_string_to_metric_families(page) for s in family.samples
            if s.name == "citycode_http_request_seconds_count"}


def test_odd_methods_and_unmatched_paths_add_a_bounded_number_of_series(client: FlaskClient) -> None:
    client.get("/healthz/live")
    before, routes_before = request_series(client), latency_routes(client)
    for n in range(300):
        assert client.open("/healthz/live", method=f"X{n}YZ").status_code == 405
        assert client.open(f"/v1/probe-{n}", method=f"Q{n}").status_code in (404, 405)
        assert client.get(f"/v1/nothing/{n}").status_code == 404
        assert client.post(f"/wp-admin/{n}.php").status_code == 404
    added = request_series(client) - before
    assert {method for method, _, _ in added} <= METHODS | {OTHER_METHOD}, added
    # 1,200 requests of 600 odd methods and 900 unknown paths: at most these five new series
    assert added <= {(OTHER_METHOD, UNMATCHED_ROUTE, "404"), (OTHER_METHOD, UNMATCHED_ROUTE, "405"),
                     ("GET", UNMATCHED_ROUTE, "404"), ("POST", UNMATCHED_ROUTE, "404"),
                     ("GET", "/metrics", "200")}, added
    assert len(latency_routes(client) - routes_before) <= 2


def test_standard_methods_and_matched_routes_keep_their_own_labels(client: FlaskClient) -> None:
    client.get("/healthz/live")
    client.open("/healthz/live", method="BREW")
    series = request_series(client)
    assert ("GET", "/healthz/live", "200") in series
    assert (OTHER_METHOD, UNMATCHED_ROUTE, "405") in series
    assert not any(method == "BREW" for method, _, _ in series)
