"""Service halls (取号): the hall directory, kiosk tickets, counter calls and the display board.

A kiosk scan answers 201 with the ticket, or 200 with a normal ``deny`` decision (bad, expired,
replayed code; ``degraded`` when the queues cannot be reached — halls fail closed). Additions to
API.md: ``POST /v1/halls/{hall}/skip`` and ``…/recall``; ``level`` and ``counters`` in the
directory; ``decision``, ``reason``, ``message``, ``hall`` and ``existing`` in a ticket;
``service`` in a call; ``request_id`` in a ticket request (a retry answers the first ticket
again, 409 when reused for another request). Counter actions name a configured counter (422
otherwise) and come from that counter's own terminal (403 for kiosks and other counters); a call
for a service outside the counter's plan is 403. Rules are in ``app.hall``.
"""
from __future__ import annotations

from typing import Any

import marshmallow as ma

from app.api.blueprint import Blueprint
from app.api.security import current_principal, require
from app.api.schemas import problem_doc, short
from app.api.verify import REUSED_REQUEST_ID, request_id_field
from app.auth import Role
from app.hall import directory
from app.registry.terminals import TerminalInfo
from app.runtime import runtime

blp = Blueprint("halls", __name__, url_prefix="/v1/halls", description="Service halls: queue numbers")

_NOT_THIS_HALL = problem_doc("Not a terminal of this hall")
_NOT_THIS_COUNTER = problem_doc("Not this counter's own terminal (a kiosk, another counter or another "
                                "hall's terminal), or a call for a service outside the counter's plan")


# Schema names carry "Hall": OpenAPI component names are global across blueprints.
class HallTicketIn(ma.Schema):
    code = ma.fields.String(required=True)
    service = ma.fields.String(required=True, validate=short)
    request_id = request_id_field()


class HallTicketOut(ma.Schema):
    decision = ma.fields.String(required=True, metadata={"enum": ["accept", "deny"]})
    reason = ma.fields.String(required=True)
    message = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(), required=True,
                             metadata={"description": "{zh, en}"})
    ticket = ma.fields.String(metadata={"example": "A023"})
    service = ma.fields.String()
    ahead = ma.fields.Integer(metadata={"description": "people waiting in front, same service"})
    issued_at = ma.fields.String(metadata={"format": "date-time"})
    hall = ma.fields.String()
    existing = ma.fields.Boolean(metadata={"description": "true: the citizen's waiting ticket, again"})


class HallCounterIn(ma.Schema):
    counter = ma.fields.String(required=True, validate=short, metadata={
        "description": "one of the hall's configured counters (`GET /v1/halls`); 422 otherwise"})


class HallCallIn(HallCounterIn):
    service = ma.fields.String(validate=short, load_default=None, metadata={
        "description": "only this service, which must be in the counter's plan (403 otherwise)"})


class HallCallingOut(ma.Schema):
    ticket = ma.fields.String(required=True)
    counter = ma.fields.String(required=True)


class HallCallOut(HallCallingOut):
    service = ma.fields.String(required=True)


class HallBoardOut(ma.Schema):
    calling = ma.fields.List(ma.fields.Nested(HallCallingOut), required=True)
    waiting = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer(), required=True)


class HallServiceOut(ma.Schema):
    service = ma.fields.String(required=True)
    name = ma.fields.String(required=True)
    prefix = ma.fields.String(required=True)


class HallCounterOut(ma.Schema):
    counter = ma.fields.String(required=True)
    services = ma.fields.List(ma.fields.String(), required=True)


class HallOut(ma.Schema):
    hall = ma.fields.String(required=True)
    name = ma.fields.String(required=True)
    level = ma.fields.String(required=True, metadata={"enum": ["city", "district", "township"]})
    services = ma.fields.List(ma.fields.Nested(HallServiceOut), required=True)
    counters = ma.fields.List(ma.fields.Nested(HallCounterOut), required=True)


def _terminal() -> TerminalInfo:
    return runtime().terminals.get(current_principal().principal_id)


@blp.route("", methods=["GET"])
@blp.response(200, HallOut(many=True))
def list_halls() -> list[dict[str, Any]]:
    """Every hall (city, district, township centres) with its services and counters."""
    return [{"hall": h.hall, "name": h.name, "level": h.level, "services": h.services,
             "counters": [{"counter": c, "services": [s.service for s in h.services_for(c)]}
                          for c in h.counters]} for h in directory()]


@blp.route("/<hall>/tickets", methods=["POST"])
@require(Role.TERMINAL)
@blp.arguments(HallTicketIn)
@blp.response(201, HallTicketOut)
@blp.alt_response(200, schema=HallTicketOut, description="The code was denied: no ticket.")
@blp.alt_response(403, **_NOT_THIS_HALL)
@blp.alt_response(404, **problem_doc("No such hall"))
@blp.alt_response(409, **REUSED_REQUEST_ID)
def take_ticket(body: dict[str, Any], hall: str) -> tuple[dict[str, Any], int]:
    """Kiosk scan: take a number for `service` (the same one again if already waiting). A retry
    with the same `request_id` answers the first ticket again and takes nothing."""
    answer = runtime().halls.ticket(_terminal(), hall, body["service"], body["code"], body["request_id"])
    return answer, 201 if answer["decision"] == "accept" else 200


@blp.route("/<hall>/call", methods=["POST"])
@require(Role.TERMINAL)
@blp.arguments(HallCallIn)
@blp.response(200, HallCallOut)
@blp.alt_response(403, **_NOT_THIS_COUNTER)
@blp.alt_response(404, **problem_doc("No such hall, or nobody waits"))
def call_next(body: dict[str, Any], hall: str) -> Any:
    """Call the next number to a counter (the oldest across its services, or of `service`) from
    that counter's own terminal; 404 when nobody waits."""
    return runtime().halls.call(_terminal(), hall, body["counter"], body["service"])


@blp.route("/<hall>/skip", methods=["POST"])
@require(Role.TERMINAL)
@blp.arguments(HallCounterIn)
@blp.response(200, HallCallOut)
@blp.alt_response(403, **_NOT_THIS_COUNTER)
@blp.alt_response(404, **problem_doc("No such hall, or the counter is not calling anyone"))
def skip(body: dict[str, Any], hall: str) -> Any:
    """The counter's current number did not come: mark it skipped and clear the call."""
    return runtime().halls.skip(_terminal(), hall, body["counter"])


@blp.route("/<hall>/recall", methods=["POST"])
@require(Role.TERMINAL)
@blp.arguments(HallCounterIn)
@blp.response(200, HallCallOut)
@blp.alt_response(403, **_NOT_THIS_COUNTER)
@blp.alt_response(404, **problem_doc("No such hall, or the counter is not calling anyone"))
def recall(body: dict[str, Any], hall: str) -> Any:
    """Announce the counter's current number again."""
    return runtime().halls.recall(_terminal(), hall, body["counter"])


@blp.route("/<hall>/board", methods=["GET"])
@blp.response(200, HallBoardOut)
@blp.alt_response(404, **problem_doc("No such hall"))
def board(hall: str) -> Any:
    """The display board: current call per counter and how many wait per service."""
    return runtime().halls.board(hall)
