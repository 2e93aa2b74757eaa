"""The metro network: lines of named stations, transfers where lines share a name, shortest paths.

A station *is* its Chinese name, exactly as in ``metro.json`` and in a metro terminal's
``site.station``; a name on several lines is one transfer station, and changing lines is free.
The file is validated once, on first use, and shortest paths by station count are computed for
all pairs then (one breadth-first search per station: 150 × ~170 edges, a few milliseconds), so an
exit gate's fare is a dictionary lookup.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping, Sequence

from app.city import load


class NetworkError(ValueError):
    """The network file cannot be used (bad shape, duplicate ids, disconnected stations)."""


class UnknownStation(KeyError):
    """A station name that is not in the network."""


@dataclass(frozen=True)
class Line:
    id: str
    name: str
    stations: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "stations": list(self.stations)}


class Network:
    """An undirected graph of stations; consecutive stations on a line are one stop apart."""

    def __init__(self, lines: Sequence[Line]) -> None:
        if not lines:
            raise NetworkError("a network needs at least one line")
        ids = [line.id for line in lines]
        if len(set(ids)) != len(ids):
            raise NetworkError(f"duplicate line ids in {ids}")
        self.lines = tuple(lines)
        # Ordered dicts, not sets: ties between equally short paths break the same way every run.
        self._adjacent: dict[str, dict[str, None]] = {}
        self._lines_at: dict[str, list[str]] = {}
        for line in self.lines:
            for here, there in zip(line.stations, line.stations[1:]):
                self._adjacent.setdefault(here, {})[there] = None
                self._adjacent.setdefault(there, {})[here] = None
            for station in line.stations:
                self._lines_at.setdefault(station, []).append(line.id)
        self._parents: dict[str, dict[str, str | None]] = {}
        self._hops: dict[str, dict[str, int]] = {}
        for station in self._adjacent:
            self._parents[station], self._hops[station] = _bfs(self._adjacent, station)
        unreachable = set(self._adjacent) - set(self._parents[self.lines[0].stations[0]])
        if unreachable:
            raise NetworkError(f"stations not connected to the rest: {sorted(unreachable)}")

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> Network:
        """Build from ``metro.json``'s shape; a bad file fails at start-up, not at a gate."""
        raw_lines = data.get("lines") if isinstance(data, Mapping) else None
        if not isinstance(raw_lines, list):
            raise NetworkError("'lines' must be a list")
        return cls([_line(raw, n) for n, raw in enumerate(raw_lines)])

    @property
    def stations(self) -> tuple[str, ...]:
        """Every station once, in order of first appearance (line order, then along the line)."""
        return tuple(self._lines_at)

    @property
    def transfers(self) -> dict[str, tuple[str, ...]]:
        """Transfer station → the ids of the lines that stop there."""
        return {s: tuple(ids) for s, ids in self._lines_at.items() if len(ids) > 1}

    def __contains__(self, station: object) -> bool:
        return station in self._lines_at

    def lines_at(self, station: str) -> tuple[str, ...]:
        return tuple(self._lines_at[self._known(station)])

    def neighbours(self, station: str) -> tuple[str, ...]:
        return tuple(self._adjacent[self._known(station)])

    def hops(self, origin: str, destination: str) -> int:
        """Stops travelled on a shortest path (0 for the same station)."""
        return self._hops[self._known(origin)][self._known(destination)]

    def path(self, origin: str, destination: str) -> tuple[str, ...]:
        """One shortest path, both ends included."""
        parents = self._parents[self._known(origin)]
        path = [self._known(destination)]
        while path[-1] != origin:
            path.append(parents[path[-1]])  # type: ignore[arg-type]
        return tuple(reversed(path))

    def to_dict(self) -> dict[str, Any]:
        """The public directory body: ``{lines: [{id, name, stations}]}`` in line order."""
        return {"lines": [line.to_dict() for line in self.lines]}

    def _known(self, station: str) -> str:
        if station not in self._lines_at:
            raise UnknownStation(station)
        return station


def _line(raw: Any, position: int) -> Line:
    if not isinstance(raw, Mapping):
        raise NetworkError(f"line #{position} must be an object")
    line_id, name, stations = raw.get("id"), raw.get("name"), raw.get("stations")
    if not isinstance(line_id, str) or not line_id or not isinstance(name, str) or not name:
        raise NetworkError(f"line #{position} needs a non-empty string id and name")
    if not isinstance(stations, list) or len(stations) < 2:
        raise NetworkError(f"line {line_id} needs at least two stations")
    for station in stations:
        if not isinstance(station, str) or not station or station != station.strip():
            raise NetworkError(f"line {line_id}: station names are non-empty, unpadded strings")
    if len(set(stations)) != len(stations):
        raise NetworkError(f"line {line_id} lists a station twice (loop lines are not supported)")
    return Line(line_id, name, tuple(stations))


def _bfs(adjacent: Mapping[str, Mapping[str, None]],
         origin: str) -> tuple[dict[str, str | None], dict[str, int]]:
    """For each station reachable from ``origin``: its parent on a shortest path (origin → None)
    and its distance in stops."""
    parents: dict[str, str | None] = {origin: None}
    hops = {origin: 0}
    queue = deque([origin])
    while queue:
        here = queue.popleft()
        for there in adjacent[here]:
            if there not in parents:
                parents[there] = here
                hops[there] = hops[here] + 1
                queue.append(there)
    return parents, hops


@lru_cache(maxsize=1)
def default_network() -> Network:
    """The city's network from ``metro.json`` (or ``CITYCODE_CITY_DIR``), loaded once."""
    return Network.from_config(load("metro"))
