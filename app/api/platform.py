"""Platform endpoints: liveness, readiness, metrics and the public JWKS."""
from __future__ import annotations

from flask import Response, jsonify
from flask_smorest import Blueprint

from app.ops import health, metrics
from app.runtime import runtime

blp = Blueprint("platform", __name__, description="Health, metrics and public keys")


@blp.route("/healthz/live")
@blp.doc(summary="Liveness: the process answers")
def live() -> Response:
    return jsonify(status="ok")


@blp.route("/healthz/ready")
@blp.doc(summary="Readiness: database, Redis and signing keys are usable (503 names what is not)")
def ready() -> Response:
    checks = health.readiness(runtime())
    failed = [name for name, state in checks.items() if state != "ok"]
    response = jsonify(status="unavailable" if failed else "ok", failed=failed, checks=checks)
    response.status_code = 503 if failed else 200
    return response


@blp.route("/metrics")
@blp.doc(summary="Prometheus metrics aggregated over all workers")
def prometheus_metrics() -> Response:
    return metrics.exposition()


@blp.route("/.well-known/jwks.json")
@blp.doc(summary="Public keys: current, next, and retired keys whose codes may still be valid")
def jwks() -> Response:
    response = jsonify(runtime().keys.get().jwks())
    response.headers["Cache-Control"] = "public, max-age=60"
    return response
