"""Before a replay: enrol the trace's riders, give them their cards and reservations, and register
the trace's terminals — all through the admin and issuer APIs, as a city would.

Every run enrols fresh citizens (resident ID numbers from a random block of a synthetic range), so
a replay never meets yesterday's trips, admissions or queue numbers; the terminals are new too.
"""
from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, TypeVar

import requests

from app.city import CITY_TZ
from app.registry.resident_id import check_char
from loadtest.traces.format import Trace

T = TypeVar("T")
_DAYS = 27_000  # birth dates 1930-01-01 onwards
_BLOCK = _DAYS * 1000  # ID numbers per synthetic region code
_REGIONS = 98  # 370201 … 370298
ISSUERS = {"student_card": "青岛市教育局（压测）", "senior_card": "青岛市民政局（压测）",
           "scenic_reservation": "青岛市文旅局（压测）"}


def resident_id(k: int) -> str:
    """The ``k``-th synthetic (but checksum-valid) resident ID number."""
    k %= _BLOCK * _REGIONS
    region, rest = 370201 + k // _BLOCK, k % _BLOCK
    born = datetime(1930, 1, 1).toordinal() + rest // 1000
    first17 = f"{region}{datetime.fromordinal(born):%Y%m%d}{rest % 1000:03d}"
    return first17 + check_char(first17)


@dataclass
class Cast:
    """What the replay needs: an app token per rider, a terminal token per trace terminal."""

    app_tokens: list[str] = field(default_factory=list)
    terminal_tokens: dict[str, str] = field(default_factory=dict)


class Admin:
    """Admin/issuer calls on a pool of keep-alive sessions (threads, or greenlets under locust)."""

    def __init__(self, base_url: str, admin_token: str, workers: int = 8) -> None:
        self.base, self.workers = base_url.rstrip("/"), workers
        self.admin = {"Authorization": f"Bearer {admin_token}"}
        self._local = threading.local()

    def post(self, path: str, body: dict[str, Any], token: dict[str, str] | None = None,
             ok: Iterable[int] = (200, 201)) -> requests.Response:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        response = session.post(self.base + path, json=body, headers=token or self.admin, timeout=30)
        if response.status_code not in ok:
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text[:200]}")
        return response

    def each(self, items: list[T], call: Callable[[T], Any]) -> list[Any]:
        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(call, items))


def _enrol(admin: Admin, base: int, rider: int) -> dict[str, Any]:
    for attempt in range(5):  # a clash with an earlier run's block: 409, try further along
        response = admin.post("/v1/admin/citizens", {
            "name": "压测乘客", "id_number": resident_id(base + rider + attempt * _BLOCK * 7)},
            ok=(201, 409))
        if response.status_code == 201:
            return response.json()  # type: ignore[no-any-return]
    raise RuntimeError(f"rider {rider}: no free synthetic ID number")


def prepare(trace: Trace, base_url: str, admin_token: str, *, workers: int = 8,
            rng: random.Random | None = None) -> Cast:
    """Enrol ``trace.riders`` citizens, issue the header's credentials, register its terminals."""
    admin, rng = Admin(base_url, admin_token, workers), rng or random.Random()
    base = rng.randrange(_BLOCK * _REGIONS)
    citizens = admin.each(list(range(trace.riders)), lambda rider: _enrol(admin, base, rider))
    issuers = {ctype: admin.post("/v1/admin/issuers", {"name": name, "credential_types": [ctype]})
               .json()["issuer_token"] for ctype, name in ISSUERS.items()}
    today = datetime.now(CITY_TZ).date().isoformat()
    grants = [(name, rider) for name, riders in trace.credentials.items() for rider in riders]

    def grant(item: tuple[str, int]) -> None:
        name, rider = item
        ctype, _, spot = name.partition(":")
        body: dict[str, Any] = {"citizen_id": citizens[rider]["citizen_id"], "type": ctype,
                                "number": f"LT{base}-{rider}-{spot or ctype}"}
        if spot:
            body["attributes"] = {"spot": spot, "date": today}
        admin.post("/v1/issuer/credentials", body, {"Authorization": f"Bearer {issuers[ctype]}"})

    admin.each(grants, grant)
    terminals = list(trace.terminals.values())
    tokens = admin.each(terminals, lambda t: admin.post(
        "/v1/admin/terminals", {"kind": t["kind"], "site": t["site"]}).json()["terminal_token"])
    return Cast([c["app_token"] for c in citizens],
                {t["terminal"]: token for t, token in zip(terminals, tokens)})
