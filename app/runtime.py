"""The per-process runtime: settings plus the clients built from them, kept in ``app.extensions``."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import redis
from flask import Flask, current_app

from app.auth import PrincipalCache
from app.config import Settings
from app.db import Database
from app.registry.pii import PiiVault
from app.signing.keyring import KeyRingCache, KeyStore
from app.store.redis import connect

EXTENSION = "citycode"

if TYPE_CHECKING:
    from app.hall import HallDesk
    from app.hall.disclosure import DisclosureDesk
    from app.records.sink import ScanRecords
    from app.registry.terminals import TerminalDirectory
    from app.scenes.service import ScanService
    from app.taps import TapDesk
    from app.verification.issuing import MintingFacts
    from app.verification.online import OnlineVerifier


@dataclass
class Runtime:
    settings: Settings
    db: Database
    redis: "redis.Redis[bytes]"
    keystore: KeyStore
    keys: KeyRingCache
    vault: PiiVault

    @classmethod
    def build(cls, settings: Settings) -> "Runtime":
        if settings.redis_url is None:
            raise RuntimeError("REDIS_URL is not set and no embedded Redis was started; "
                               "run the service with `citycode serve`")
        keystore = KeyStore(settings.resolved_keys_dir,
                            retire_after_seconds=settings.code_ttl_seconds + settings.clock_leeway_seconds)
        return cls(settings, Database(settings.resolved_database_url), connect(settings.redis_url),
                   keystore, KeyRingCache(keystore), PiiVault.load(settings.resolved_keys_dir))

    @cached_property
    def verifier(self) -> "OnlineVerifier":
        """The process's online verifier (built on first use, shared by all threads)."""
        from app.verification.online import OnlineVerifier

        return OnlineVerifier(self)

    @cached_property
    def records(self) -> "ScanRecords":
        """Where scans are recorded: the scan-record stream, checked against the trust generation
        the verifier's state was read at (``app.records``)."""
        from app.records.sink import ScanRecords

        feed = self.verifier.feed
        return ScanRecords(self.redis, stream=self.settings.records_stream, generation=feed.seen,
                           leeway=self.settings.clock_leeway_seconds)

    @cached_property
    def scans(self) -> "ScanService":
        """Check, then the terminal kind's scene policy (built on first use)."""
        from app.scenes.service import ScanService

        return ScanService(self)

    @cached_property
    def principals(self) -> PrincipalCache:
        """Recently authenticated bearer tokens (10 s), so a scan costs no token query."""
        return PrincipalCache()

    @cached_property
    def minting(self) -> "MintingFacts":
        """What minting needs per citizen, cached within ``settings.mint_cache_seconds``."""
        from app.verification.issuing import MintingFacts

        return MintingFacts(self)

    @cached_property
    def terminals(self) -> "TerminalDirectory":
        from app.registry.terminals import TerminalDirectory

        return TerminalDirectory(self.db)

    @cached_property
    def halls(self) -> "HallDesk":
        """Kiosk scans and counter actions for every hall, over this runtime's Redis."""
        from app.hall import HallDesk

        return HallDesk(self)

    @cached_property
    def disclosures(self) -> "DisclosureDesk":
        """Consent-based disclosure requests, living ``settings.disclosure_ttl_seconds``."""
        from app.hall.disclosure import DisclosureDesk

        return DisclosureDesk(self, ttl_seconds=self.settings.disclosure_ttl_seconds)

    @cached_property
    def taps(self) -> "TapDesk":
        """Tap uploads from offline readers: storage, anomalies, metro settlement."""
        from app.taps import TapDesk

        return TapDesk(self.db, self.redis, self.settings)

    def trust_changed(self) -> None:
        """Call after committing a revocation-feed entry: workers re-read the feed at once."""
        from app.verification.trust_feed import announce

        announce(self.redis)

    def close(self) -> None:
        self.db.dispose()
        self.redis.close()


def init_app(app: Flask, runtime: Runtime) -> None:
    app.extensions[EXTENSION] = runtime


def runtime() -> Runtime:
    """The runtime of the app handling the current request."""
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]
