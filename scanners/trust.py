"""The reader's trust material, persisted: the JWKS, the revocation feed and when each was synced.

On open, the keys come from the stored JWK Set (``app.codes.jwks.keys_from_jwks``) and the trust
state is rebuilt by applying the stored feed entries, in version order, to a fresh
``app.codes.trust.StaticTrust`` — so a restarted reader decides exactly as before, with no network.

Feed changes are validated in memory first (``StaticTrust.apply`` rejects a whole page it cannot
understand) and only then written; a ``full`` page replaces the stored feed instead of merging.
"""
from __future__ import annotations

from typing import Any, Mapping

from app.codes.device import ReaderKeys, reader_keys_from
from app.codes.jwks import keys_from_jwks
from app.codes.trust import StaticTrust
from app.signing.keyfiles import PublicKey
from scanners.local import LocalDB

KeyMap = Mapping[str, tuple[str, PublicKey]]


class TrustMaterial:
    """Keys and trust state for the verifier, and the facts the degraded policy needs."""

    def __init__(self, db: LocalDB) -> None:
        self.db = db
        jwks = db.get("trust.jwks")
        self.keys: KeyMap = keys_from_jwks(jwks) if jwks is not None else {}
        self.reader_keys: ReaderKeys = reader_keys_from(db.get("trust.reader_keys") or [])
        self.state = StaticTrust()
        rows = db.query("SELECT kind, id, at FROM feed ORDER BY version")
        self.state.apply({"kind": kind, "id": ident, "at": at} for kind, ident, at in rows)

    # -- what the degraded policy and the journal read -----------------------------------------
    @property
    def feed_version(self) -> int:
        return int(self.db.get("trust.feed_version", 0))

    @property
    def synced_at(self) -> float | None:
        """Reader-clock time of the last sync that brought both keys and feed up to date."""
        return self.db.get("trust.synced_at")

    @property
    def clock_offset(self) -> float:
        """Reader clock minus server clock, measured at the last clock sync (0 before any)."""
        return float(self.db.get("clock.offset_s", 0.0))

    @property
    def clock_synced_at(self) -> float | None:
        return self.db.get("clock.synced_at")

    def entries(self) -> int:
        return int(self.db.query("SELECT count(*) FROM feed")[0][0])

    # -- changes (called by sync) --------------------------------------------------------------
    def replace_keys(self, jwks: Mapping[str, Any]) -> int:
        """Adopt a new JWK Set; raises ``JWKSError`` (keeping the old keys) if it is unusable."""
        keys = keys_from_jwks(jwks)
        self.db.put("trust.jwks", dict(jwks))
        self.keys = keys
        return len(keys)

    def replace_reader_keys(self, keys: list[Mapping[str, Any]]) -> int:
        """Adopt the terminal's reader keys (private; the SQLite file is mode 0600): the new set
        replaces the old, so a key rotated out or withdrawn is dropped at this sync. Raises
        ``ValueError`` (keeping the old set) for an unusable entry."""
        parsed = reader_keys_from(keys)
        self.db.put("trust.reader_keys", [dict(k) for k in keys])
        self.reader_keys = parsed
        return len(parsed)

    def apply_page(self, entries: list[Mapping[str, Any]], version: int, *, full: bool) -> StaticTrust:
        """Apply one feed page and persist it with its version; ``full`` replaces everything.

        Returns the trust state to use from now on (a new object after a full page, so scans in
        flight keep a consistent one). Raises ``ValueError`` for a page it cannot understand,
        before anything is stored or changed.
        """
        rows = [(_version(e), e.get("kind"), e.get("id"), e.get("at")) for e in entries]
        target = StaticTrust() if full else self.state
        target.apply(entries)  # validates every entry before changing anything
        with self.db.transaction() as conn:
            if full:
                conn.execute("DELETE FROM feed")
            conn.executemany("INSERT OR REPLACE INTO feed (version, kind, id, at) VALUES (?, ?, ?, ?)",
                             rows)
            conn.execute("INSERT INTO meta (key, value) VALUES ('trust.feed_version', ?) "
                         "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(version),))
        self.state = target
        return target

    def mark_synced(self, at: float) -> None:
        self.db.put("trust.synced_at", at)

    def set_clock(self, offset_s: float, at: float) -> None:
        with self.db.transaction():
            self.db.put("clock.offset_s", offset_s)
            self.db.put("clock.synced_at", at)


def _version(entry: Mapping[str, Any]) -> int:
    version = entry.get("version") if isinstance(entry, Mapping) else None
    if type(version) is not int or version < 1:
        raise ValueError(f"feed entry without a positive integer version: {entry!r}")
    return version

