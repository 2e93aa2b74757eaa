"""Scenic spots: the public list with today's capacities, and the admin's change of today's capacity."""
from __future__ import annotations

from typing import Any

import marshmallow as ma

from app.api.blueprint import Blueprint
from app.api.schemas import WholeNumber, problem_doc
from app.api.security import require
from app.auth import Role
from app.runtime import runtime

blp = Blueprint("scenic", __name__, url_prefix="/v1", description="Scenic spots")


class SpotOut(ma.Schema):
    spot = ma.fields.String(required=True)
    name = ma.fields.String(required=True)
    daily_capacity = ma.fields.Integer(required=True)


class CapacityIn(ma.Schema):
    daily_capacity = WholeNumber(required=True, validate=ma.validate.Range(min=0, max=10_000_000))


class CapacityOut(SpotOut):
    date = ma.fields.String(required=True, metadata={"description": "the city day (YYYY-MM-DD) it applies to"})


@blp.route("/scenic/spots", methods=["GET"])
@blp.response(200, SpotOut(many=True))
def list_spots() -> list[dict[str, Any]]:
    """The scenic spots that admit by code, with today's daily capacity."""
    return runtime().scenic.listing()


@blp.route("/admin/scenic/<spot>", methods=["PUT"])
@require(Role.ADMIN)
@blp.arguments(CapacityIn)
@blp.response(200, CapacityOut)
@blp.alt_response(404, **problem_doc("No such spot"))
def set_capacity(body: dict[str, Any], spot: str) -> dict[str, Any]:
    """Change today's capacity; admissions beyond it today are denied `capacity_full`."""
    return runtime().scenic.set_capacity(spot, body["daily_capacity"])
