"""Where a tap happened: a metro gate at its station's coordinates (``metro.json``'s
``station_coordinates``), a moving reader (bus) where it said it was (the record's ``location``).
Other terminals have no place here, so they never take part in impossible-travel checks."""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Mapping

from app.city import load

EARTH_RADIUS_KM = 6371.0088

Point = tuple[float, float]  # (lat, lon), degrees WGS-84


class CoordinatesError(ValueError):
    """``station_coordinates`` in the city data cannot be used."""


@lru_cache(maxsize=1)
def station_coordinates() -> dict[str, Point]:
    """Station name → (lat, lon); checked once, on first use."""
    raw = load("metro").get("station_coordinates", {})
    if not isinstance(raw, Mapping):
        raise CoordinatesError("station_coordinates must be an object")
    found: dict[str, Point] = {}
    for name, point in raw.items():
        try:
            lat, lon = float(point["lat"]), float(point["lon"])
        except (KeyError, TypeError, ValueError):
            raise CoordinatesError(f"station {name!r} needs numeric lat and lon") from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise CoordinatesError(f"station {name!r} has coordinates out of range")
        found[str(name)] = (lat, lon)
    return found


def place_of(kind: str, site: Mapping[str, Any], location: Point | None) -> Point | None:
    """The tap's position: the reader's own report first (it moves), else its station's."""
    if location is not None:
        return location
    if kind == "metro":
        return station_coordinates().get(str(site.get("station")))
    return None


def distance_km(a: Point, b: Point) -> float:
    """Great-circle distance (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))
