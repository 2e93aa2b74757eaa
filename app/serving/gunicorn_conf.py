"""gunicorn settings tuned for low latency, and the master's start/stop hooks.

Used by ``citycode serve`` and by the Dockerfile (``gunicorn -c python:app.serving.gunicorn_conf``).
"""
from __future__ import annotations

import os
from typing import Any

from app.serving.options import ServingOptions, raise_open_file_limit

# Slow clients (issue #9): the buffered gthread worker reads each request in its main loop before
# a thread serves it, and times out request heads and bodies (app/serving/buffered.py; the
# choices and their settings in app/serving/options.py).
_options = ServingOptions.from_env()
bind = os.environ.get("CITYCODE_BIND", "127.0.0.1:8000")
worker_class = _options.worker_class_path
workers = int(os.environ.get("CITYCODE_WORKERS", "0")) or (os.cpu_count() or 1)
threads = _options.threads  # buffered and gthread
# Every connection is a file: the soft limit goes up to the hard one, here in the master, which
# the workers inherit; connections per worker stay below it.
worker_connections = _options.connections_within(raise_open_file_limit())
keepalive = 5  # terminals keep connections open; skip the TCP handshake per scan (plain gthread;
#               with buffered and gevent the keep-alive idle time is the header timeout)
backlog = 2048
timeout = 30
graceful_timeout = 20
# No recycling by default: a worker restarting under load stalls its queued requests for 1-2 s
# (measured: every ~7 s at 2,900 req/s with 20,000 ± 2,000), and nothing is known to leak;
# each worker's resident memory is on /metrics (process_resident_memory_bytes) to watch for one.
# CITYCODE_MAX_REQUESTS turns recycling back on (gunicorn staggers it by the jitter).
max_requests = int(os.environ.get("CITYCODE_MAX_REQUESTS", "0"))
max_requests_jitter = max_requests // 10
accesslog = None  # the app writes its own structured access log
errorlog = "-"
loglevel = "warning"
proc_name = "citycode"
# gunicorn >= 25 opens one control socket per user ($HOME/.gunicorn); instances would clobber it.
control_socket_disable = True

_embedded: Any = None
_writer: Any = None


def on_starting(server: Any) -> None:
    global _embedded, _writer
    from app.config import Settings
    from app.ops import logs
    from app.serving import prepare

    os.umask(0o077)  # everything the service writes (database, AOF, keys, tokens) is private
    settings = Settings.from_env()
    logs.configure(settings.log_level)
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    prepare.lock_data_dir(settings)  # before touching anything another instance may be using
    prepare.prepare_metrics_dir(settings)
    _embedded = prepare.start_embedded_redis(settings)
    try:
        prepare.prepare_state(settings)
        _writer = prepare.start_record_writer(settings)  # after the migrations it writes under
    except BaseException:
        on_exit(server)
        raise


def post_worker_init(worker: Any) -> None:
    """The app is built: move everything alive now out of the collector's sight (``gc.freeze``),
    so a full collection walks what requests allocate, not the ~150k objects of the loaded code
    (a 79 ms pause every ~3,000 requests before), and time every collection (``/metrics``)."""
    from app.ops import gc_watch

    gc_watch.freeze_after_boot()


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    global _embedded, _writer
    if _writer is not None:  # first: it may still acknowledge a batch in Redis
        _writer.stop()
        _writer = None
    if _embedded is not None:
        _embedded.stop()
        _embedded = None
