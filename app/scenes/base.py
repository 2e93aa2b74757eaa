"""What every scene shares: the scan context, the scene protocol, the city's local date.

A scene receives the core's ``check`` result (authentic, in time, trusted, NOT yet claimed) and
must itself claim first use of ``(iss, jti)`` atomically with its own state change (one Lua script
or transaction), so two gates racing can never both win. A denied check is returned unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Mapping, Protocol

from app.city import CITY_TZ
from app.codes.decision import Decision


@dataclass(frozen=True)
class ScanContext:
    """Where and when a code was scanned."""

    terminal_id: str
    kind: str  # bus | metro | scenic | hall
    site: Mapping[str, str] = field(default_factory=dict)
    direction: str | None = None  # metro gates: entry | exit
    now: float = 0.0

    @property
    def local_date(self) -> date:
        return local_date(self.now)


def fare_display(category: str) -> str:
    """What a gate may show for a fare category: ``full`` or ``concession``, never the reason.

    The category (student, senior, disabled…) stays in the answer for settlement and the
    citizen's own history; a display in a queue at a gate shows only that a concession applied
    (issue #10: disability status is sensitive personal information).
    """
    return "full" if category == "full" else "concession"


def local_date(now: float) -> date:
    """The calendar day in the city (Asia/Shanghai): what "today" means for quotas and queues."""
    return datetime.fromtimestamp(now, CITY_TZ).date()


class Scene(Protocol):
    """A terminal kind's policy."""

    kind: str

    def decide(self, checked: Decision, ctx: ScanContext) -> Decision:
        """Turn an accepted, unclaimed check into the scene's decision (claiming first use)."""
        ...
