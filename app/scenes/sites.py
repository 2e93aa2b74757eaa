"""Which places exist: a terminal may only be registered at a station, spot or hall the city has."""
from __future__ import annotations

from typing import Mapping

from app.errors import NotFound
from app.hall.config import directory as halls
from app.scenes.metro.network import default_network
from app.scenes.scenic import city_config


def site_problems(kind: str, site: Mapping[str, str]) -> list[str]:
    """Why ``site`` is not a real place for a ``kind`` terminal (empty when it is)."""
    if kind == "metro" and site.get("station") not in default_network():
        return [f"unknown metro station: {site.get('station')}"]
    if kind == "scenic" and site.get("spot") not in city_config().spots:
        return [f"unknown scenic spot: {site.get('spot')}; one of: {', '.join(city_config().spots)}"]
    if kind == "hall":
        try:
            hall = halls().get(str(site.get("hall")))
        except NotFound:
            return [f"unknown hall: {site.get('hall')}"]
        counter = site.get("counter")
        if counter is not None and hall.counters and counter not in hall.counters:
            return [f"unknown counter {counter} in hall {hall.hall}; one of: {', '.join(hall.counters)}"]
    return []
