"""Schemas shared by several blueprints."""
from __future__ import annotations

import marshmallow as ma

short = ma.validate.Length(min=1, max=64)


class ReasonIn(ma.Schema):
    reason = ma.fields.String(validate=ma.validate.Length(max=200), load_default=None)


class StatusOut(ma.Schema):
    status = ma.fields.String(required=True)


class MessageOut(ma.Schema):
    zh = ma.fields.String(required=True)
    en = ma.fields.String(required=True)


class DecisionOut(ma.Schema):
    """A scan's answer: accept or deny with a stable reason; a deny is a normal 200 answer."""

    decision = ma.fields.String(required=True, metadata={"enum": ["accept", "deny"]})
    reason = ma.fields.String(required=True)
    message = ma.fields.Nested(MessageOut, required=True)
    fare = ma.fields.Dict()
    trip = ma.fields.Dict()
    admission = ma.fields.Dict()
