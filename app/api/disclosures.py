"""Service hall (查证) and citizen app: consent-based disclosure of credentials.

A hall terminal scans a code to request credential types (and, optionally, exactly which of their
fields) for a purpose; the citizen sees those fields and approves or denies in the app; the
requesting terminal reads an approved request exactly once and receives exactly those fields.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import marshmallow as ma
from flask import jsonify

from app.api.blueprint import Blueprint
from app.api.schemas import DecisionOut, credential_type_doc, problem_doc
from app.registry.credential_types import FIELDS, IDENTITY_TYPES
from app.api.security import current_principal, require
from app.auth import Role
from app.hall.disclosure_store import Disclosure
from app.runtime import runtime

blp = Blueprint("disclosures", __name__, description="Service halls and citizens: consent-based disclosure")


_FIELDS_DOC = (
    "Optional: exactly which fields may leave, each `<credential type>.<field>` with field one of "
    f"{', '.join('`' + f + '`' for f in FIELDS)}; every field's type must be in `credential_types` and "
    "every type needs at least one field (422 otherwise). Without it, each type releases "
    f"`number`, `issuer`, `valid_until` and `attributes`; {', '.join(sorted(IDENTITY_TYPES))} also "
    "the holder's name and ID number (`holder.name`, `holder.id_number`), any other type no holder "
    "identity.")
_LISTED_FIELDS = {"description": "the fields asked for (all that can leave), `<credential type>.<field>`"}


class DisclosureIn(ma.Schema):
    code = ma.fields.String(required=True)
    credential_types = ma.fields.List(ma.fields.String(validate=ma.validate.Length(min=1, max=32),
                                                        metadata=credential_type_doc),
                                      required=True, validate=ma.validate.Length(min=1, max=5))
    purpose = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))
    fields = ma.fields.List(
        ma.fields.String(validate=ma.validate.Length(min=1, max=64)),
        validate=ma.validate.Length(min=1, max=len(FIELDS) * 5), load_default=None, metadata={
            "description": _FIELDS_DOC, "example": ["id_card.holder.name", "social_security_card.number"]})


class PendingDisclosureArgs(ma.Schema):
    status = ma.fields.String(load_default="pending", validate=ma.validate.OneOf(["pending"]))


class DisclosureCreatedOut(ma.Schema):
    disclosure_id = ma.fields.String(required=True)
    status = ma.fields.String(required=True)
    expires_at = ma.fields.DateTime(required=True)
    fields = ma.fields.List(ma.fields.String(), required=True, metadata=_LISTED_FIELDS)


class DisclosureHolderOut(ma.Schema):
    """Only the parts asked for (`holder.name`, `holder.id_number`)."""

    name = ma.fields.String()
    id_number = ma.fields.String()


class DisclosedCredentialOut(ma.Schema):
    """One credential: its id and type, and only the fields asked for of its type."""

    credential_id = ma.fields.String(required=True)
    type = ma.fields.String(required=True)
    number = ma.fields.String()
    attributes = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())
    issuer = ma.fields.String()
    valid_until = ma.fields.DateTime(allow_none=True)
    holder = ma.fields.Nested(DisclosureHolderOut)


class DisclosureStateOut(ma.Schema):
    disclosure_id = ma.fields.String(required=True)
    status = ma.fields.String(required=True, metadata={
        "enum": ["pending", "approved", "denied", "expired", "withdrawn"],
        "description": "withdrawn: the citizen was suspended before the request was read"})
    expires_at = ma.fields.DateTime()
    fields = ma.fields.List(ma.fields.String(), metadata=_LISTED_FIELDS)
    credentials = ma.fields.List(ma.fields.Nested(DisclosedCredentialOut))


class PendingDisclosureOut(ma.Schema):
    disclosure_id = ma.fields.String(required=True)
    status = ma.fields.String(required=True)
    terminal_id = ma.fields.String(required=True)
    where = ma.fields.Dict(required=True)
    credential_types = ma.fields.List(ma.fields.String(), required=True)
    fields = ma.fields.List(ma.fields.String(), required=True, metadata={
        "description": "exactly what approving lets leave, `<credential type>.<field>`; the holder's "
                       "name and ID number only as `….holder.name` / `….holder.id_number`"})
    purpose = ma.fields.String(required=True)
    created_at = ma.fields.DateTime(required=True)
    expires_at = ma.fields.DateTime(required=True)


class DisclosureAnswerOut(ma.Schema):
    disclosure_id = ma.fields.String(required=True)
    status = ma.fields.String(required=True)


def _time(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, timezone.utc)


def _pending(d: Disclosure) -> dict[str, Any]:
    return {"disclosure_id": d.id, "status": d.status, "terminal_id": d.terminal_id, "where": d.site,
            "credential_types": list(d.credential_types), "fields": list(d.fields), "purpose": d.purpose,
            "created_at": _time(d.created_at), "expires_at": _time(d.expires_at)}


@blp.route("/v1/disclosures", methods=["POST"])
@require(Role.TERMINAL)
@blp.arguments(DisclosureIn)
@blp.response(201, DisclosureCreatedOut)
@blp.alt_response(200, schema=DecisionOut, description="The code was denied (a normal answer)")
@blp.alt_response(403, **problem_doc("Not a service-hall terminal"))
def request_disclosure(body: dict[str, Any]) -> Any:
    """Scan a citizen's code (consuming it) to ask for credential types, for a stated purpose;
    optionally name exactly which fields of them may leave (`fields`)."""
    rt = runtime()
    terminal = rt.terminals.get(current_principal().principal_id)
    outcome = rt.disclosures.request(terminal, body["code"], body["credential_types"], body["purpose"],
                                     body["fields"])
    if outcome.disclosure is None:
        return jsonify(outcome.decision.to_dict())
    d = outcome.disclosure
    return {"disclosure_id": d.id, "status": d.status, "expires_at": _time(d.expires_at),
            "fields": list(d.fields)}


@blp.route("/v1/disclosures/<disclosure_id>", methods=["GET"])
@require(Role.TERMINAL)
@blp.response(200, DisclosureStateOut)
@blp.alt_response(404, **problem_doc("No such request for this terminal"))
@blp.alt_response(410, **problem_doc("Already read: an approved request is readable once"))
def read_disclosure(disclosure_id: str) -> dict[str, Any]:
    """The request's state; once approved, the credentials with exactly the fields asked for and
    approved, readable exactly once."""
    release = runtime().disclosures.read(current_principal().principal_id, disclosure_id)
    d = release.disclosure
    body: dict[str, Any] = {"disclosure_id": d.id, "status": d.status}
    if d.status == "pending":
        body["expires_at"] = _time(d.expires_at)
        body["fields"] = list(d.fields)
    if release.credentials is not None:
        body["credentials"] = release.credentials
    return body


@blp.route("/v1/me/disclosures", methods=["GET"])
@require(Role.CITIZEN)
@blp.arguments(PendingDisclosureArgs, location="query")
@blp.response(200, PendingDisclosureOut(many=True))
def my_pending(args: dict[str, Any]) -> list[dict[str, Any]]:
    """Disclosure requests waiting for my answer: who asks, for which fields of which credentials,
    why, until when."""
    return [_pending(d) for d in runtime().disclosures.pending_for(current_principal().principal_id)]


def _answer(disclosure_id: str, approve: bool) -> dict[str, Any]:
    d = runtime().disclosures.answer(current_principal().principal_id, disclosure_id, approve)
    return {"disclosure_id": d.id, "status": "approved" if approve else "denied"}


@blp.route("/v1/me/disclosures/<disclosure_id>/approve", methods=["POST"])
@require(Role.CITIZEN)
@blp.response(200, DisclosureAnswerOut)
@blp.alt_response(404, **problem_doc("No such request for this citizen"))
@blp.alt_response(409, **problem_doc("The request is no longer pending"))
def approve(disclosure_id: str) -> dict[str, Any]:
    """Let the requesting terminal read the requested fields of the requested credentials, once."""
    return _answer(disclosure_id, True)


@blp.route("/v1/me/disclosures/<disclosure_id>/deny", methods=["POST"])
@require(Role.CITIZEN)
@blp.response(200, DisclosureAnswerOut)
@blp.alt_response(404, **problem_doc("No such request for this citizen"))
@blp.alt_response(409, **problem_doc("The request is no longer pending"))
def deny(disclosure_id: str) -> dict[str, Any]:
    """Refuse: the requesting terminal learns only that the request was denied."""
    return _answer(disclosure_id, False)

