"""Terminal (验码): upload the reader's journal of decisions (POST /v1/taps)."""
from __future__ import annotations

import json
import time
from typing import Any

import marshmallow as ma
from flask import request

from app.api.blueprint import Blueprint
from app.api.schemas import WholeNumber, problem_doc
from app.api.security import current_principal, require
from app.auth import Role
from app.codes.messages import REASONS
from app.runtime import runtime
from app.taps import TapRecord
from app.taps.anomalies import KINDS
from app.taps.record import BadTime, parse_scanned_at
from app.taps.validate import MAX_RECORDS, MAX_RESULT_CHARS, REQUEST_ID, YEAR, records_if_valid

blp = Blueprint("taps", __name__, url_prefix="/v1", description="Terminals: tap uploads")



@blp.url_value_preprocessor
def _body_limit(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """A batch of 1,000 records is larger than the service-wide body limit: this route has its
    own (``CITYCODE_TAPS_MAX_BODY_BYTES``), still answered 413 beyond it. Runs before the
    service's size check (``app.api.problems``), which reads the request's limit."""
    request.max_content_length = runtime().settings.taps_max_body_bytes


class ScannedAt(ma.fields.Field):
    """RFC 3339 with an offset, or epoch seconds."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        try:
            return parse_scanned_at(value)
        except BadTime as exc:
            raise ma.ValidationError(str(exc)) from None


class Number(ma.fields.Float):
    """A JSON number: not a string of digits, not a boolean, finite."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class StrictBoolean(ma.fields.Boolean):
    truthy = {True}
    falsy = {False}


def _small_result(value: dict[str, Any]) -> None:
    if len(json.dumps(value)) > MAX_RESULT_CHARS:
        raise ma.ValidationError(f"At most {MAX_RESULT_CHARS} characters of JSON.")


class LocationIn(ma.Schema):
    lat = Number(required=True, validate=ma.validate.Range(-90, 90))
    lon = Number(required=True, validate=ma.validate.Range(-180, 180))


class TapRecordIn(ma.Schema):
    """One journaled decision (the tap record contract)."""

    seq = WholeNumber(required=True, validate=ma.validate.Range(min=1, max=2**63 - 1),
                      metadata={"description": "per-terminal sequence; (terminal, seq) is stored once"})
    jti = ma.fields.String(required=True, allow_none=True, validate=ma.validate.Length(1, 128))
    sub = ma.fields.String(required=True, allow_none=True, validate=ma.validate.Length(1, 64),
                           metadata={"description": "pseudonym; null when the code was not authentic"})
    iss = ma.fields.String(load_default="cc", validate=ma.validate.Length(1, 64))
    scanned_at = ScannedAt(required=True, metadata={
        "type": ["string", "number"], "example": "2026-12-01T08:30:00.250+08:00",
        "description": "reader's clock: RFC 3339 with an offset, or epoch seconds"})
    decision = ma.fields.String(required=True, validate=ma.validate.OneOf(["accept", "deny"]))
    reason = ma.fields.String(required=True, validate=ma.validate.OneOf(sorted(REASONS)))
    direction = ma.fields.String(load_default=None, allow_none=True,
                                 validate=ma.validate.OneOf(["entry", "exit"]),
                                 metadata={"description": "metro gates only (required on accepts)"})
    mode = ma.fields.String(load_default="offline", validate=ma.validate.OneOf(["offline", "online"]))
    ent = ma.fields.List(ma.fields.String(validate=ma.validate.Length(1, 32)), load_default=None,
                         allow_none=True, validate=ma.validate.Length(max=32))
    trust_version = WholeNumber(load_default=None, allow_none=True,
                                validate=ma.validate.Range(min=0, max=2**63 - 1))
    trust_age_s = Number(load_default=None, allow_none=True,
                         validate=ma.validate.Range(min=0, max=100 * YEAR))
    clock_offset_s = Number(load_default=None, allow_none=True, validate=ma.validate.Range(-YEAR, YEAR),
                            metadata={"description": "reader clock minus server clock at last sync"})
    location = ma.fields.Nested(LocationIn, load_default=None, allow_none=True)
    stale = StrictBoolean(load_default=None, allow_none=True)
    request_id = ma.fields.String(load_default=None, allow_none=True,
                                  validate=ma.validate.Regexp(REQUEST_ID))
    result = ma.fields.Dict(keys=ma.fields.String(), load_default=None, allow_none=True,
                            validate=_small_result, metadata={
                                "description": "the scene result shown: {fare} / {trip} / {admission}"})

    @ma.validates_schema
    def _consistent(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["decision"] == "accept" and data["reason"] != "ok":
            raise ma.ValidationError("An accept has reason ok.", "reason")
        if data["decision"] == "deny" and data["reason"] == "ok":
            raise ma.ValidationError("A deny names why (reason ok is for accepts).", "reason")
        if data["decision"] == "accept" and data["mode"] == "offline" \
                and (data["jti"] is None or data["sub"] is None):
            # An online accept may lack them: the server decided, the reader may not know the key.
            raise ma.ValidationError("An offline accept is of an authentic code: jti and sub are "
                                     "needed.", "sub")


class TapsIn(ma.Schema):
    """The upload body. Loads to ``{"records": [TapRecord, ...]}``: a body the fast check
    (``app.taps.validate``) proves valid skips marshmallow; any other is loaded field by field
    here, which accepts it or raises the per-record errors (422)."""

    records = ma.fields.List(ma.fields.Nested(TapRecordIn), required=True,
                             validate=ma.validate.Length(1, MAX_RECORDS))

    def load(self, data: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        records = records_if_valid(data)
        if records is None:
            loaded = super().load(data, **kwargs)
            records = [TapRecord.from_body(record) for record in loaded["records"]]
        return {"records": records}


class AnomalyOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    kind = ma.fields.String(required=True, metadata={"enum": list(KINDS)})
    jti = ma.fields.String()
    sub = ma.fields.String()
    terminal_id = ma.fields.String(required=True)
    seq = ma.fields.Integer(required=True)
    detail = ma.fields.String(required=True)
    at = ma.fields.String(required=True, metadata={"format": "date-time",
                                                   "description": "the record's time (server clock)"})
    found_at = ma.fields.String(required=True, metadata={"format": "date-time"})


class TapsOut(ma.Schema):
    stored = ma.fields.Integer(required=True)
    duplicates = ma.fields.Integer(required=True)
    anomalies = ma.fields.List(ma.fields.Nested(AnomalyOut), required=True,
                               metadata={"description": "anomalies this upload revealed"})
    superseded = ma.fields.Integer(required=True, metadata={
        "description": "of the stored records, offline accepts this terminal had already decided "
                       "online (same code, the record's request_id): kept, shown as superseded, "
                       "never settled or billed"})


@blp.route("/taps", methods=["POST"])
@require(Role.TERMINAL)
@blp.arguments(TapsIn)
@blp.response(200, TapsOut)
@blp.alt_response(413, **problem_doc("The body is over CITYCODE_TAPS_MAX_BODY_BYTES (2 MiB)"))
@blp.alt_response(503, **problem_doc(
    "Not confirmed in time (the record writer is behind or down, or Redis is unreachable); "
    "send the batch again after `Retry-After` seconds: nothing is stored twice"))
def upload(body: dict[str, Any]) -> dict[str, Any]:
    """Store 1..1000 journaled decisions; each `(terminal, seq)` once, however often, in whatever
    order and batches it is sent (a resend with other content stays a duplicate and is reported
    as `seq_conflict`). A batch with any invalid record is 422 with per-record `errors` and
    stores nothing. Answered only after the batch is committed (by the record writer, which
    commits the uploads waiting together); 503 with `Retry-After` when that does not happen
    within a few seconds."""
    rt = runtime()
    terminal = rt.terminals.get(current_principal().principal_id)
    return rt.taps.submit(terminal, body["records"], time.time())
