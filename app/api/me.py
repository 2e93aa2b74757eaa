"""Citizen app (亮码): own profile, credentials, a fresh code and its QR image."""
from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Response

from app.api.blueprint import Blueprint
from app.api.schemas import problem_doc
from app.api.security import current_principal, require
from app.audit import log as audit
from app.auth import Role
from app.codes import qr
from app.registry import citizens, credentials
from app.runtime import runtime
from app.verification import issuing

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
    fresh = issuing.code_for(runtime(), current_principal().principal_id)
    return {"code": fresh.code, "expires_at": fresh.expires_at, "refresh_after": fresh.refresh_after,
            "qr_version": qr.version_of(fresh.code)}


def _image(render: Any) -> Response:
    fresh = issuing.code_for(runtime(), current_principal().principal_id)
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
