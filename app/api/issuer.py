"""Issuer (发证): link credentials to citizens and revoke them; only the issuer's own types."""
from __future__ import annotations

from typing import Any

import marshmallow as ma

from app.api.blueprint import Blueprint
from app.api.schemas import ReasonIn, credential_type_doc, problem_doc, short
from app.api.security import current_principal, require
from app.auth import Role
from app.registry import credentials
from app.runtime import runtime

blp = Blueprint("issuer", __name__, url_prefix="/v1/issuer", description="Issuers")


class CredentialIn(ma.Schema):
    citizen_id = ma.fields.String(required=True, validate=short)
    type = ma.fields.String(required=True, validate=short, metadata=credential_type_doc)
    number = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=64))
    attributes = ma.fields.Dict(keys=ma.fields.String(validate=short),
                                values=ma.fields.String(validate=ma.validate.Length(max=200)),
                                load_default=dict, validate=ma.validate.Length(max=20))
    valid_from = ma.fields.AwareDateTime(load_default=None, default_timezone=None)
    valid_until = ma.fields.AwareDateTime(load_default=None, default_timezone=None)


class CredentialOut(ma.Schema):
    credential_id = ma.fields.String(required=True)
    type = ma.fields.String(required=True)
    status = ma.fields.String(required=True)


@blp.route("/credentials", methods=["POST"])
@require(Role.ISSUER)
@blp.arguments(CredentialIn)
@blp.response(201, CredentialOut)
@blp.alt_response(403, **problem_doc("Not an issuer token, or the type is not this issuer's"))
def issue(body: dict[str, Any]) -> dict[str, Any]:
    """Link a credential to a citizen. Entitlements it gives appear in the citizen's next code."""
    rt = runtime()
    with rt.db.session() as session:
        credential = credentials.issue(
            session, rt.vault, current_principal().principal_id, citizen_id=body["citizen_id"],
            credential_type=body["type"], number=body["number"], attributes=body["attributes"],
            valid_from=body["valid_from"], valid_until=body["valid_until"])
    return {"credential_id": credential.id, "type": credential.type, "status": credential.status}


@blp.route("/credentials/<credential_id>/revoke", methods=["POST"])
@require(Role.ISSUER)
@blp.arguments(ReasonIn, required=False)  # {reason?}: no body at all is fine too
@blp.response(200, CredentialOut)
@blp.alt_response(404, **problem_doc("No such credential of this issuer"))
def revoke(body: dict[str, Any], credential_id: str) -> dict[str, Any]:
    """Revoke: entitlements from it stop at once online and after the next sync offline."""
    rt = runtime()
    with rt.db.session() as session:
        credential = credentials.revoke(session, current_principal().principal_id, credential_id,
                                        body["reason"])
    rt.trust_changed()
    return {"credential_id": credential.id, "type": credential.type, "status": credential.status}
