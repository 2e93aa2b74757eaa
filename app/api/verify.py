"""Terminal (验码): verify a scanned code online. A deny is a normal 200 answer with a reason."""
from __future__ import annotations

from typing import Any

import marshmallow as ma

from app.api.blueprint import Blueprint
from app.api.schemas import DecisionOut
from app.api.security import current_principal, require
from app.auth import Role
from app.runtime import runtime

blp = Blueprint("verify", __name__, url_prefix="/v1", description="Terminals: verify codes")


class VerifyIn(ma.Schema):
    # No length rule here: an oversized code is a bad *code* (deny `malformed`), and the body
    # limit (413) already bounds what is parsed.
    code = ma.fields.String(required=True)
    direction = ma.fields.String(validate=ma.validate.OneOf(["entry", "exit"]), load_default=None)


@blp.route("/verify", methods=["POST"])
@require(Role.TERMINAL)
@blp.arguments(VerifyIn)
@blp.response(200, DecisionOut)
def verify(body: dict[str, Any]) -> dict[str, Any]:
    """Check a code (signature, time, suspension/revocation), then the policy of this terminal's
    kind; first use of `(iss, jti)` is claimed atomically with the scene's state change."""
    rt = runtime()
    terminal = rt.terminals.get(current_principal().principal_id)
    ctx = rt.scans.context(terminal.id, terminal.kind, terminal.site, body["direction"])
    return rt.scans.scan(body["code"], ctx).to_dict()
