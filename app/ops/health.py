"""Readiness: can this process use its database, Redis and signing keys right now?"""
from __future__ import annotations

import logging
from typing import Callable

from app.runtime import Runtime

log = logging.getLogger(__name__)


def readiness(rt: Runtime) -> dict[str, str]:
    """Check each dependency; the value is ``ok`` or a short reason (no secrets, no paths)."""
    probes: dict[str, Callable[[], object]] = {
        "database": rt.db.ping, "redis": rt.redis.ping, "keys": rt.keys.get}
    checks: dict[str, str] = {}
    for name, probe in probes.items():
        try:
            probe()
            checks[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; the type is enough to act on
            log.warning("%s not ready", name, extra={"error": type(exc).__name__})
            checks[name] = f"unavailable ({type(exc).__name__})"
    return checks
