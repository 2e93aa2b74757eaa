"""Admin: enrol citizens (after real-name verification elsewhere), suspend and restore them,
give them new app tokens and revoke old ones."""
from __future__ import annotations

from typing import Any

import marshmallow as ma

from app.api.blueprint import Blueprint
from app.api.schemas import ReasonIn, problem_doc
from app.api.security import current_principal, require, revoked
from app.auth import Role, last_used
from app.registry import citizens, tokens
from app.runtime import runtime

blp = Blueprint("admin_citizens", __name__, url_prefix="/v1/admin/citizens", description="Citizens")


class EnrolIn(ma.Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=100))
    id_number = ma.fields.String(required=True, validate=ma.validate.Length(min=18, max=18), metadata={
        "pattern": "^[0-9]{17}[0-9X]$",
        "description": "GB 11643 resident ID: region, birth date and check character are "
                       "validated (422 when they do not hold)"})
    phone = ma.fields.String(validate=ma.validate.Regexp(r"^\+?[0-9]{6,15}$"), load_default=None)


class EnrolOut(ma.Schema):
    citizen_id = ma.fields.String(required=True)
    app_token = ma.fields.String(required=True)


class CitizenStatusOut(ma.Schema):
    citizen_id = ma.fields.String(required=True)
    status = ma.fields.String(required=True)


@blp.route("", methods=["POST"])
@require(Role.ADMIN)
@blp.arguments(EnrolIn)
@blp.response(201, EnrolOut)
@blp.alt_response(409, **problem_doc("The ID number is already enrolled"))
def enrol(body: dict[str, Any]) -> dict[str, Any]:
    """Enrol a citizen; personal data is encrypted at rest and never appears in codes."""
    rt = runtime()
    with rt.db.session() as session:
        done = citizens.enrol(session, rt.vault, body["name"], body["id_number"], body["phone"],
                              admin_id=current_principal().principal_id)
    return {"citizen_id": done.citizen_id, "app_token": done.app_token}


def _set_status(citizen_id: str, status: str, reason: str | None) -> dict[str, Any]:
    rt = runtime()
    with rt.db.session() as session:
        citizens.set_status(session, citizen_id, status, reason, admin_id=current_principal().principal_id)
    rt.trust_changed()
    if status == citizens.SUSPENDED:  # what is pending or approved but unread is withdrawn
        rt.disclosures.withdraw_for(citizen_id, actor_kind="admin", actor_id=current_principal().principal_id)
    return {"citizen_id": citizen_id, "status": status}


@blp.route("/<citizen_id>/suspend", methods=["POST"])
@require(Role.ADMIN)
@blp.arguments(ReasonIn, required=False)  # {reason?}: no body at all is fine too
@blp.response(200, CitizenStatusOut)
@blp.alt_response(404, **problem_doc("No such citizen"))
def suspend(body: dict[str, Any], citizen_id: str) -> dict[str, Any]:
    """Suspend: every code of this citizen is denied `suspended` from now on, and their disclosure
    requests still pending or approved but unread are withdrawn (nothing of them is released)."""
    return _set_status(citizen_id, citizens.SUSPENDED, body["reason"])


@blp.route("/<citizen_id>/restore", methods=["POST"])
@require(Role.ADMIN)
@blp.arguments(ReasonIn, required=False)  # {reason?}: no body at all is fine too
@blp.response(200, CitizenStatusOut)
@blp.alt_response(404, **problem_doc("No such citizen"))
def restore(body: dict[str, Any], citizen_id: str) -> dict[str, Any]:
    """Restore a suspended citizen."""
    return _set_status(citizen_id, citizens.ACTIVE, body["reason"])


class AppTokenIn(ma.Schema):
    label = ma.fields.String(load_default=None, validate=ma.validate.Length(min=1, max=64), metadata={
        "description": "a name for the device, shown in the citizen's token list (no personal data)"})
    revoke_others = ma.fields.Boolean(load_default=True, metadata={
        "description": "revoke the citizen's other app tokens (a lost or stolen phone); "
                       "false adds a second device"})


class AppTokenIssuedOut(ma.Schema):
    citizen_id = ma.fields.String(required=True)
    token_id = ma.fields.String(required=True)
    app_token = ma.fields.String(required=True, metadata={"description": "shown once"})
    revoked_tokens = ma.fields.Integer(required=True)


class AppTokenOut(ma.Schema):
    token_id = ma.fields.String(required=True)
    label = ma.fields.String(allow_none=True)
    created_at = ma.fields.DateTime(required=True)
    last_used_at = ma.fields.DateTime(allow_none=True, metadata={
        "description": "last authenticated request, to within a minute; null when never used"})
    revoked_at = ma.fields.DateTime(allow_none=True)


class AppTokenRevokedOut(ma.Schema):
    citizen_id = ma.fields.String(required=True)
    token_id = ma.fields.String(required=True)
    status = ma.fields.String(required=True, metadata={"enum": ["revoked"]})


@blp.route("/<citizen_id>/app-tokens", methods=["POST"])
@require(Role.ADMIN)
@blp.arguments(AppTokenIn, required=False)  # {label?, revoke_others?}: no body at all is fine too
@blp.response(201, AppTokenIssuedOut)
@blp.alt_response(404, **problem_doc("No such citizen"))
def new_app_token(body: dict[str, Any], citizen_id: str) -> dict[str, Any]:
    """A new app token for a citizen (lost phone, new phone). By default the citizen's other app
    tokens are revoked, refused from the next request on every worker; suspending and restoring
    the citizen later does not revive them. Audited."""
    rt = runtime()
    with rt.db.session() as session:
        done = tokens.new_app_token(session, citizen_id, body["label"], revoke_others=body["revoke_others"],
                                    admin_id=current_principal().principal_id)
    revoked(done.revoked)
    return {"citizen_id": citizen_id, "token_id": done.issued.token_id, "app_token": done.issued.token,
            "revoked_tokens": len(done.revoked)}


@blp.route("/<citizen_id>/app-tokens", methods=["GET"])
@require(Role.ADMIN)
@blp.response(200, AppTokenOut(many=True))
@blp.alt_response(404, **problem_doc("No such citizen"))
def list_app_tokens(citizen_id: str) -> list[dict[str, Any]]:
    """A citizen's app tokens, revoked ones included, oldest first, with their last use."""
    rt = runtime()
    with rt.db.session() as session:
        rows = tokens.app_tokens(session, citizen_id, include_revoked=True)
    used = last_used(rt.redis, [row.id for row in rows if row.revoked_at is None])
    return [tokens.describe(row, used.get(row.id)) for row in rows]


@blp.route("/<citizen_id>/app-tokens/<token_id>/revoke", methods=["POST"])
@require(Role.ADMIN)
@blp.arguments(ReasonIn, required=False)  # {reason?}: no body at all is fine too
@blp.response(200, AppTokenRevokedOut)
@blp.alt_response(404, **problem_doc("No such citizen, or no such live app token of theirs"))
def revoke_app_token(body: dict[str, Any], citizen_id: str, token_id: str) -> dict[str, Any]:
    """Revoke one app token of a citizen: refused from the next request on every worker. Audited."""
    rt = runtime()
    with rt.db.session() as session:
        done = tokens.revoke_app_token(session, citizen_id, token_id, body["reason"], actor_kind="admin",
                                       actor_id=current_principal().principal_id)
    revoked(done.token_ids)
    return {"citizen_id": citizen_id, "token_id": token_id, "status": "revoked"}
