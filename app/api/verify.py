"""Terminal (验码): verify a scanned code online. A deny is a normal 200 answer with a reason."""
from __future__ import annotations

from typing import Any

import marshmallow as ma

from app.api.blueprint import Blueprint, json_response
from app.api.schemas import DecisionOut, problem_doc
from app.api.security import current_principal, require
from app.auth import Role
from app.runtime import runtime
from app.verification.retries import REQUEST_ID_PATTERN, valid_request_id

blp = Blueprint("verify", __name__, url_prefix="/v1", description="Terminals: verify codes")

REUSED_REQUEST_ID = problem_doc("This request_id was already used by this terminal for another "
                                "request (another code, direction or service)")


def _check_request_id(value: str) -> None:
    if not valid_request_id(value):
        raise ma.ValidationError("1..64 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'.")


def request_id_field() -> ma.fields.String:
    """The optional ``request_id`` of a scan (also taken by hall kiosk tickets)."""
    return ma.fields.String(load_default=None, validate=_check_request_id, metadata={
        "pattern": REQUEST_ID_PATTERN, "minLength": 1, "maxLength": 64,
        "description": "Chosen by the terminal, unique per terminal. Send the same value when "
                       "retrying a request whose reply was lost: within the code's lifetime the "
                       "retry gets the first answer back and changes nothing. The same value "
                       "with another code (or direction, or service) is 409."})


class VerifyIn(ma.Schema):
    # No length rule here: an oversized code is a bad *code* (deny `malformed`), and the body
    # limit (413) already bounds what is parsed.
    code = ma.fields.String(required=True)
    direction = ma.fields.String(validate=ma.validate.OneOf(["entry", "exit"]), load_default=None)
    request_id = request_id_field()


_VERIFY_KEYS = frozenset(VerifyIn().fields)
_DIRECTIONS = (None, "entry", "exit")
_DECISION_FIELDS = frozenset(DecisionOut().fields)


def fast_verify_in(data: Any) -> dict[str, Any] | None:
    """What ``VerifyIn().load(data)`` gives for a plainly valid body; ``None`` when unsure (then
    the schema decides, and answers every 422)."""
    if type(data) is not dict or not _VERIFY_KEYS.issuperset(data):
        return None
    code, direction, request_id = data.get("code"), data.get("direction"), data.get("request_id")
    if type(code) is not str or direction not in _DIRECTIONS:
        return None
    if request_id is not None and (type(request_id) is not str or not valid_request_id(request_id)):
        return None
    return {"code": code, "direction": direction, "request_id": request_id}


@blp.route("/verify", methods=["POST"])
@require(Role.TERMINAL)
@blp.arguments(VerifyIn, fast=fast_verify_in)
@blp.response(200, DecisionOut)
@blp.alt_response(409, **REUSED_REQUEST_ID)
def verify(body: dict[str, Any]) -> Any:
    """Check a code (signature, time, suspension/revocation), then the policy of this terminal's
    kind; first use of `(iss, jti)` is claimed atomically with the scene's state change. A retry
    with the same `request_id` answers the first decision again and changes nothing."""
    rt = runtime()
    terminal = rt.terminals.get(current_principal().principal_id)
    ctx = rt.scans.context(terminal.id, terminal.kind, terminal.site, body["direction"])
    return json_response(rt.scans.answer(body["code"], ctx, body["request_id"]), _DECISION_FIELDS)
