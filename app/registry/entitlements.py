"""Which entitlements a citizen's credentials give at a moment. The one place that owns the mapping.

Entitlement codes travel inside every QR code, so they are short wire codes:

| code | from | meaning |
|---|---|---|
| `stu` | `student_card` | student fare |
| `sen` | `senior_card` | senior fare / free categories |
| `dis` | `disability_card` | disabled fare / free categories |
| `sap` | `scenic_annual_pass` | admitted at scenic spots without a reservation |
| `hg`, `hy`, `hr` | `health_code` with status green / yellow / red | health status |
| `rla`, `rzt`, `rjm` | `scenic_reservation` for today | reserved: Laoshan / Zhanshan Temple / Jimo Old Town |

Reservation entitlements are dated: a ``scenic_reservation`` (attributes ``spot``, ``date``)
gives its spot's entitlement only on its own city day (Asia/Shanghai), so a code minted on day D
carries the reservations for D and no other day. The entitlement does not name the day; the code's
``iat`` does (``app.scenes.scenic.admits`` compares it with the scan day). Which entitlement a
spot's reservation gives is declared per spot in the city's scenic data
(``"reservation_entitlement"``); the names it may use are ``RESERVATIONS``, each with its own wire
letter (``app.codes.wire``). A new spot takes a new name here, a new letter there, and one line of
data. A spot's name is forever, like its letter: an offline reader with older data must never read
one spot's reservation as another's.
"""
from __future__ import annotations

from datetime import date
from functools import cache
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from app.city import load

STUDENT, SENIOR, DISABLED, SCENIC_PASS = "stu", "sen", "dis", "sap"
HEALTH_GREEN, HEALTH_YELLOW, HEALTH_RED = "hg", "hy", "hr"
RESERVE_LAOSHAN, RESERVE_ZHANSHAN_TEMPLE, RESERVE_JIMO_OLD_TOWN = "rla", "rzt", "rjm"

RESERVATIONS: frozenset[str] = frozenset({RESERVE_LAOSHAN, RESERVE_ZHANSHAN_TEMPLE, RESERVE_JIMO_OLD_TOWN})
"""Names a spot's ``reservation_entitlement`` may take (one per spot, never shared)."""

ALL: frozenset[str] = frozenset({STUDENT, SENIOR, DISABLED, SCENIC_PASS,
                                 HEALTH_GREEN, HEALTH_YELLOW, HEALTH_RED}) | RESERVATIONS

RESERVATION_TYPE = "scenic_reservation"
_BY_TYPE = {"student_card": STUDENT, "senior_card": SENIOR, "disability_card": DISABLED,
            "scenic_annual_pass": SCENIC_PASS}
_HEALTH = {"green": HEALTH_GREEN, "yellow": HEALTH_YELLOW, "red": HEALTH_RED}


def reservation_entitlements(scenic: Mapping[str, Any]) -> dict[str, str]:
    """Spot id → the entitlement a reservation for it gives, from scenic data shaped like
    ``scenic.json`` (a spot without ``reservation_entitlement`` cannot be reserved). A name outside
    ``RESERVATIONS`` or shared by two spots raises ``ValueError``: the data would mint dead codes
    or let one spot's reservation open another."""
    found: dict[str, str] = {}
    for item in scenic.get("spots", ()):
        name = item.get("reservation_entitlement")
        if name is None:
            continue
        if name not in RESERVATIONS:
            raise ValueError(f"scenic spot {item.get('spot')!r}: reservation_entitlement {name!r} is not "
                             f"one of {', '.join(sorted(RESERVATIONS))}")
        if name in found.values():
            raise ValueError(f"scenic spot {item.get('spot')!r}: reservation_entitlement {name!r} is "
                             "already another spot's")
        found[str(item["spot"])] = name
    return found


@cache
def city_reservations() -> Mapping[str, str]:
    """``reservation_entitlements`` of the city's scenic data (loaded once, on first use)."""
    return MappingProxyType(reservation_entitlements(load("scenic")))


def reserved_day(attributes: Mapping[str, Any]) -> date | None:
    """The city day a reservation is for, or None if its ``date`` is not a date."""
    try:
        return date.fromisoformat(str(attributes.get("date", "")))
    except ValueError:
        return None


def from_credential(credential_type: str, attributes: Mapping[str, Any], day: date) -> str | None:
    """The entitlement one valid credential gives on city day ``day``, if any."""
    if credential_type == "health_code":
        return _HEALTH.get(str(attributes.get("status", "")))
    if credential_type == RESERVATION_TYPE:
        if reserved_day(attributes) != day:
            return None
        return city_reservations().get(str(attributes.get("spot", "")))
    return _BY_TYPE.get(credential_type)


def derive(credentials: Iterable[tuple[str, Mapping[str, Any]]], *, day: date) -> tuple[str, ...]:
    """Entitlements on city day ``day`` from ``(type, attributes)`` of credentials valid and
    unrevoked at that moment, sorted."""
    found = {e for t, a in credentials if (e := from_credential(t, a, day)) is not None}
    return tuple(sorted(found))
