"""The versioned revocation feed: every trust change a verifier must know about, in order.

Kinds (the ``ref`` format): ``citizen_suspended`` / ``citizen_restored`` (pseudonym),
``entitlement_revoked`` (``<pseudonym>/<entitlement>``), ``code_revoked`` (``<iss>/<jti>``).
Online verifiers and offline readers apply the same entries to the same trust state.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import RevocationEvent

KINDS = frozenset({"citizen_suspended", "citizen_restored", "entitlement_revoked", "code_revoked"})
MAX_PAGE = 5000


@dataclass(frozen=True)
class FeedPage:
    version: int
    entries: list[dict[str, object]]
    full: bool
    latest: int


def record(session: Session, kind: str, ref: str, at: int | None = None) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown revocation kind {kind!r}")
    session.add(RevocationEvent(kind=kind, ref=ref, at=int(time.time()) if at is None else at))


def latest_version(session: Session) -> int:
    return session.scalar(select(func.max(RevocationEvent.version))) or 0


def since(session: Session, version: int, limit: int = MAX_PAGE) -> FeedPage:
    """Entries after ``version`` (oldest first). ``full`` is true when the caller starts from zero
    or asks for a version the feed never had: it must then replace, not merge, its state."""
    latest = latest_version(session)
    full = version <= 0 or version > latest
    start = 0 if full else version
    rows = session.scalars(select(RevocationEvent).where(RevocationEvent.version > start)
                           .order_by(RevocationEvent.version).limit(limit)).all()
    entries = [{"version": r.version, "kind": r.kind, "id": r.ref, "at": r.at} for r in rows]
    return FeedPage(rows[-1].version if rows else start, entries, full, latest)
