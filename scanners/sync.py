"""One sync: the clock (``GET /v1/terminals/me``), the JWKS, the reader keys (``GET
/v1/terminals/me/reader-keys``: private, they open sealed CC3 codes) and the revocation feed's news.

The feed is read from the stored ``version`` (the server assigns versions in commit order, so
``since=N`` never skips an entry). ``overlap`` (default 0) re-reads that many versions more, for a
server without that guarantee: applying a suffix of the feed again, in order, leaves the same
state; the cost is that a server whose feed went back (restored database) is noticed only once it
went back by more than ``overlap`` versions. A ``full`` answer (first sync, or a version the server
never had) is collected over all its pages and replaces the stored feed in one step, so a sync cut
off half-way never leaves a reader with half a snapshot. Trust counts as fresh
(``trust.synced_at``) only when keys and feed both arrived.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Callable

from app.codes.errors import Malformed
from app.codes.jwks import JWKSError
from scanners.online import ServiceClient, ServiceError
from scanners.trust import TrustMaterial

MAX_PAGES = 10_000


@dataclass(frozen=True)
class SyncResult:
    ok: bool
    online: bool  # the server answered at all
    feed_version: int
    entries: int  # feed entries applied in this sync
    full: bool  # the feed was replaced by a full snapshot
    keys: int
    clock_offset_s: float
    error: str | None = None
    duration_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_time(value: Any) -> float:
    """RFC 3339 (with offset) or epoch seconds → epoch seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"time {value!r} has no offset")
    return moment.timestamp()


def sync_clock(client: ServiceClient, material: TrustMaterial,
               clock: Callable[[], float]) -> dict[str, Any]:
    """Ask the server who we are and what time it is; store both (the offset and the answer
    without its time). Returns the answer."""
    before = clock()
    me = client.me()
    after = clock()
    offset = (before + after) / 2 - parse_time(me["server_time"])
    material.set_clock(offset, after)
    material.db.put("terminal.me", {k: v for k, v in me.items() if k != "server_time"})
    return me


def sync(client: ServiceClient, material: TrustMaterial, clock: Callable[[], float], *,
         overlap: int = 0) -> SyncResult:
    """Bring clock, keys and feed up to date; never raises for network or server trouble."""
    started = time.perf_counter()
    applied, full, online = 0, False, False

    def result(ok: bool, error: str | None = None) -> SyncResult:
        return SyncResult(ok, online, material.feed_version, applied, full, len(material.keys),
                          round(material.clock_offset, 3), error,
                          round((time.perf_counter() - started) * 1000, 1))

    try:
        sync_clock(client, material, clock)
        online = True
        material.replace_keys(client.jwks())
        material.replace_reader_keys(list(client.reader_keys().get("keys") or []))
        since = max(0, material.feed_version - overlap)
        snapshot: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            page = client.revocations(since)
            entries, version = list(page.get("entries") or []), int(page["version"])
            full = full or bool(page.get("full"))
            if full:
                snapshot += entries
            else:
                material.apply_page(entries, max(version, material.feed_version), full=False)
                applied += len(entries)
            if not page.get("more") or version <= since:
                break
            since = version
        if full:
            material.apply_page(snapshot, version, full=True)
            applied = len(snapshot)
    except ServiceError as exc:
        return result(False, exc.detail)
    except (JWKSError, ValueError, KeyError, TypeError, Malformed) as exc:
        return result(False, f"unusable trust material: {exc}")
    material.mark_synced(clock())
    return result(True)
