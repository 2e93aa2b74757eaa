"""A real record writer loop for tests that upload taps through HTTP: ``POST /v1/taps`` answers
only once the record writer committed the upload (``app.taps.queue``), as under ``citycode
serve``. The loop is ``RecordWriter.run`` with its ``TapUploads``, in a thread of the test
process, on the app's database and a Redis client of its own — writing tap uploads only
(``scans=False``), so scan records still wait in their stream until a test drains them
(``tests.helpers.drain``), as the tests of late online scans need."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator

import redis

from app.records.taps import TapUploads
from app.records.writer import RecordWriter
from app.taps import TapDesk


@contextmanager
def running_writer(app: Any, *, consumer: str = "tests-tap-writer", block_ms: int = 20
                   ) -> Iterator[RecordWriter]:
    """Run a tap-upload writer for ``app`` (a Flask app or its runtime) until the block ends."""
    from flask import Flask

    rt = app.extensions["citycode"] if isinstance(app, Flask) else app
    client = redis.Redis.from_url(rt.settings.redis_url, socket_timeout=block_ms / 1000 + 5,
                                  socket_connect_timeout=1)
    taps = TapUploads(client, TapDesk(rt.db, client, rt.settings), reclaim_seconds=1.0)
    writer = RecordWriter(client, rt.db, stream=rt.settings.records_stream, consumer=consumer,
                          block_ms=block_ms, taps=taps, scans=False)
    stopping = threading.Event()
    thread = threading.Thread(target=writer.run, args=(stopping.is_set,), name="tap-writer",
                              daemon=True)
    thread.start()
    try:
        yield writer
    finally:
        stopping.set()
        thread.join(10)
        client.close()
