"""Schemas shared by several blueprints."""
from __future__ import annotations

import marshmallow as ma

short = ma.validate.Length(min=1, max=64)


class ReasonIn(ma.Schema):
    reason = ma.fields.String(validate=ma.validate.Length(max=200), load_default=None)


class StatusOut(ma.Schema):
    status = ma.fields.String(required=True)
