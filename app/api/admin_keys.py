"""Admin: signing key rotation."""
from __future__ import annotations

from typing import Any

import marshmallow as ma

from app.api.blueprint import Blueprint
from app.api.security import current_principal, require
from app.audit import log as audit
from app.auth import Role
from app.runtime import runtime

blp = Blueprint("admin_keys", __name__, url_prefix="/v1/admin/keys", description="Signing keys")


class RotationSchema(ma.Schema):
    current_kid = ma.fields.String(required=True)
    published_kids = ma.fields.List(ma.fields.String(), required=True)


@blp.route("/rotate", methods=["POST"])
@require(Role.ADMIN)
@blp.response(200, RotationSchema)
def rotate() -> dict[str, Any]:
    """Promote the next key to current, retire the current one (still published), publish a new next."""
    rt = runtime()
    with rt.db.session() as session:
        # The key files are not in the transaction: rotate first, so the entry names the new keys.
        rt.keystore.rotate()
        rt.keys.invalidate()
        ring = rt.keys.get()
        rotated = {"current_kid": ring.current_kid, "published_kids": ring.published_kids}
        audit.append(session, actor_kind="admin", actor_id=current_principal().principal_id,
                     action="keys_rotated", details=rotated)
    return rotated
