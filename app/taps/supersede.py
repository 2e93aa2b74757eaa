"""Offline accepts superseded by their own terminal's online decision.

A reader asks ``POST /v1/verify`` with a ``request_id``; when the reply is lost or late after
the server already decided (charged a fare, opened a trip), the reader decides offline and
journals an accept carrying the same ``request_id``. That tap is the same scan, not a second
ride: it is stored (never lost) but flagged ``superseded``, left out of settlement and billing,
and shown as superseded in ``/v1/me/history``.

The rule: an offline accept with a ``request_id`` whose ``(iss, jti)`` the SAME terminal had
accepted online — a ``scan`` entry of the audit log (``actor_id`` = terminal, ``details.jti``,
found by jti through ``app.taps.online``; audit entries carry no ``request_id``, so terminal +
jti decide) or one of the terminal's own
``mode: online`` tap records (same ``request_id`` or none) — within ``online_use_window_seconds``
of it. The same rule exempts it from ``used_after_online`` in ``app.taps.detect``; an offline
accept at another terminal stays an anomaly.

Order: the record writer drains online scans into the audit log asynchronously (normally under a
second). Every upload re-examines the fallback accepts received within ``LATE`` before it (an
index holds only those rows), and ``citycode settle`` those of the last ``RECHECK``: a tap that
arrived before its online scan was written is superseded then, and its settled trip recomputed.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterator, Sequence

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from app.taps import online
from app.taps.models import FALLBACK, Tap
from app.taps.record import utc

LATE = timedelta(minutes=10)  # at each upload: fallback accepts received this long before it
RECHECK = timedelta(days=1)  # at each settlement run
_CHUNK = 500


@dataclass(frozen=True)
class Superseded:
    """A tap just marked superseded."""

    tap_id: int
    sub: str | None
    kind: str
    at: datetime


@dataclass(frozen=True)
class _Fallback:
    tap_id: int
    terminal_id: str
    iss: str
    jti: str
    sub: str | None
    kind: str
    at: datetime
    request_id: str


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


def mark(session: Session, since: datetime, window: timedelta) -> list[Superseded]:
    """Supersede the fallback accepts received at or after ``since`` that their own terminal
    had decided online within ``window``; clears their ``pending_since`` (never settled)."""
    fallbacks = [_Fallback(row.id, row.terminal_id, row.iss, row.jti, row.sub, row.kind,
                           utc(row.server_at), row.request_id)
                 for row in session.execute(select(
                     Tap.id, Tap.terminal_id, Tap.iss, Tap.jti, Tap.sub, Tap.kind, Tap.server_at,
                     Tap.request_id).where(text(FALLBACK), Tap.received_at >= since,
                                           Tap.jti.is_not(None)))]
    if not fallbacks:
        return []
    online = _online(session, fallbacks, window)
    done = [f for f in fallbacks if any(
        terminal == f.terminal_id and iss in (None, f.iss) and request_id in (None, f.request_id)
        and abs(at - f.at) <= window for terminal, iss, at, request_id in online.get(f.jti, ()))]
    for chunk in _chunks([f.tap_id for f in done]):
        session.execute(update(Tap).where(Tap.id.in_(chunk))
                        .values(superseded=True, pending_since=None))
    return [Superseded(f.tap_id, f.sub, f.kind, f.at) for f in done]


def _online(session: Session, fallbacks: Sequence[_Fallback], window: timedelta
            ) -> dict[str, list[tuple[str, str | None, datetime, str | None]]]:
    """jti → online accepts ``(terminal, iss or None, at, request_id or None)`` of the fallbacks'
    codes: audit ``scan`` entries of their riders near them in time, and online tap records."""
    found: dict[str, list[tuple[str, str | None, datetime, str | None]]] = {}
    jtis = sorted({f.jti for f in fallbacks})
    lo = min(f.at for f in fallbacks) - window
    hi = max(f.at for f in fallbacks) + window
    for jti, actor_id, at in online.accepted_scans(session, jtis, lo, hi):
        found.setdefault(jti, []).append((actor_id, None, at, None))
    for chunk in _chunks(jtis):
        rows = session.execute(select(Tap.jti, Tap.terminal_id, Tap.iss, Tap.server_at,
                                      Tap.request_id).where(
            Tap.jti.in_(chunk), Tap.mode == "online", Tap.decision == "accept"))
        for jti, terminal_id, iss, at, request_id in rows:
            found.setdefault(jti, []).append((terminal_id, iss, utc(at), request_id))
    return found
