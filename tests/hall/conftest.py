"""Fixtures for hall queue tests: a scan clock set to a weekday morning in Qingdao, real hall
kiosk and counter terminals, citizens with fresh codes, and an HTTP driver for the hall endpoints.

Codes still verify on real time; only the scan clock (``ScanContext.now``, which picks the queue
day) is injected.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.city import CITY_TZ
from app.runtime import Runtime
from tests.helpers import bearer, code, enrol, terminal

MORNING = datetime(2026, 3, 2, 9, 0, tzinfo=CITY_TZ).timestamp()  # a Monday, 09:00 in Qingdao
DAY = 24 * 3600


class ScanClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class HallDriver:
    """Speaks HTTP to one hall as its kiosk and counters would."""

    client: FlaskClient
    hall: str
    kiosk: str  # terminal token

    def ticket(self, scanned: str, service: str = "household", *, terminal_token: str | None = None,
               hall: str | None = None) -> tuple[int, dict[str, Any]]:
        response = self.client.post(f"/v1/halls/{hall or self.hall}/tickets",
                                    headers=bearer(terminal_token or self.kiosk),
                                    json={"code": scanned, "service": service})
        return response.status_code, response.get_json()

    def counter(self, counter: str) -> str:
        return terminal(self.client, "hall", hall=self.hall, counter=counter)

    def act(self, action: str, terminal_token: str, **body: str) -> tuple[int, dict[str, Any]]:
        response = self.client.post(f"/v1/halls/{self.hall}/{action}", headers=bearer(terminal_token),
                                    json=body)
        return response.status_code, response.get_json()

    def board(self) -> dict[str, Any]:
        response = self.client.get(f"/v1/halls/{self.hall}/board")
        assert response.status_code == 200, response.get_json()
        return response.get_json()  # type: ignore[no-any-return]


@pytest.fixture
def runtime(app: Flask) -> Runtime:
    return app.extensions["citycode"]  # type: ignore[no-any-return]


@pytest.fixture
def clock(runtime: Runtime) -> ScanClock:
    scan_clock = ScanClock(MORNING)
    runtime.scans.clock = scan_clock
    return scan_clock


@pytest.fixture
def city_hall(client: FlaskClient, clock: ScanClock) -> HallDriver:
    return HallDriver(client, "city", terminal(client, "hall", hall="city"))


@pytest.fixture
def citizen_code(client: FlaskClient) -> Callable[[], str]:
    """A new citizen's fresh code each call."""
    return lambda: code(client, enrol(client)["app_token"])


@pytest.fixture
def citizen(client: FlaskClient) -> Callable[[], str]:
    """One citizen; each call gives another fresh code of theirs."""
    app_token = enrol(client)["app_token"]
    return lambda: code(client, app_token)
