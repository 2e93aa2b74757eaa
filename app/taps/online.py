"""Online scans of given codes, from the audit log's ``scan`` entries by ``details.jti``
(the expression index ``ix_audit_log_scan_jti``, migration 0012): what ``used_after_online``
(``app.taps.detect``) and superseded fallbacks (``app.taps.supersede``) compare uploaded offline
accepts with. One indexed probe per code, however long the rider's history (the rules used to
read every scan of the rider in the time window and parse its details)."""
from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any, Iterator, Sequence

from sqlalchemy import JSON, DateTime, String, bindparam, column, text
from sqlalchemy.orm import Session

from app.taps.record import utc

# Written exactly as the index's expression (migration 0012), so the planner uses it.
SCAN_JTI = {"sqlite": "json_extract(details, '$.jti')", "postgresql": "(details ->> 'jti')"}
_CHUNK = 500


@lru_cache(maxsize=4)
def _query(dialect: str) -> Any:
    return text(f"SELECT actor_id, at, details FROM audit_log WHERE action = 'scan' "
                f"AND {SCAN_JTI[dialect]} IN :jtis AND at BETWEEN :lo AND :hi").bindparams(
        bindparam("jtis", expanding=True), bindparam("lo", type_=DateTime(timezone=True)),
        bindparam("hi", type_=DateTime(timezone=True))).columns(
        column("actor_id", String), column("at", DateTime(timezone=True)), column("details", JSON))


def accepted_scans(session: Session, jtis: Sequence[str], lo: datetime, hi: datetime
                   ) -> Iterator[tuple[str, str, datetime]]:
    """``(jti, terminal id, at)`` of every online accept of the codes ``jtis`` between ``lo``
    and ``hi``."""
    query = _query(session.get_bind().dialect.name)
    wanted = sorted(set(jtis))
    for start in range(0, len(wanted), _CHUNK):
        rows = session.execute(query, {"jtis": wanted[start:start + _CHUNK], "lo": lo, "hi": hi})
        for actor_id, at, details in rows:
            if (details or {}).get("decision") == "accept":
                yield details["jti"], actor_id, utc(at)
