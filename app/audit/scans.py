"""The scan observer: one ``scan`` entry in the audit log per decided scan, accepts and denies.

The entry names the terminal, its site, the decision and reason, the pseudonym when the code was
authentic, and what the scene added (fare, trip, admission, ticket). A decision's data is what a
terminal is shown, so it holds no personal data by construction.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Callable, Mapping

from sqlalchemy.orm import Session

from app.audit import log
from app.codes.decision import Decision
from app.scenes.base import ScanContext

if TYPE_CHECKING:
    from app.runtime import Runtime


def where(kind: str, site: Mapping[str, Any]) -> dict[str, Any]:
    """The ``site`` column: the terminal's kind and its site fields."""
    return {**{str(k): v for k, v in site.items()}, "kind": kind}


def _json_safe(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def scan_details(ctx: ScanContext, decision: Decision) -> dict[str, Any]:
    details: dict[str, Any] = {"decision": decision.decision, **_json_safe(decision.data)}
    if ctx.direction:
        details["direction"] = ctx.direction
    if decision.claims is not None:
        details["jti"] = decision.claims.jti  # ties the entry to tap records; an id, not personal
    return details


def record_scan(session: Session, ctx: ScanContext, decision: Decision) -> None:
    """Append the ``scan`` entry for one decision in the caller's transaction."""
    log.append(session, actor_kind="terminal", actor_id=ctx.terminal_id, action="scan",
               subject=decision.claims.sub if decision.claims is not None else None,
               site=where(ctx.kind, ctx.site), reason=decision.reason,
               details=scan_details(ctx, decision))


def scan_observer(rt: "Runtime") -> Callable[[ScanContext, Decision], None]:
    """An observer for ``ScanService``: each decided scan, in its own short transaction."""
    def observe(ctx: ScanContext, decision: Decision) -> None:
        with rt.db.session() as session:
            record_scan(session, ctx, decision)

    return observe
