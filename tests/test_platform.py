"""Platform endpoints through the Flask test client, against real Redis and a real SQLite file."""
from __future__ import annotations

import warnings

from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.config import Settings


def test_liveness_answers_ok(client: FlaskClient) -> None:
    response = client.get("/healthz/live")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readiness_reports_every_dependency_ok(client: FlaskClient) -> None:
    response = client.get("/healthz/ready")
    assert response.status_code == 200
    body = response.get_json()
    assert body["checks"] == {"database": "ok", "redis": "ok", "keys": "ok", "records": "ok"}
    assert body["failed"] == []


def test_jwks_serves_current_and_next_public_keys_only(client: FlaskClient) -> None:
    keys = client.get("/.well-known/jwks.json").get_json()["keys"]
    assert len(keys) == 2
    for key in keys:
        assert set(key) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
        assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")


def test_openapi_document_lists_the_platform_paths(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    for path in ("/healthz/live", "/healthz/ready", "/.well-known/jwks.json", "/v1/admin/keys/rotate"):
        assert path in spec["paths"]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_openapi_document_builds_without_warnings_with_one_shared_decision_schema(
        app: Flask, settings: Settings) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # apispec warns when two schemas resolve to one name
        fresh = create_app(settings)
        try:
            spec = fresh.test_client().get("/openapi.json").get_json()
        finally:
            fresh.extensions["citycode"].close()
    decision = {"$ref": "#/components/schemas/DecisionOut"}
    assert {"DecisionOut", "MessageOut"} <= set(spec["components"]["schemas"])
    for path in ("/v1/verify", "/v1/disclosures"):
        assert spec["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]["schema"] == decision


def test_docs_ui_loads_its_assets_from_this_service(client: FlaskClient) -> None:
    page = client.get("/docs").get_data(as_text=True)
    assert "/docs/assets/swagger-ui-bundle.js" in page
    assert "http://" not in page and "https://" not in page
    asset = client.get("/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.get_data()) > 100_000
    asset.close()


def test_metrics_are_prometheus_text(client: FlaskClient) -> None:
    client.get("/healthz/live")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert "citycode_http_requests_total" in response.get_data(as_text=True)


def test_metrics_content_type_names_its_charset_once(client: FlaskClient) -> None:
    content_type = client.get("/metrics").headers["Content-Type"]
    assert content_type.startswith("text/plain;")
    assert content_type.count("charset=") == 1
