"""Public directory: the metro network, so apps and gates show the same lines and station names."""
from __future__ import annotations

from typing import Any

import marshmallow as ma

from app.api.blueprint import Blueprint
from app.scenes.metro.network import default_network

blp = Blueprint("network", __name__, url_prefix="/v1/network", description="Public directory: metro")


class MetroLineOut(ma.Schema):
    id = ma.fields.String(required=True, metadata={"example": "3"})
    name = ma.fields.String(required=True, metadata={"example": "3号线"})
    stations = ma.fields.List(ma.fields.String(), required=True,
                              metadata={"description": "in running order; a transfer station's "
                                                       "name appears on each of its lines"})


class MetroNetworkOut(ma.Schema):
    lines = ma.fields.List(ma.fields.Nested(MetroLineOut), required=True)


@blp.route("/metro", methods=["GET"])
@blp.response(200, MetroNetworkOut)
def metro() -> dict[str, Any]:
    """The metro lines in line order with their stations; metro gates' `site.station` is one of
    these names."""
    return default_network().to_dict()
