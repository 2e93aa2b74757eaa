"""Terminal trust material: the versioned revocation feed offline readers sync as deltas."""
from __future__ import annotations

from typing import Any

import marshmallow as ma

from app.api.blueprint import Blueprint
from app.api.security import require
from app.auth import Role
from app.registry import revocations
from app.runtime import runtime

blp = Blueprint("trust", __name__, url_prefix="/v1/trust", description="Trust material for readers")


class SinceIn(ma.Schema):
    since = ma.fields.Integer(load_default=0, validate=ma.validate.Range(min=0, max=2**62))


class EntryOut(ma.Schema):
    version = ma.fields.Integer(required=True)
    kind = ma.fields.String(required=True)
    id = ma.fields.String(required=True)
    at = ma.fields.Integer(required=True)


class FeedOut(ma.Schema):
    version = ma.fields.Integer(required=True)
    entries = ma.fields.List(ma.fields.Nested(EntryOut), required=True)
    full = ma.fields.Boolean()
    more = ma.fields.Boolean()


@blp.route("/revocations", methods=["GET"])
@require(Role.TERMINAL)
@blp.arguments(SinceIn, location="query")
@blp.response(200, FeedOut)
def revocation_feed(query: dict[str, Any]) -> dict[str, Any]:
    """Entries after version `since`. `full: true` means replace local state instead of merging;
    `more: true` means call again with the returned version. Versions become visible in version
    order, so syncing with `since` = the last version applied never skips an entry (numbers may
    have gaps: a write that was rolled back)."""
    with runtime().db.session() as session:
        page = revocations.since(session, query["since"])
    body: dict[str, Any] = {"version": page.version, "entries": page.entries, "more": page.version < page.latest}
    if page.full:
        body["full"] = True
    return body
