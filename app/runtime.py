"""The per-process runtime: settings, the clients and the domain parts ``app.compose`` built from
them, kept in ``app.extensions`` for the views (``runtime()``). It builds nothing itself."""
from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import Flask, current_app

from app.auth import PrincipalCache
from app.config import Settings
from app.db import Database
from app.devices import DeviceDesk
from app.hall import HallDesk
from app.hall.disclosure import DisclosureDesk
from app.records.sink import ScanRecords
from app.registry.pii import PiiVault
from app.registry.terminals import TerminalDirectory
from app.scenes.scenic import ScenicDirectory
from app.scenes.service import ScanService
from app.signing.keyring import KeyRingCache, KeyStore
from app.taps import TapDesk
from app.verification.issuing import Minter
from app.verification.online import OnlineVerifier
from app.verification.trust_feed import announce

EXTENSION = "citycode"


@dataclass
class Runtime:
    """What one process shares across requests and threads (see ``app.compose`` for who gets what)."""

    settings: Settings
    db: Database
    redis: "redis.Redis[bytes]"
    keystore: KeyStore
    keys: KeyRingCache
    vault: PiiVault
    principals: PrincipalCache  # recently authenticated bearer tokens, so a scan costs no token query
    verifier: OnlineVerifier
    records: ScanRecords  # where scans are recorded (``app.records``)
    scans: ScanService  # check, then the terminal kind's scene policy
    halls: HallDesk  # kiosk scans and counter actions for every hall
    disclosures: DisclosureDesk  # consent-based disclosure requests
    taps: TapDesk  # tap uploads from offline readers: storage, anomalies, metro settlement
    minter: Minter  # citizens' codes, from facts cached within ``settings.mint_cache_seconds``
    terminals: TerminalDirectory
    scenic: ScenicDirectory  # the spots and today's capacities, on the scan clock
    devices: DeviceDesk  # citizens' device keys and their certificates (offline minting)

    def trust_changed(self) -> None:
        """Call after committing a revocation-feed entry: workers re-read the feed at once."""
        announce(self.redis)

    def close(self) -> None:
        self.principals.close()  # its revocation listener's subscription
        self.db.dispose()
        self.redis.close()


def init_app(app: Flask, runtime: Runtime) -> None:
    app.extensions[EXTENSION] = runtime


def runtime() -> Runtime:
    """The runtime of the app handling the current request."""
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]
