"""Prometheus metrics, aggregated over all gunicorn workers (prometheus-client multiprocess mode).

``PROMETHEUS_MULTIPROC_DIR`` must be set before this module is imported in a worker; the gunicorn
config does that and clears the folder when the master starts.
"""
from __future__ import annotations

import os
import time
from typing import Iterator

import redis

from flask import Flask, Response, g, request
from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram,
                               generate_latest)
from prometheus_client import multiprocess
from prometheus_client.core import GaugeMetricFamily

REQUESTS = Counter("citycode_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("citycode_http_request_seconds", "HTTP request latency", ["route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))


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


def _observe(response: Response) -> Response:
    route = request.url_rule.rule if request.url_rule else "unmatched"
    REQUESTS.labels(request.method, route, str(response.status_code)).inc()
    started = g.get("metrics_started")
    if started is not None:
        LATENCY.labels(route).observe(time.perf_counter() - started)
    return response


def _start() -> None:
    g.metrics_started = time.perf_counter()


def init_app(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_observe)
