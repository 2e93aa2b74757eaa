"""Garbage collection in a serving worker: frozen after boot, every pause timed.

A worker that has loaded the app holds ~150k container objects (modules, classes, the OpenAPI
spec, SQLAlchemy's mappers) that live as long as it does. Left in the collector's generations,
every full collection walks them all: a 79 ms pause every ~3,000 requests at capacity (issue #8).
``gc.freeze()`` after boot moves them to the permanent generation, so collections only walk what
requests allocate (≈1k tracked objects instead of 150k). The thresholds stay CPython's: with
the heap frozen, gen0 collections cost ~9 µs a request in total (measured in process, 15,000
verifications), which larger thresholds do not buy back.

``citycode_gc_pause_seconds`` (per generation) shows the pauses under load on ``/metrics``.
"""
from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import Histogram

PAUSES = Histogram("citycode_gc_pause_seconds", "Garbage-collection pauses in serving workers",
                   ["generation"], buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1))
_BY_GENERATION = tuple(PAUSES.labels(str(g)) for g in range(3))
_started = [0.0]


def _time_collection(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        _BY_GENERATION[info["generation"]].observe(time.perf_counter() - _started[0])


def freeze_after_boot() -> int:
    """Collect once, freeze what survived, and start timing collections; the number frozen.
    Called in each worker once its app is built (gunicorn's ``post_worker_init``)."""
    gc.collect()
    gc.freeze()
    if _time_collection not in gc.callbacks:
        gc.callbacks.append(_time_collection)
    return gc.get_freeze_count()
