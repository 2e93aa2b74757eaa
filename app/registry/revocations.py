"""The versioned revocation feed: every trust change a verifier must know about, in order.

Kinds (the ``ref`` format): ``citizen_suspended`` / ``citizen_restored`` (pseudonym),
``entitlement_revoked`` (``<pseudonym>/<entitlement>``), ``code_revoked`` (``<iss>/<jti>``).
Online verifiers and offline readers apply the same entries to the same trust state.

Ordering guarantee: versions become visible in version order, so a reader that syncs with
``since=N`` (N = the last version it applied) never skips an entry. A version is taken only by
the transaction that will commit (or roll back) next: ``record`` first takes a feed-writer lock
held to the end of the caller's transaction, and only then inserts (the version is assigned at
that insert). Every version below a visible one therefore belongs to a transaction that has
already ended. On PostgreSQL the lock is ``pg_advisory_xact_lock(FEED_LOCK)`` — without it a
slow transaction could commit version 5 after version 6 was read, and the reader at 6 would
never ask for 5. SQLite needs no lock of its own: its one write lock, taken at the insert and
held to commit, already serializes writers. A rolled-back writer leaves a gap, which readers
need not care about. So: write the feed only through ``record``, and keep feed-writing
transactions short (they queue behind each other).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import RevocationEvent

KINDS = frozenset({"citizen_suspended", "citizen_restored", "entitlement_revoked", "code_revoked"})
MAX_PAGE = 5000
# The PostgreSQL advisory lock key serializing feed writers (a 63-bit constant: "ccfeed01").
FEED_LOCK = int.from_bytes(b"ccfeed01", "big") >> 1


@dataclass(frozen=True)
class FeedPage:
    version: int
    entries: list[dict[str, object]]
    full: bool
    latest: int


def record(session: Session, kind: str, ref: str, at: int | None = None) -> None:
    """Add an entry in the caller's transaction, in commit order (see the module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"unknown revocation kind {kind!r}")
    lock_feed(session)
    session.add(RevocationEvent(kind=kind, ref=ref, at=int(time.time()) if at is None else at))
    session.flush()  # take the version now, under the lock


def lock_feed(session: Session) -> None:
    """Hold the feed-writer lock until the session's transaction ends (PostgreSQL; a no-op on
    SQLite, whose write lock already does this). Taking it twice in one transaction is fine."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(FEED_LOCK)))


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
