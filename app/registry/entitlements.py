"""Which entitlements a citizen's credentials give. The one place that owns the mapping.

Entitlement codes travel inside every QR code, so they are short wire codes:

| code | from | meaning |
|---|---|---|
| `stu` | `student_card` | student fare |
| `sen` | `senior_card` | senior fare / free categories |
| `dis` | `disability_card` | disabled fare / free categories |
| `sap` | `scenic_annual_pass` | admitted at scenic spots without a reservation |
| `hg`, `hy`, `hr` | `health_code` with status green / yellow / red | health status |
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

STUDENT, SENIOR, DISABLED, SCENIC_PASS = "stu", "sen", "dis", "sap"
HEALTH_GREEN, HEALTH_YELLOW, HEALTH_RED = "hg", "hy", "hr"

ALL: frozenset[str] = frozenset({STUDENT, SENIOR, DISABLED, SCENIC_PASS,
                                 HEALTH_GREEN, HEALTH_YELLOW, HEALTH_RED})

_BY_TYPE = {"student_card": STUDENT, "senior_card": SENIOR, "disability_card": DISABLED,
            "scenic_annual_pass": SCENIC_PASS}
_HEALTH = {"green": HEALTH_GREEN, "yellow": HEALTH_YELLOW, "red": HEALTH_RED}


def from_credential(credential_type: str, attributes: Mapping[str, Any]) -> str | None:
    """The entitlement one valid credential gives, if any."""
    if credential_type == "health_code":
        return _HEALTH.get(str(attributes.get("status", "")))
    return _BY_TYPE.get(credential_type)


def derive(credentials: Iterable[tuple[str, Mapping[str, Any]]]) -> tuple[str, ...]:
    """Entitlements from ``(type, attributes)`` of currently valid, unrevoked credentials, sorted."""
    found = {e for t, a in credentials if (e := from_credential(t, a)) is not None}
    return tuple(sorted(found))
