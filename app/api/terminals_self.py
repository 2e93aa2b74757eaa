"""Terminal self-description: what a reader is, and the service's clock and code settings.

A reader calls this at enrolment and on every sync: ``kind`` and ``site`` decide which offline
rules it runs, ``server_time`` gives its clock offset, and ``issuer``, ``code_ttl_seconds`` and
``clock_leeway_seconds`` configure its verifier exactly as the server's is (additions to the
contract's ``{terminal_id, kind, site, server_time}``).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import marshmallow as ma

from app.api.blueprint import Blueprint
from app.api.security import current_principal, require
from app.auth import Role
from app.runtime import runtime
from app.verification.issuing import ISSUER

blp = Blueprint("terminals_self", __name__, url_prefix="/v1/terminals",
                description="Terminals: who am I")


class TerminalSelfOut(ma.Schema):
    terminal_id = ma.fields.String(required=True)
    kind = ma.fields.String(required=True, metadata={"enum": ["bus", "metro", "scenic", "hall"]})
    site = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(), required=True)
    server_time = ma.fields.String(required=True, metadata={
        "format": "date-time", "description": "the scan clock (UTC, microseconds)"})
    issuer = ma.fields.String(required=True, metadata={"description": "the `iss` of every code"})
    code_ttl_seconds = ma.fields.Integer(required=True, metadata={
        "description": "lifetime of the codes the service mints (a reader's max_ttl)"})
    clock_leeway_seconds = ma.fields.Integer(required=True)


@blp.route("/me", methods=["GET"])
@require(Role.TERMINAL)
@blp.response(200, TerminalSelfOut)
def me() -> dict[str, Any]:
    """The calling terminal's id, kind and site, the server's time, and the code settings a reader
    verifies with offline."""
    rt = runtime()
    terminal = rt.terminals.get(current_principal().principal_id)
    return {"terminal_id": terminal.id, "kind": terminal.kind, "site": dict(terminal.site),
            "server_time": datetime.fromtimestamp(rt.scans.clock(), timezone.utc)
                           .isoformat(timespec="microseconds"),
            "issuer": ISSUER, "code_ttl_seconds": rt.settings.code_ttl_seconds,
            "clock_leeway_seconds": rt.settings.clock_leeway_seconds}


class ReaderKeysOut(ma.Schema):
    keys = ma.fields.List(ma.fields.Dict(), required=True, metadata={
        "description": "reader keys (current, next, retired in grace): {kid, state, valid_from, "
                       "valid_until, public_key, private_key (P-256 JWK with d)}; replace the held set"})


@blp.route("/me/reader-keys", methods=["GET"])
@require(Role.TERMINAL)
@blp.response(200, ReaderKeysOut)
def reader_keys() -> dict[str, Any]:
    """The private reader keys that open sealed `CC3:` codes (terminals only; keep them like the
    terminal token). Replace the held set with this one on every sync."""
    ring = runtime().devices.reader_keys
    return {"keys": ring.for_terminals() if ring is not None else []}
