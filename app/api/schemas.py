"""Schemas shared by several blueprints."""
from __future__ import annotations

from typing import Any

import marshmallow as ma

from app.api.problems import PROBLEM_MIME
from app.registry.credential_types import CREDENTIAL_TYPES

short = ma.validate.Length(min=1, max=64)

# Documentation only: the registry refuses other types (422) with its own per-item messages.
credential_type_doc = {"enum": sorted(CREDENTIAL_TYPES)}


class ProblemOut(ma.Schema):
    """An error (RFC 9457), as ``app.api.problems`` writes it, served as application/problem+json."""

    type = ma.fields.String(required=True, metadata={"example": "urn:citycode:problem:not-found"})
    title = ma.fields.String(required=True)
    status = ma.fields.Integer(required=True)
    detail = ma.fields.String(required=True)
    errors = ma.fields.Dict(metadata={"description": "field -> messages (validation failures)"})
    request_id = ma.fields.String()


def problem_doc(description: str) -> dict[str, Any]:
    """Keyword arguments for ``blp.alt_response(status, **problem_doc(...))``: an error answer,
    documented with its real body and media type."""
    return {"schema": ProblemOut, "content_type": PROBLEM_MIME, "description": description}


class WholeNumber(ma.fields.Integer):
    """An integer as JSON (Schema) counts one: ``12`` and ``12.0`` are accepted; ``"12"``, ``12.5``
    and ``true`` are not (marshmallow's strict ``Integer`` also refuses ``12.0``, which the
    document's ``type: integer`` promises to accept)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return super()._deserialize(value, attr, data, **kwargs)  # type: ignore[no-any-return]


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
    fare = ma.fields.Dict(metadata={"description": "bus {amount_cents, category, display}; metro exit adds "
                                            "from, to. A gate shows `display` (full | concession), "
                                            "never `category` (the reason: student, senior…)"})
    trip = ma.fields.Dict()
    admission = ma.fields.Dict()
