"""Admin: register issuers and terminals; rotate and revoke their tokens, deregister terminals."""
from __future__ import annotations

from typing import Any

import marshmallow as ma

from app.api.blueprint import Blueprint
from app.api.schemas import ReasonIn, credential_type_doc, problem_doc
from app.api.security import current_principal, require, revoked
from app.auth import Role
from app.registry import enrolment, tokens
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


class TerminalRevokedOut(ma.Schema):
    terminal_id = ma.fields.String(required=True)
    status = ma.fields.String(required=True, metadata={"enum": ["deregistered"]})
    revoked_tokens = ma.fields.Integer(required=True, metadata={
        "description": "how many live tokens this call revoked (0 when already deregistered)"})


class TerminalTokenOut(ma.Schema):
    terminal_id = ma.fields.String(required=True)
    terminal_token = ma.fields.String(required=True, metadata={"description": "shown once"})
    revoked_tokens = ma.fields.Integer(required=True)


class IssuerTokenOut(ma.Schema):
    issuer_id = ma.fields.String(required=True)
    issuer_token = ma.fields.String(required=True, metadata={"description": "shown once"})
    revoked_tokens = ma.fields.Integer(required=True)


class IssuerRevokedOut(ma.Schema):
    issuer_id = ma.fields.String(required=True)
    revoked_tokens = ma.fields.Integer(required=True)


@blp.route("/terminals/<terminal_id>/revoke", methods=["POST"])
@require(Role.ADMIN)
@blp.arguments(ReasonIn, required=False)  # {reason?}: no body at all is fine too
@blp.response(200, TerminalRevokedOut)
@blp.alt_response(404, **problem_doc("No such terminal"))
def revoke_terminal(body: dict[str, Any], terminal_id: str) -> dict[str, Any]:
    """Deregister a terminal (stolen, lost, retired): its token is refused from the next request
    on every worker, and it gets no new one (register a new terminal instead). Audited."""
    rt = runtime()
    with rt.db.session() as session:
        done = tokens.deregister_terminal(session, terminal_id, body["reason"],
                                          admin_id=current_principal().principal_id)
    revoked(done.token_ids)
    return {"terminal_id": terminal_id, "status": "deregistered", "revoked_tokens": len(done.token_ids)}


@blp.route("/terminals/<terminal_id>/token", methods=["POST"])
@require(Role.ADMIN)
@blp.response(201, TerminalTokenOut)
@blp.alt_response(404, **problem_doc("No such terminal"))
@blp.alt_response(409, **problem_doc("The terminal is deregistered"))
def rotate_terminal_token(terminal_id: str) -> dict[str, Any]:
    """Rotate a terminal's token: the new one is answered once; the old one is refused from the
    next request on every worker. Audited."""
    rt = runtime()
    with rt.db.session() as session:
        done = tokens.rotate_terminal_token(session, terminal_id, admin_id=current_principal().principal_id)
    revoked(done.revoked)
    return {"terminal_id": terminal_id, "terminal_token": done.issued.token,
            "revoked_tokens": len(done.revoked)}


@blp.route("/issuers/<issuer_id>/token", methods=["POST"])
@require(Role.ADMIN)
@blp.response(201, IssuerTokenOut)
@blp.alt_response(404, **problem_doc("No such issuer"))
def rotate_issuer_token(issuer_id: str) -> dict[str, Any]:
    """A new token for an issuer (after a leak, or after its tokens were revoked); the issuer's
    other tokens are refused from the next request on every worker. Audited."""
    rt = runtime()
    with rt.db.session() as session:
        done = tokens.rotate_issuer_token(session, issuer_id, admin_id=current_principal().principal_id)
    revoked(done.revoked)
    return {"issuer_id": issuer_id, "issuer_token": done.issued.token, "revoked_tokens": len(done.revoked)}


@blp.route("/issuers/<issuer_id>/revoke", methods=["POST"])
@require(Role.ADMIN)
@blp.arguments(ReasonIn, required=False)  # {reason?}: no body at all is fine too
@blp.response(200, IssuerRevokedOut)
@blp.alt_response(404, **problem_doc("No such issuer"))
def revoke_issuer_tokens(body: dict[str, Any], issuer_id: str) -> dict[str, Any]:
    """Revoke every token of an issuer: refused from the next request on every worker, until
    `POST /v1/admin/issuers/{issuer_id}/token` gives it a new one. Credentials it issued stay
    valid. Audited."""
    rt = runtime()
    with rt.db.session() as session:
        done = tokens.revoke_issuer_tokens(session, issuer_id, body["reason"],
                                           admin_id=current_principal().principal_id)
    revoked(done.token_ids)
    return {"issuer_id": issuer_id, "revoked_tokens": len(done.token_ids)}

