"""Citizen app: my history — who scanned or read what of mine, where, when and why, and what the
admin and issuers did about me (from the audit log); my codes' taps uploaded by offline readers
and my settled metro trips (from ``app.taps``)."""
from __future__ import annotations

from typing import Any

import marshmallow as ma

from app.api.blueprint import Blueprint
from app.api.security import current_principal, require
from app.audit import log as audit
from app.audit.models import AuditEntry
from app.auth import Role
from app.registry import citizens
from app.registry.credential_types import CREDENTIAL_FIELDS, HOLDER_FIELDS
from app.runtime import runtime
from app.taps import history as taps_history

blp = Blueprint("history", __name__, url_prefix="/v1/me", description="Citizen app: history")

_SCENE_FIELDS = ("direction", "fare", "trip", "admission", "service", "ticket")


class HistoryArgs(ma.Schema):
    limit = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1, max=200))
    # Bounded by the seq column (BIGINT): a larger number is no filter, but SQLite cannot bind it.
    before = ma.fields.Integer(load_default=None, validate=ma.validate.Range(min=1, max=2**63 - 1),
                               metadata={"description": "only entries older than this seq"})


class HistoryEntryOut(ma.Schema):
    seq = ma.fields.Integer(required=True)
    at = ma.fields.DateTime(required=True)
    action = ma.fields.String(required=True, metadata={"enum": [
        "scan", "disclosure_requested", "disclosure_approved", "disclosure_denied",
        "disclosure_read", "disclosure_expired", "disclosure_withdrawn", "citizen_enrolled",
        "citizen_suspended", "citizen_restored", "credential_issued", "credential_revoked"]})
    actor = ma.fields.String(required=True)
    where = ma.fields.Dict(required=True)
    terminal_id = ma.fields.String()
    decision = ma.fields.String()
    reason = ma.fields.String()
    purpose = ma.fields.String()
    credential_types = ma.fields.List(ma.fields.String())
    fields = ma.fields.List(ma.fields.String(), metadata={
        "description": "disclosures: the fields asked for (what approving lets leave), "
                       "`<credential type>.<field>`, e.g. `id_card.holder.name`"})
    disclosed_types = ma.fields.List(ma.fields.String())
    disclosed_fields = ma.fields.List(ma.fields.String(), metadata={
        "description": "disclosure_read: the fields that left, `<credential type>.<field>` (a "
                       "credential no longer valid at the read leaves nothing)"})
    disclosure_id = ma.fields.String()
    credential_id = ma.fields.String()
    direction = ma.fields.String()
    fare = ma.fields.Dict()
    trip = ma.fields.Dict()
    admission = ma.fields.Dict()
    service = ma.fields.String()
    ticket = ma.fields.Raw()


class TapOut(ma.Schema):
    """A decision an offline reader journaled and uploaded."""

    at = ma.fields.DateTime(required=True, metadata={"description": "scan time, server clock"})
    terminal_id = ma.fields.String(required=True)
    seq = ma.fields.Integer(required=True)
    where = ma.fields.Dict(required=True)
    decision = ma.fields.String(required=True)
    reason = ma.fields.String(required=True)
    direction = ma.fields.String()
    mode = ma.fields.String(required=True, metadata={"enum": ["offline", "online"]})
    fare = ma.fields.Dict()
    trip = ma.fields.Dict()
    admission = ma.fields.Dict()
    superseded = ma.fields.Boolean(metadata={
        "description": "true: an offline accept of a scan this terminal had decided online (the "
                       "reply was lost); the online decision is the ride, this one is not billed"})


class TripEndOut(ma.Schema):
    terminal_id = ma.fields.String(required=True)
    station = ma.fields.String()
    at = ma.fields.DateTime(required=True)
    mode = ma.fields.String(required=True, metadata={"enum": ["offline", "online"]})
    seq = ma.fields.Integer()


class TripOut(ma.Schema):
    """A metro trip with an offline end, priced at settlement (or by the online exit gate)."""

    status = ma.fields.String(required=True, metadata={"enum": [
        "settled", "unpaired_entry", "unpaired_exit"]})
    at = ma.fields.DateTime(required=True)
    entry = ma.fields.Nested(TripEndOut)
    exit = ma.fields.Nested(TripEndOut)
    fare = ma.fields.Dict(required=True, metadata={"description": "{amount_cents, category, from?, to?}"})
    priced_by = ma.fields.String(required=True, metadata={"enum": ["settlement", "online_gate"]})
    settled_at = ma.fields.DateTime(required=True)


class HistoryOut(ma.Schema):
    entries = ma.fields.List(ma.fields.Nested(HistoryEntryOut), required=True)
    next_before = ma.fields.Integer(allow_none=True, required=True,
                                    metadata={"description": "pass as ?before= for older entries"})
    taps = ma.fields.List(ma.fields.Nested(TapOut), metadata={
        "description": "my codes' decisions uploaded by offline readers, newest first, at most "
                       "`limit`; on the first page only (without `before`)"})
    trips = ma.fields.List(ma.fields.Nested(TripOut), metadata={
        "description": "my settled metro trips with fares, newest first, at most `limit`; on the "
                       "first page only"})


def _disclosed_fields(disclosed: list[dict[str, Any]]) -> list[str]:
    """Each field that left once, in order (two credentials of one type name the same fields).
    Reads audited before fields were recorded released every field and the holder."""
    names = (f"{d['type']}.{name}" for d in disclosed
             for name in d.get("fields", CREDENTIAL_FIELDS + HOLDER_FIELDS))
    return list(dict.fromkeys(names))


def _entry(entry: AuditEntry) -> dict[str, Any]:
    details = entry.details or {}
    terminal_id = entry.actor_id if entry.actor_kind == "terminal" else details.get("terminal_id")
    disclosed = details.get("disclosed")
    out: dict[str, Any] = {
        "seq": entry.seq, "at": audit.utc(entry.at), "action": entry.action, "actor": entry.actor_kind,
        "where": entry.site or {}, "terminal_id": terminal_id, "decision": details.get("decision"),
        "reason": entry.reason, "purpose": entry.purpose,
        "credential_types": details.get("credential_types"),
        "fields": details.get("fields"),
        "disclosed_types": [d["type"] for d in disclosed] if disclosed is not None else None,
        "disclosed_fields": _disclosed_fields(disclosed) if disclosed is not None else None,
        "disclosure_id": details.get("disclosure_id"), "credential_id": details.get("credential_id"),
        **{name: details.get(name) for name in _SCENE_FIELDS}}
    return {key: value for key, value in out.items() if value is not None}


@blp.route("/history", methods=["GET"])
@require(Role.CITIZEN)
@blp.arguments(HistoryArgs, location="query")
@blp.response(200, HistoryOut)
def history(args: dict[str, Any]) -> dict[str, Any]:
    """Scans of my codes, disclosures of my credentials, my credentials issued and revoked, my
    enrolment, suspension and restoration; newest first. A scan shows once the record writer has
    written it to the audit log: normally within a fraction of a second, at most the service's
    `records_max_lag_seconds` while it is ready. The first page (no `before`) also lists
    taps uploaded by offline readers and settled metro trips with their fares."""
    with runtime().db.session() as session:
        subject = citizens.get(session, current_principal().principal_id).pseudonym
        entries = audit.entries_for(session, subject, limit=args["limit"], before=args["before"])
        shown = [_entry(e) for e in entries]
        first_page = args["before"] is None
        taps = taps_history.taps_for(session, subject, limit=args["limit"]) if first_page else []
        trips = taps_history.trips_for(session, subject, limit=args["limit"]) if first_page else []
    full = len(entries) == args["limit"]
    return {"entries": shown, "next_before": entries[-1].seq if full and entries else None,
            "taps": taps, "trips": trips}
