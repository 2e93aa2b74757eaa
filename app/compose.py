"""The composition root: the one place the service's parts are built and wired together.

``build(settings)`` opens the clients the settings name and hands them to ``assemble``, which
builds every domain part, in this order, each given exactly the collaborators it uses:

1. clients: the database, the Redis client, the key store and its cached ring, the PII vault;
2. ``principals``: recently authenticated bearer tokens (Redis: the auth generation);
3. ``verifier`` (``OnlineVerifier``): the key ring, its own trust feed (database + Redis) and
   the Redis replay store;
4. ``records`` (``ScanRecords``): the scan-record stream in Redis, checked against the trust
   generation the verifier's feed has seen;
5. the scenes (bus, metro, scenic): Redis and ``records`` each;
6. ``scans`` (``ScanService``): the verifier, ``records``, the scenes and the retry memory;
7. ``halls`` (``HallDesk``): ``scans``, the verifier and the hall queue (Redis + ``records``);
8. ``disclosures`` (``DisclosureDesk``): ``scans``, the verifier, ``records``, its Redis store,
   the database and the vault;
9. ``taps`` (``TapDesk``): the database, Redis and the settings' anomaly rules;
10. ``minter`` (``Minter``): ``MintingFacts`` (the database and a trust feed of its own, so
    minting never moves the scan path's feed), the key ring and the code lifetime;
11. ``terminals`` (``TerminalDirectory``): the database;
12. ``scenic`` (``ScenicDirectory``): Redis and the scan clock of ``scans``;
13. ``devices`` (``DeviceDesk``): the database and the key ring (device certificates).

Everything is built eagerly, once per process; nothing here runs a query or a Redis command.
Domain modules never see the ``Runtime`` that holds the result: only views (``runtime()``) and
operations code do.
"""
from __future__ import annotations

import redis

from app.auth import PrincipalCache
from app.codes.replay import RedisReplayStore
from app.config import Settings
from app.db import Database
from app.devices import DeviceDesk
from app.hall import HallDesk
from app.hall.disclosure import DisclosureDesk
from app.hall.disclosure_store import DisclosureStore
from app.hall.queue import HallQueue
from app.records.sink import ScanRecords
from app.registry.pii import PiiVault
from app.registry.terminals import TerminalDirectory
from app.runtime import Runtime
from app.scenes import bus, metro, scenic
from app.scenes.service import ScanService
from app.signing.keyring import KeyRingCache, KeyStore
from app.signing.reader_keys import ReaderKeyRing
from app.store.redis import connect
from app.taps import TapDesk
from app.verification.issuing import ISSUER, Minter, MintingFacts
from app.verification.online import OnlineVerifier
from app.verification.retries import RetryMemory
from app.verification.trust_feed import FeedTrust


def build(settings: Settings) -> Runtime:
    """Open the database, Redis, key store and vault ``settings`` name; build every part over them."""
    if settings.redis_url is None:
        raise RuntimeError("REDIS_URL is not set and no embedded Redis was started; "
                           "run the service with `citycode serve`")
    keystore = KeyStore(settings.resolved_keys_dir, retire_after_seconds=settings.key_retire_seconds)
    return assemble(settings, db=Database(settings.resolved_database_url), client=connect(settings.redis_url),
                    keystore=keystore, keys=KeyRingCache(keystore),
                    vault=PiiVault.load(settings.resolved_keys_dir))


def assemble(settings: Settings, *, db: Database, client: "redis.Redis[bytes]", keystore: KeyStore,
             keys: KeyRingCache, vault: PiiVault) -> Runtime:
    """Every domain part over already open clients, in the order the module docstring gives."""
    leeway, ttl = settings.clock_leeway_seconds, settings.code_ttl_seconds

    principals = PrincipalCache(client=client)
    verifier = OnlineVerifier(keys, FeedTrust(db, client), RedisReplayStore(client), max_ttl=ttl, leeway=leeway)
    records = ScanRecords(client, stream=settings.records_stream, generation=verifier.feed.seen, leeway=leeway,
                          wait_replicas=settings.resolved_wait_replicas)
    scenes = [bus.build(client, records, leeway=leeway), metro.build(client, records, leeway=leeway),
              scenic.build(client, records, leeway=leeway)]
    retries = RetryMemory(client, leeway=leeway, fallback_seconds=ttl + 2 * leeway, wall=verifier.core.clock)
    scans = ScanService(verifier, records, scenes, retries)

    halls = HallDesk(scans, verifier, HallQueue(client, leeway=leeway, records=records))
    disclosures = DisclosureDesk(scans, verifier, records, DisclosureStore(client), db, vault,
                                 ttl_seconds=settings.disclosure_ttl_seconds)
    taps = TapDesk(db, client, settings)

    facts = MintingFacts(db, FeedTrust(db, client), bound_seconds=settings.mint_cache_seconds)
    minter = Minter(facts, keys, ttl_seconds=ttl)
    terminals = TerminalDirectory(db)
    spots = scenic.directory(client, clock=lambda: scans.clock())  # the scan clock, even when a test swaps it
    readers = ReaderKeyRing(keystore.directory, period_seconds=settings.reader_key_hours * 3600)
    verifier.core.device.reader_keys = readers.private_map  # sealed CC3 codes open with these
    devices = DeviceDesk(db, keys, cert_seconds=settings.device_cert_hours * 3600, issuer=ISSUER,
                         reader_keys=readers)

    return Runtime(settings=settings, db=db, redis=client, keystore=keystore, keys=keys, vault=vault,
                   principals=principals, verifier=verifier, records=records, scans=scans, halls=halls,
                   disclosures=disclosures, taps=taps, minter=minter, terminals=terminals, scenic=spots,
                   devices=devices)
