"""Admin: register issuers and terminals."""
from __future__ import annotations

from typing import Any

import marshmallow as ma

from app.api.blueprint import Blueprint
from app.api.schemas import credential_type_doc
from app.api.security import current_principal, require
from app.auth import Role
from app.registry import enrolment
from app.runtime import runtime
from app.scenes.sites import site_problems

blp = Blueprint("admin_registry", __name__, url_prefix="/v1/admin", description="Issuers and terminals")

_short = ma.validate.Length(min=1, max=64)


class IssuerIn(ma.Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))
    credential_types = ma.fields.List(ma.fields.String(validate=_short, metadata=credential_type_doc),
                                      required=True,
                                      validate=ma.validate.Length(min=1, max=50))


class IssuerOut(ma.Schema):
    issuer_id = ma.fields.String(required=True)
    issuer_token = ma.fields.String(required=True)


class TerminalIn(ma.Schema):
    kind = ma.fields.String(required=True, validate=ma.validate.OneOf(list(enrolment.TERMINAL_SITE_FIELDS)))
    site = ma.fields.Dict(keys=ma.fields.String(validate=_short), values=ma.fields.String(validate=_short),
                          required=True, metadata={"description": (
                              "by kind: bus {line, vehicle}, metro {station}, scenic {spot}, hall "
                              "{hall, counter?}, naming a place the city has (422 otherwise)")})


class TerminalOut(ma.Schema):
    terminal_id = ma.fields.String(required=True)
    terminal_token = ma.fields.String(required=True)
    kind = ma.fields.String(required=True)
    site = ma.fields.Dict(required=True)


@blp.route("/issuers", methods=["POST"])
@require(Role.ADMIN)
@blp.arguments(IssuerIn)
@blp.response(201, IssuerOut)
def create_issuer(body: dict[str, Any]) -> dict[str, Any]:
    """Register an issuing bureau with the credential types it may issue."""
    with runtime().db.session() as session:
        issuer = enrolment.register_issuer(session, body["name"], body["credential_types"],
                                           admin_id=current_principal().principal_id)
    return {"issuer_id": issuer.id, "issuer_token": issuer.token}


@blp.route("/terminals", methods=["POST"])
@require(Role.ADMIN)
@blp.arguments(TerminalIn)
@blp.response(201, TerminalOut)
def create_terminal(body: dict[str, Any]) -> dict[str, Any]:
    """Register a reader at a site: bus {line, vehicle}, metro {station}, scenic {spot}, hall {hall, counter?}."""
    with runtime().db.session() as session:
        terminal = enrolment.register_terminal(session, body["kind"], body["site"], site_problems,
                                               admin_id=current_principal().principal_id)
    return {"terminal_id": terminal.id, "terminal_token": terminal.token, "kind": body["kind"],
            "site": body["site"]}
