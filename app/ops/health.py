"""Readiness: can this process use its database, Redis and signing keys right now, and is the
scan-record writer keeping up (oldest undrained record younger than
``records_max_lag_seconds``)?"""
from __future__ import annotations

import logging
from typing import Callable

from app.records.lag import lag
from app.runtime import Runtime

log = logging.getLogger(__name__)


def readiness(rt: Runtime) -> dict[str, str]:
    """Check each dependency; the value is ``ok`` or a short reason (no secrets, no paths)."""
    probes: dict[str, Callable[[], object]] = {
        "database": rt.db.ping, "redis": rt.redis.ping, "keys": rt.keys.get,
        "records": lambda: _records_keep_up(rt)}
    checks: dict[str, str] = {}
    for name, probe in probes.items():
        try:
            probe()
            checks[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; the type is enough to act on
            log.warning("%s not ready", name, extra={"error": type(exc).__name__})
            checks[name] = (f"lagging ({exc})" if isinstance(exc, RecordsLagging)
                            else f"unavailable ({type(exc).__name__})")
    return checks


class RecordsLagging(Exception):
    """The record writer is behind by more than the configured lag."""


def _records_keep_up(rt: Runtime) -> None:
    behind = lag(rt.redis, rt.settings.records_stream)
    if behind.oldest_seconds > rt.settings.records_max_lag_seconds:
        raise RecordsLagging(f"{behind.records} records, oldest {behind.oldest_seconds:.0f} s")
