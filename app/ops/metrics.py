"""Prometheus metrics, aggregated over all gunicorn workers (prometheus-client multiprocess mode).

``PROMETHEUS_MULTIPROC_DIR`` must be set before this module is imported in a worker; the gunicorn
config does that and clears the folder when the master starts.

Recording a request costs ≈6 µs in multiprocess mode (one counter and one histogram written to
their mmap files): the labelled children are looked up once per (method, route, status) and
kept, instead of through ``labels()`` on every request (≈10 µs). Labels are bounded whatever
clients send: a method outside ``METHODS`` is counted as ``other`` and a request no route matched
(404, or 405 for a method the route does not take) as route ``unmatched``, so odd methods or
probed paths cannot grow the series (each one a file entry every scrape reads). The fold is one
set lookup: no parsing, nothing allocated. Each worker's resident memory
is a gauge, sampled at most every ``RSS_EVERY_SECONDS``: workers are not recycled
(``app/serving/gunicorn_conf.py``), so this is where a leak would show.
"""
from __future__ import annotations

import os
import time
from typing import Any, Iterator

import redis

from flask import Flask, Response, g, request
from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge,
                               Histogram, generate_latest)
from prometheus_client import multiprocess
from prometheus_client.core import GaugeMetricFamily

REQUESTS = Counter("citycode_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("citycode_http_request_seconds", "HTTP request latency", ["route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
WORKER_RSS = Gauge("citycode_worker_resident_bytes", "Resident memory of each serving worker",
                   multiprocess_mode="liveall")
RSS_EVERY_SECONDS = 15.0
_PAGE = os.sysconf("SC_PAGE_SIZE")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
OTHER_METHOD = "other"
UNMATCHED_ROUTE = "unmatched"
_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
_rss_due = [0.0]


class RecordLagCollector:
    """The scan-record writer's lag, read from Redis at scrape time (any worker can answer)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from app.records.lag import lag
        from app.runtime import runtime

        rt = runtime()
        try:
            behind = lag(rt.redis, rt.settings.records_stream)
        except (redis.RedisError, OSError):
            return
        yield GaugeMetricFamily("citycode_records_pending",
                                "Scan records in the stream not yet written to SQL", value=behind.records)
        yield GaugeMetricFamily("citycode_records_oldest_age_seconds",
                                "Age of the oldest scan record not yet written to SQL",
                                value=behind.oldest_seconds)


def exposition() -> Response:
    """The metrics page: all workers' samples when in multiprocess mode (the record writer's
    counters included), else this process's; plus the record writer's lag."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    lag_registry = CollectorRegistry()
    lag_registry.register(RecordLagCollector())  # type: ignore[arg-type]
    # content_type, not mimetype: Werkzeug would append a second "; charset=utf-8".
    return Response(generate_latest(registry) + generate_latest(lag_registry),
                    content_type=CONTENT_TYPE_LATEST)


def _series(method: str, route: str, status: int) -> tuple[Any, Any]:
    """The counter and histogram children of a request kind, looked up once."""
    key = (method, route, status)
    pair = _children.get(key)
    if pair is None:
        if len(_children) > 1000:  # labels are bounded, this memo too (a guard, never expected)
            _children.clear()
        pair = _children[key] = (REQUESTS.labels(method, route, str(status)), LATENCY.labels(route))
    return pair


def _sample_rss(now: float) -> None:
    _rss_due[0] = now + RSS_EVERY_SECONDS
    try:
        with open("/proc/self/statm", "rb") as statm:
            WORKER_RSS.set(int(statm.read().split()[1]) * _PAGE)
    except (OSError, IndexError, ValueError):
        pass  # not Linux: no gauge


def _observe(response: Response) -> Response:
    rule = request.url_rule
    method = request.method
    count, latency = _series(method if method in METHODS else OTHER_METHOD,
                             rule.rule if rule is not None else UNMATCHED_ROUTE, response.status_code)
    count.inc()
    now = time.perf_counter()
    started = g.get("metrics_started")
    if started is not None:
        latency.observe(now - started)
    if now >= _rss_due[0]:
        _sample_rss(now)
    return response


def _start() -> None:
    g.metrics_started = time.perf_counter()


def init_app(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_observe)
