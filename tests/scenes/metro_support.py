"""Drivers shared by the metro tests: gates, scans through POST /v1/verify, codes minted for a bare
pseudonym, an injected scan clock, and an independent shortest-path count for checking fares."""
from __future__ import annotations

import time
from collections import deque
from typing import Any

import redis
from flask import Flask
from flask.testing import FlaskClient

from app.city import load
from app.codes.mint import mint
from app.runtime import Runtime
from app.codes.replay import DEFAULT_PREFIX as REPLAY_PREFIX
from app.scenes.metro.trips import TRIP_PREFIX
from app.verification.issuing import ISSUER
from tests.helpers import bearer, terminal


class ScanClock:
    """``ScanContext.now`` for the metro scene; codes still verify on real time. Starts on a whole
    second so that sums of whole-second steps are exact."""

    def __init__(self, now: float | None = None) -> None:
        self.now = float(int(time.time())) if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def runtime_of(app: Flask) -> Runtime:
    return app.extensions["citycode"]  # type: ignore[no-any-return]


def inject_clock(app: Flask, clock: ScanClock | None = None) -> ScanClock:
    clock = clock or ScanClock()
    runtime_of(app).scans.clock = clock
    return clock


def gate(client: FlaskClient, station: str) -> str:
    """A metro gate's terminal token; the direction comes with each scan."""
    return terminal(client, "metro", station=station)


def scan(client: FlaskClient, gate_token: str, scanned: str, direction: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": scanned}
    if direction is not None:
        body["direction"] = direction
    response = client.post("/v1/verify", headers=bearer(gate_token), json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def mint_code(app: Flask, subject: str, entitlements: tuple[str, ...] = (),
              now: float | None = None) -> str:
    """A fresh code for ``subject`` signed with the app's current key, as the app would get."""
    rt = runtime_of(app)
    return mint(rt.keys.get(), issuer=ISSUER, subject=subject, entitlements=entitlements,
                ttl_seconds=rt.settings.code_ttl_seconds,
                now=time.time() if now is None else now).code


def flush_metro_state(client: "redis.Redis[bytes]") -> None:
    """Forget every open trip and every first-use record (nothing else in Redis)."""
    for pattern in (f"{TRIP_PREFIX}*", f"{REPLAY_PREFIX}*"):
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)


def reference_hops() -> dict[str, dict[str, int]]:
    """All-pairs stop counts by a plain BFS over the shipped file, independent of ``network.py``."""
    adjacent: dict[str, set[str]] = {}
    for line in load("metro")["lines"]:
        stations = line["stations"]
        for a, b in zip(stations, stations[1:]):
            adjacent.setdefault(a, set()).add(b)
            adjacent.setdefault(b, set()).add(a)
    result: dict[str, dict[str, int]] = {}
    for origin in adjacent:
        seen = {origin: 0}
        queue = deque([origin])
        while queue:
            here = queue.popleft()
            for there in adjacent[here] - seen.keys():
                seen[there] = seen[here] + 1
                queue.append(there)
        result[origin] = seen
    return result
