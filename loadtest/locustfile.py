"""Gate traffic against a CityCode server on THIS machine (loopback only).

Run (the server must be up, e.g. `python3 dev.py run`):

    CITYCODE_ADMIN_TOKEN=$(cat var/admin-token) .venv/bin/locust -f loadtest/locustfile.py \
        --headless -u 40 -r 20 -t 60s --host http://127.0.0.1:8000

Each simulated passenger holds an app token, fetches a fresh code the way the phone app does
(`POST /v1/me/code`) and shows it at a reader (`POST /v1/verify`). The mix follows the city's
figures (DESIGN.md): buses carry most taps, metro gates come in entry/exit pairs, scenic spots
are a small share. Reader latency is the figure to watch: `verify <kind>` in the report.
"""
from __future__ import annotations

import itertools
import os
import random
from urllib.parse import urlparse

from locust import HttpUser, between, events, task

from app.registry.resident_id import check_char

_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
_citizens: list[str] = []
_terminals: dict[str, list[str]] = {"bus": [], "metro": [], "scenic": []}
_serial = itertools.count(1)
METRO_STATIONS = ("青岛站", "五四广场", "李村", "青岛北站", "海游路", "苗岭路")
CITIZENS = int(os.environ.get("CITYCODE_LOAD_CITIZENS", "200"))


def _id_number(n: int) -> str:
    first17 = f"370202{1950 + n % 60}0101{n % 1000:03d}"
    return first17 + check_char(first17)


@events.test_start.add_listener
def _enrol(environment, **_kwargs):  # type: ignore[no-untyped-def]
    """Enrol passengers and register readers once, before the users start."""
    host = urlparse(environment.host or "")
    if host.hostname not in _LOOPBACK:
        raise SystemExit(f"refusing to load-test {environment.host}: loopback addresses only")
    import requests

    admin = {"Authorization": f"Bearer {os.environ['CITYCODE_ADMIN_TOKEN']}"}
    base = environment.host.rstrip("/")
    with requests.Session() as http:
        run = random.randrange(10**6)
        for n in range(CITIZENS):
            body = {"name": "乘客", "id_number": _id_number(run * 1000 + n)}
            response = http.post(f"{base}/v1/admin/citizens", json=body, headers=admin, timeout=10)
            if response.status_code == 201:
                _citizens.append(response.json()["app_token"])
        sites = ([("bus", {"line": str(l), "vehicle": f"鲁B-{l:05d}"}) for l in range(1, 21)]
                 + [("metro", {"station": s}) for s in METRO_STATIONS]
                 + [("scenic", {"spot": "laoshan"})])
        for kind, site in sites:
            response = http.post(f"{base}/v1/admin/terminals", json={"kind": kind, "site": site},
                                 headers=admin, timeout=10)
            response.raise_for_status()
            _terminals[kind].append(response.json()["terminal_token"])
    if not _citizens:
        raise SystemExit("no citizens could be enrolled (is CITYCODE_ADMIN_TOKEN right?)")


class Passenger(HttpUser):
    wait_time = between(0.05, 0.3)

    def _code(self) -> str | None:
        token = _citizens[next(_serial) % len(_citizens)]
        with self.client.post("/v1/me/code", headers={"Authorization": f"Bearer {token}"},
                              name="phone: new code", catch_response=True) as response:
            if response.status_code != 201:
                response.failure(f"code: {response.status_code}")
                return None
            return response.json()["code"]  # type: ignore[no-any-return]

    def _scan(self, kind: str, direction: str | None = None) -> None:
        code = self._code()
        if code is None:
            return
        body = {"code": code} | ({"direction": direction} if direction else {})
        reader = random.choice(_terminals[kind])
        with self.client.post("/v1/verify", json=body, headers={"Authorization": f"Bearer {reader}"},
                              name=f"verify {kind}", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"verify: {response.status_code}")
            elif response.json().get("reason") in ("malformed", "bad_signature", "degraded"):
                response.failure(f"verify: {response.json()['reason']}")

    @task(6)
    def bus(self) -> None:
        self._scan("bus")

    @task(3)
    def metro(self) -> None:
        self._scan("metro", random.choice(("entry", "exit")))

    @task(1)
    def scenic(self) -> None:
        self._scan("scenic")
