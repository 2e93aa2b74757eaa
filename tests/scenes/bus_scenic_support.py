"""Drivers shared by the bus and scenic scene tests: scan through POST /v1/verify, citizens
holding cards, a scan clock that moves only when told, and a Redis that is not there."""
from __future__ import annotations

import time
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from app.runtime import Runtime
from tests.helpers import bearer, code, credential, enrol, issuer

CARD_TYPES = ("student_card", "senior_card", "disability_card", "scenic_reservation",
              "scenic_annual_pass")


class ScanClock:
    """The scan clock (``ScanContext.now``); codes still verify on real time."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def runtime_of(app: Flask) -> Runtime:
    return app.extensions["citycode"]  # type: ignore[no-any-return]


def freeze_scan_clock(app: Flask) -> ScanClock:
    clock = ScanClock()
    runtime_of(app).scans.clock = clock
    return clock


def scan(client: FlaskClient, terminal_token: str, scanned: str) -> dict[str, Any]:
    response = client.post("/v1/verify", headers=bearer(terminal_token), json={"code": scanned})
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def bureau(client: FlaskClient) -> str:
    """An issuer allowed every card these scenes look at."""
    return issuer(client, *CARD_TYPES, name="青岛市文化和旅游局")


def citizen(client: FlaskClient, bureau_token: str, *cards: str | tuple[str, dict[str, str]]) -> dict[str, Any]:
    """Enrol a citizen holding ``cards`` (a type, or ``(type, attributes)``); adds ``card_ids``."""
    enrolled = enrol(client)
    enrolled["card_ids"] = []
    for card in cards:
        ctype, attributes = (card, {}) if isinstance(card, str) else card
        issued = credential(client, bureau_token, enrolled["citizen_id"], ctype, **attributes)
        enrolled["card_ids"].append(issued["credential_id"])
    return enrolled


def fresh_code(client: FlaskClient, person: dict[str, Any]) -> str:
    return code(client, person["app_token"])




