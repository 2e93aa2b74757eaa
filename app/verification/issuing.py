"""Minting a code for a citizen: current entitlements, the current key, a short lifetime.

The entitlements are those held at the minting moment, which is also the code's ``iat``: a code
minted on city day D carries the scenic reservations for D (and no other day), and a turnstile
reads D back from ``iat`` (``app.scenes.scenic.admits``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

from app.codes.mint import mint
from app.errors import PermissionDenied
from app.registry import citizens, credentials
from app.runtime import Runtime

ISSUER = "cc"  # the `iss` of every code; short, because every byte grows the QR


@dataclass(frozen=True)
class FreshCode:
    code: str
    expires_at: datetime
    refresh_after: datetime


def code_for(rt: Runtime, citizen_id: str, now: float | None = None) -> FreshCode:
    """Mint a code for an active citizen. Suspended citizens get no code (403)."""
    now = time.time() if now is None else now
    with rt.db.session() as session:
        citizen = citizens.get(session, citizen_id)
        if citizen.status != citizens.ACTIVE:
            raise PermissionDenied("This citizen is suspended; no code can be issued.")
        # At the minting moment: its city day is the day of the code's iat (= floor(now); city
        # midnights fall on whole seconds), so the reservations carried are iat's day's.
        entitlements = credentials.current_entitlements(session, citizen.id,
                                                        datetime.fromtimestamp(now, timezone.utc))
        pseudonym = citizen.pseudonym
    ttl = rt.settings.code_ttl_seconds
    minted = mint(rt.keys.get(), issuer=ISSUER, subject=pseudonym, entitlements=entitlements,
                  ttl_seconds=ttl, now=now)
    # Refresh well before expiry so a code shown at a gate is never seconds from expiring.
    refresh = minted.issued_at + max(5, ttl * 2 // 3)
    return FreshCode(minted.code, datetime.fromtimestamp(minted.expires_at, timezone.utc),
                     datetime.fromtimestamp(refresh, timezone.utc))
