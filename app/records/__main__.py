"""The record writer process: ``python -m app.records``, started and supervised by the master of
``citycode serve`` (``app.records.process``); reads the same environment as the workers."""
from __future__ import annotations

import gc
import logging
import signal
import sys
import threading

from app.config import ConfigError, Settings
from app.db import Database
from app.ops import logs
from app.records.taps import TapUploads
from app.records.writer import RecordWriter
from app.taps import TapDesk
from app.signing.keyring import KeyRingCache, KeyStore
from app.store.redis import connect

log = logging.getLogger("citycode.records")


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"record writer: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    if not settings.redis_url:
        log.error("record writer: REDIS_URL is not set")
        return 2
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    # Its own client: the blocking read must not hit the workers' 0.5 s socket timeout.
    client = connect(settings.redis_url, socket_timeout=settings.records_block_ms / 1000 + 5,
                     connect_timeout=1)
    database = Database(settings.resolved_database_url)
    # The key ring signs audit tree heads (the current key, as for codes; app.audit.tree_store).
    keys = KeyRingCache(KeyStore(settings.resolved_keys_dir,
                                 retire_after_seconds=settings.code_ttl_seconds + settings.clock_leeway_seconds))
    # Tap uploads (POST /v1/taps) are written here too, from the stream cc:taps (app.records.taps).
    taps = TapUploads(client, TapDesk(database, client, settings))
    writer = RecordWriter(client, database, stream=settings.records_stream, batch=settings.records_batch,
                          block_ms=settings.records_block_ms, keys=keys,
                          head_seconds=settings.audit_head_seconds,
                          leaf_seconds=settings.audit_head_seconds,  # a leaf per head, not per batch
                          taps=taps, linger_ms=settings.records_linger_ms)
    log.info("record writer started", extra={"stream": settings.records_stream})
    # Everything loaded so far lives as long as the process: out of the collector's way, so its
    # full collections walk only what batches leave behind (the batches pause it: RecordWriter.step).
    gc.collect()
    gc.freeze()
    try:
        writer.run(stopping.is_set)
    finally:
        database.dispose()
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
