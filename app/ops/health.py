"""Readiness: can this process use its database, Redis and signing keys right now?"""
from __future__ import annotations

import logging

from app.runtime import Runtime

log = logging.getLogger(__name__)


def readiness(rt: Runtime) -> dict[str, str]:
    """Check each dependency; the value is ``ok`` or a short reason (no secrets, no paths)."""
    checks: dict[str, str] = {}
    try:
        rt.db.ping()
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready"; the type is enough to act on
        log.warning("database not ready", extra={"error": type(exc).__name__})
        checks["database"] = f"unavailable ({type(exc).__name__})"
    try:
        rt.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        log.warning("redis not ready", extra={"error": type(exc).__name__})
        checks["redis"] = f"unavailable ({type(exc).__name__})"
    try:
        rt.keys.get()
        checks["keys"] = "ok"
    except Exception as exc:
        log.warning("keys not ready", extra={"error": type(exc).__name__, "detail": str(exc)})
        checks["keys"] = f"unavailable ({type(exc).__name__})"
    return checks
