"""gunicorn settings tuned for low latency, and the master's start/stop hooks.

Used by ``citycode serve`` and by the Dockerfile (``gunicorn -c python:app.serving.gunicorn_conf``).
"""
from __future__ import annotations

import os
from typing import Any

bind = os.environ.get("CITYCODE_BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = int(os.environ.get("CITYCODE_WORKERS", "0")) or (os.cpu_count() or 1)
threads = int(os.environ.get("CITYCODE_THREADS", "4"))
keepalive = 5  # terminals keep connections open; skip the TCP handshake per scan
backlog = 2048
timeout = 30
graceful_timeout = 20
max_requests = 20000  # recycle workers now and then, staggered so they never all restart at once
max_requests_jitter = 2000
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
