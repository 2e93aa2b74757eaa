"""Setting a city up over HTTP for the simulators and the demo: citizens, issuers, credentials and
terminals through the admin and issuer APIs, and the citizen app calls a phone makes.

Only the public API is used, so the fleet and the demo run against any CityCode service.
Resident ID numbers are synthetic (random birth date and sequence, GB 11643 check character);
one that is already enrolled (409) is replaced by another.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import requests

from app.registry.resident_id import check_char

TIMEOUT_S = 10.0
_ID_RANDOM = random.SystemRandom()  # not the run's seed: a second run must not draw the same IDs


class ApiError(Exception):
    """The service answered something other than what the call needs."""

    def __init__(self, method: str, path: str, response: requests.Response) -> None:
        detail = ""
        try:
            body = response.json()
            detail = body.get("detail", "") if isinstance(body, dict) else ""
        except ValueError:
            pass
        super().__init__(f"{method} {path}: HTTP {response.status_code} {detail}".rstrip())
        self.status = response.status_code


@dataclass(frozen=True)
class Citizen:
    citizen_id: str
    app_token: str
    label: str


@dataclass(frozen=True)
class Terminal:
    terminal_id: str
    token: str
    kind: str
    site: dict[str, str]


def synthetic_resident_id(rng: random.Random) -> str:
    """A plausible, made-up resident ID: Qingdao region, birth 1940..2010, random sequence."""
    born = date(1940, 1, 1) + timedelta(days=rng.randrange(70 * 365))
    first17 = f"370202{born:%Y%m%d}{rng.randrange(1000):03d}"
    return first17 + check_char(first17)


class CityApi:
    """A thin, typed wrapper over the calls an operator, an issuer and a phone make."""

    def __init__(self, base_url: str, admin_token: str | None = None,
                 session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.admin_token = admin_token
        self.session = session or requests.Session()

    def call(self, method: str, path: str, token: str | None = None, *, expect: tuple[int, ...] = (200, 201),
             **kwargs: Any) -> Any:
        """One request; the decoded JSON body, or ApiError if the status is not in ``expect``."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.session.request(method, self.base_url + path, headers=headers,
                                        timeout=kwargs.pop("timeout", TIMEOUT_S), **kwargs)
        if response.status_code not in expect:
            raise ApiError(method, path, response)
        return response.json() if response.content else None

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        if not self.admin_token:
            raise ValueError("this needs the admin token (--admin-token)")
        return self.call(method, path, self.admin_token, **kwargs)

    def enrol_citizen(self, name: str, label: str = "") -> Citizen:
        """Enrol a citizen with a fresh synthetic ID number (another one on 409: the service may
        already hold citizens of an earlier run)."""
        for _ in range(20):
            try:
                body = self.admin("POST", "/v1/admin/citizens",
                                  json={"name": name, "id_number": synthetic_resident_id(_ID_RANDOM)})
            except ApiError as exc:
                if exc.status == 409:
                    continue
                raise
            return Citizen(body["citizen_id"], body["app_token"], label or body["citizen_id"])
        raise RuntimeError("could not find a free resident ID number in 20 tries")

    def register_issuer(self, name: str, *types: str) -> str:
        return str(self.admin("POST", "/v1/admin/issuers",
                              json={"name": name, "credential_types": list(types)})["issuer_token"])

    def register_terminal(self, kind: str, **site: str) -> Terminal:
        body = self.admin("POST", "/v1/admin/terminals", json={"kind": kind, "site": site})
        return Terminal(body["terminal_id"], body["terminal_token"], body["kind"], dict(body["site"]))

    def issue(self, issuer_token: str, citizen: Citizen, ctype: str, number: str,
              **attributes: str) -> str:
        body = self.call("POST", "/v1/issuer/credentials", issuer_token,
                         json={"citizen_id": citizen.citizen_id, "type": ctype, "number": number,
                               "attributes": attributes})
        return str(body["credential_id"])

    def code(self, citizen: Citizen) -> str:
        """A fresh code string (the JSON endpoint: no image, for throughput runs)."""
        return str(self.call("POST", "/v1/me/code", citizen.app_token)["code"])

    def anomalies(self, since: str | None = None, page: int = 1000) -> list[dict[str, Any]]:
        """Every anomaly of ``GET /v1/admin/anomalies`` after ``since``, following ``next_since``."""
        found: list[dict[str, Any]] = []
        while True:
            params: dict[str, Any] = {"limit": page, **({"since": since} if since else {})}
            body = self.admin("GET", "/v1/admin/anomalies", params=params)
            items = list(body.get("anomalies") or [])
            found += items
            since = body.get("next_since")
            if len(items) < page or since is None:
                return found


FLEET_VEHICLES = "鲁B-{:05d}"
STUDENT_SHARE, SENIOR_SHARE = 4, 7  # every 4th rider a student, every 7th a senior


def provision_fleet(api: CityApi, *, buses: int, gates: int, turnstiles: int,
                    citizens: int) -> tuple[list[Terminal], list[Citizen]]:
    """Register bus readers, metro gates (one per station along line 2 then line 1) and Laoshan
    turnstiles, and enrol riders, some with student or senior cards."""
    network = api.call("GET", "/v1/network/metro")
    stations = list(dict.fromkeys(s for line in reversed(network["lines"]) for s in line["stations"]))
    if gates > len(stations):
        raise ValueError(f"the network has {len(stations)} stations; at most that many gates")
    terminals = [api.register_terminal("bus", line="321", vehicle=FLEET_VEHICLES.format(10001 + n))
                 for n in range(buses)]
    terminals += [api.register_terminal("metro", station=stations[n]) for n in range(gates)]
    terminals += [api.register_terminal("scenic", spot="laoshan") for _ in range(turnstiles)]
    riders = [api.enrol_citizen(f"乘客{n + 1:04d}", label=f"rider-{n + 1}") for n in range(citizens)]
    education = api.register_issuer("青岛市教育局", "student_card")
    civil = api.register_issuer("青岛市民政局", "senior_card")
    for n, rider in enumerate(riders, start=1):
        if n % STUDENT_SHARE == 0:
            api.issue(education, rider, "student_card", f"QD-S{n:06d}")
        elif n % SENIOR_SHARE == 0:
            api.issue(civil, rider, "senior_card", f"QD-E{n:06d}")
    return terminals, riders
