"""Admin: enrol citizens (after real-name verification elsewhere), suspend and restore them."""
from __future__ import annotations

from typing import Any

import marshmallow as ma

from app.api.blueprint import Blueprint
from app.api.schemas import ReasonIn, problem_doc
from app.api.security import current_principal, require
from app.auth import Role
from app.registry import citizens
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
    return {"citizen_id": citizen_id, "status": status}


@blp.route("/<citizen_id>/suspend", methods=["POST"])
@require(Role.ADMIN)
@blp.arguments(ReasonIn, required=False)  # {reason?}: no body at all is fine too
@blp.response(200, CitizenStatusOut)
@blp.alt_response(404, **problem_doc("No such citizen"))
def suspend(body: dict[str, Any], citizen_id: str) -> dict[str, Any]:
    """Suspend: every code of this citizen is denied `suspended` from now on."""
    return _set_status(citizen_id, citizens.SUSPENDED, body["reason"])


@blp.route("/<citizen_id>/restore", methods=["POST"])
@require(Role.ADMIN)
@blp.arguments(ReasonIn, required=False)  # {reason?}: no body at all is fine too
@blp.response(200, CitizenStatusOut)
@blp.alt_response(404, **problem_doc("No such citizen"))
def restore(body: dict[str, Any], citizen_id: str) -> dict[str, Any]:
    """Restore a suspended citizen."""
    return _set_status(citizen_id, citizens.ACTIVE, body["reason"])
