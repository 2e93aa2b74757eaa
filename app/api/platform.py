"""Platform endpoints: liveness, readiness, metrics and the public JWKS."""
from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Response, jsonify

from app.api.blueprint import Blueprint
from app.ops import health, metrics
from app.runtime import runtime

blp = Blueprint("platform", __name__, description="Health, metrics and public keys")


class LiveOut(ma.Schema):
    status = ma.fields.String(required=True, metadata={"enum": ["ok"]})


class ReadyOut(ma.Schema):
    status = ma.fields.String(required=True, metadata={"enum": ["ok", "unavailable"]})
    failed = ma.fields.List(ma.fields.String(), required=True,
                            metadata={"description": "the checks that are not ok"})
    checks = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(), required=True,
                            metadata={"description": "database, redis, keys: ok or a short reason"})


class JwkOut(ma.Schema):
    kty = ma.fields.String(required=True)
    crv = ma.fields.String(required=True)
    x = ma.fields.String(required=True)
    y = ma.fields.String(metadata={"description": "EC keys only"})
    kid = ma.fields.String(required=True)
    alg = ma.fields.String(required=True)
    use = ma.fields.String(required=True, metadata={"enum": ["sig"]})


class JwksOut(ma.Schema):
    keys = ma.fields.List(ma.fields.Nested(JwkOut), required=True)


@blp.route("/healthz/live")
@blp.response(200, LiveOut)
@blp.doc(summary="Liveness: the process answers")
def live() -> dict[str, Any]:
    return {"status": "ok"}


@blp.route("/healthz/ready")
@blp.response(200, ReadyOut)
@blp.alt_response(503, schema=ReadyOut, description="Something is not usable: see `failed`")
@blp.doc(summary="Readiness: database, Redis and signing keys are usable (503 names what is not)")
def ready() -> tuple[dict[str, Any], int]:
    checks = health.readiness(runtime())
    failed = [name for name, state in checks.items() if state != "ok"]
    body = {"status": "unavailable" if failed else "ok", "failed": failed, "checks": checks}
    return body, 503 if failed else 200


@blp.route("/metrics")
@blp.doc(summary="Prometheus metrics aggregated over all workers",
         responses={"200": {"description": "Prometheus text exposition format",
                            "content": {"text/plain": {"schema": {"type": "string"}}}}})
def prometheus_metrics() -> Response:
    return metrics.exposition()


@blp.route("/.well-known/jwks.json")
@blp.alt_response(200, schema=JwksOut, success=True,
                  description="The published keys (the body is the key ring's own JWKS, as is)")
@blp.doc(summary="Public keys: current, next, and retired keys whose codes may still be valid")
def jwks() -> Response:
    response = jsonify(runtime().keys.get().jwks())
    response.headers["Cache-Control"] = "public, max-age=60"
    return response
