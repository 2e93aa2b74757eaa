"""Citizen app (亮码): own profile, credentials, a fresh code and its QR image, own app tokens."""
from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Response

from app.api.blueprint import Blueprint
from app.api.schemas import problem_doc
from app.api.security import current_principal, require, revoked
from app.audit import log as audit
from app.auth import Role, last_used
from app.codes import qr
from app.registry import citizens, credentials, tokens
from app.runtime import runtime

blp = Blueprint("me", __name__, url_prefix="/v1/me", description="Citizen app")

_SUSPENDED = problem_doc("Not a citizen token, or the citizen is suspended: no code is issued")


class MeOut(ma.Schema):
    citizen_id = ma.fields.String(required=True)
    name_masked = ma.fields.String(required=True)
    id_number_masked = ma.fields.String(required=True)
    entitlements = ma.fields.List(ma.fields.String(), required=True)
    status = ma.fields.String(required=True)


class MyCredentialOut(ma.Schema):
    credential_id = ma.fields.String(required=True)
    type = ma.fields.String(required=True)
    issuer = ma.fields.String(required=True)
    number_masked = ma.fields.String(required=True)
    status = ma.fields.String(required=True)
    valid_until = ma.fields.DateTime(allow_none=True)


class CodeOut(ma.Schema):
    code = ma.fields.String(required=True)
    expires_at = ma.fields.DateTime(required=True)
    refresh_after = ma.fields.DateTime(required=True)
    qr_version = ma.fields.Integer(required=True)


@blp.route("", methods=["GET"])
@require(Role.CITIZEN)
@blp.response(200, MeOut)
def me() -> dict[str, Any]:
    """Who I am, masked, and what my codes entitle me to."""
    rt = runtime()
    citizen_id = current_principal().principal_id
    with rt.db.session() as session:
        citizen = citizens.get(session, citizen_id)
        return {"citizen_id": citizen.id, **citizens.masked_profile(rt.vault, citizen),
                "entitlements": list(credentials.current_entitlements(session, citizen.id)),
                "status": citizen.status}


@blp.route("/credentials", methods=["GET"])
@require(Role.CITIZEN)
@blp.response(200, MyCredentialOut(many=True))
def my_credentials() -> list[dict[str, Any]]:
    """My credentials, numbers masked."""
    with runtime().db.session() as session:
        rows = credentials.for_citizen(session, current_principal().principal_id)
    return [{"credential_id": c.id, "type": c.type, "issuer": issuer, "number_masked": c.number_masked,
             "status": c.status, "valid_until": audit.utc(c.valid_until) if c.valid_until else None}
            for c, issuer in rows]


@blp.route("/code", methods=["POST"])
@require(Role.CITIZEN)
@blp.response(201, CodeOut)
@blp.alt_response(403, **_SUSPENDED)
def new_code() -> dict[str, Any]:
    """A fresh short-lived code (compact JWS) to show as QR."""
    fresh = runtime().minter.code_for(current_principal().principal_id)
    return {"code": fresh.code, "expires_at": fresh.expires_at, "refresh_after": fresh.refresh_after,
            "qr_version": qr.version_of(fresh.code)}


def _image(render: Any) -> Response:
    fresh = runtime().minter.code_for(current_principal().principal_id)
    image = render(fresh.code)
    response = Response(image.content, mimetype=image.mimetype)
    response.headers["X-Code-Expires-At"] = fresh.expires_at.isoformat().replace("+00:00", "Z")
    response.headers["Cache-Control"] = "no-store"
    return response


@blp.route("/code.png", methods=["GET"])
@require(Role.CITIZEN)
@blp.doc(responses={"200": {"description": "QR image of a fresh code",
                            "content": {"image/png": {}}}})
@blp.alt_response(403, **_SUSPENDED)
def code_png() -> Response:
    """The QR image (PNG) of a fresh code."""
    return _image(qr.png)


@blp.route("/code.svg", methods=["GET"])
@require(Role.CITIZEN)
@blp.doc(responses={"200": {"description": "QR image of a fresh code",
                            "content": {"image/svg+xml": {}}}})
@blp.alt_response(403, **_SUSPENDED)
def code_svg() -> Response:
    """The QR image (SVG) of a fresh code."""
    return _image(qr.svg)


class MyTokenOut(ma.Schema):
    token_id = ma.fields.String(required=True)
    label = ma.fields.String(allow_none=True, metadata={
        "description": "the device's name, if the hall gave one"})
    created_at = ma.fields.DateTime(required=True)
    last_used_at = ma.fields.DateTime(allow_none=True, metadata={
        "description": "last authenticated request, to within a minute; null when never used"})
    current = ma.fields.Boolean(required=True, metadata={"description": "the token of this request"})


@blp.route("/tokens", methods=["GET"])
@require(Role.CITIZEN)
@blp.response(200, MyTokenOut(many=True))
def my_tokens() -> list[dict[str, Any]]:
    """My live app tokens (one per device), oldest first, with their last use."""
    rt = runtime()
    principal = current_principal()
    with rt.db.session() as session:
        rows = tokens.tokens_of(session, Role.CITIZEN, principal.principal_id)
    used = last_used(rt.redis, [row.id for row in rows])
    return [{"token_id": row.id, "label": row.label, "created_at": audit.utc(row.created_at),
             "last_used_at": used.get(row.id), "current": row.id == principal.token_id} for row in rows]


@blp.route("/tokens/<token_id>", methods=["DELETE"])
@require(Role.CITIZEN)
@blp.response(204)
@blp.alt_response(404, **problem_doc("No such live app token of mine"))
def revoke_my_token(token_id: str) -> None:
    """Revoke one of my app tokens (a lost or sold device; this one too: sign out). Refused from
    the next request on every worker. Audited."""
    principal = current_principal()
    with runtime().db.session() as session:
        done = tokens.revoke_app_token(session, principal.principal_id, token_id, "revoked by the citizen",
                                       actor_kind="citizen", actor_id=principal.principal_id)
    revoked(done.token_ids)
