"""Admin: anomalies found in readers' tap uploads; settling offline metro taps on demand."""
from __future__ import annotations

from typing import Any

import time

import marshmallow as ma

from app.api.blueprint import Blueprint
from app.api.security import require
from app.api.taps import AnomalyOut
from app.auth import Role
from app.runtime import runtime
from app.taps.anomalies import KINDS, Since
from app.taps.record import BadTime, parse_scanned_at

blp = Blueprint("anomalies", __name__, url_prefix="/v1/admin",
                description="Admin: tap anomalies and settlement")

class AnomaliesArgs(ma.Schema):
    since = ma.fields.String(load_default=None, validate=ma.validate.Length(1, 40), metadata={
        "description": "an anomaly id (only later ones; pass the last answer's `next_since`) or "
                       "an RFC 3339 time with offset (those found at or after it)"})
    limit = ma.fields.Integer(load_default=100, validate=ma.validate.Range(min=1, max=1000))
    kind = ma.fields.String(load_default=None, validate=ma.validate.OneOf(KINDS))

    @ma.post_load
    def _since(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        raw = data["since"]
        if raw is None:
            data["since"] = Since()
        elif raw.isascii() and raw.isdigit():
            if int(raw) > 2**63 - 1:
                raise ma.ValidationError("An anomaly id is at most 2^63 - 1.", "since")
            data["since"] = Since(after_id=int(raw))
        else:
            try:
                data["since"] = Since(found_from=parse_scanned_at(raw))
            except BadTime:
                raise ma.ValidationError("Give an anomaly id or an RFC 3339 time with an offset.",
                                         "since") from None
        return data


class AnomaliesOut(ma.Schema):
    anomalies = ma.fields.List(ma.fields.Nested(AnomalyOut), required=True)
    next_since = ma.fields.Integer(allow_none=True, required=True, metadata={
        "description": "the last listed id: pass it as ?since= for the next ones"})


@blp.route("/anomalies", methods=["GET"])
@require(Role.ADMIN)
@blp.arguments(AnomaliesArgs, location="query")
@blp.response(200, AnomaliesOut)
def anomalies(args: dict[str, Any]) -> dict[str, Any]:
    """Anomalies found in tap uploads, oldest first: `double_use`, `used_after_online`,
    `impossible_travel`, `stale_trust`, `seq_conflict`, `fare_mismatch`. `since` is an anomaly id
    (exclusive) or an RFC 3339 time (anomalies found at or after it)."""
    since: Since = args["since"]
    found = runtime().taps.anomalies(since, limit=args["limit"], kind=args["kind"])
    return {"anomalies": found, "next_since": found[-1]["id"] if found else since.after_id}


class SettleIn(ma.Schema):
    due_only = ma.fields.Boolean(load_default=False, metadata={
        "description": "only taps older than the trip limit (what each upload settles anyway)"})


class SettleOut(ma.Schema):
    riders = ma.fields.Integer(required=True, metadata={"description": "riders looked at"})
    pending_taps = ma.fields.Integer(required=True, metadata={
        "description": "offline metro taps still waiting for their other end"})
    settled_trips = ma.fields.Integer(required=True)


@blp.route("/settle", methods=["POST"])
@require(Role.ADMIN)
@blp.arguments(SettleIn, required=False)
@blp.response(200, SettleOut)
def settle(body: dict[str, Any]) -> dict[str, Any]:
    """Settle pending offline metro taps now, as `citycode settle` does: trips closed by online
    exits since their offline entry, and unpaired entries/exits older than the trip limit (the
    maximum fare)."""
    return runtime().taps.settle(time.time(), due_only=body.get("due_only", False)).to_dict()
