"""How ``citycode serve`` serves HTTP: the worker model and its limits for slow clients, from the
environment (read by ``gunicorn_conf`` in the master and by the workers in ``app.serving``).

``CITYCODE_WORKER_CLASS``        ``buffered`` (default): gunicorn's gthread worker whose main loop
                                 reads each request, head and body, before a thread serves it
                                 (``app.serving.buffered``): a client that never finishes its
                                 request holds a buffer, not one of the 4 threads;
                                 ``gevent``: one greenlet per connection with the same timeouts
                                 (``app.serving.workers``), more CPU per request (BENCHMARKS.md);
                                 ``gthread``: gunicorn's own, which a few half-open connections
                                 stop (issue #9) — only behind a buffering proxy.
``CITYCODE_WORKER_CONNECTIONS``  connections per worker, default 10,000, capped to the open-file
                                 limit (raised to its hard limit at start) less 256.
``CITYCODE_HEADER_TIMEOUT``      seconds a connection may take to send a complete request head,
                                 counted from its accept or from the end of its previous
                                 response (so also the keep-alive idle time); default 10. Late:
                                 closed without an answer (``buffered``, ``gevent``).
``CITYCODE_BODY_TIMEOUT``        seconds to receive a request body once the head is in; default
                                 30 (2 MiB of taps at 70 KB/s). Late: 408 problem+json, closed.
``CITYCODE_THREADS``             threads per worker (``buffered``, ``gthread``); default 4.
"""
from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from typing import Mapping

WORKER_CLASSES = {
    "buffered": "app.serving.buffered.BufferedThreadWorker",
    "gevent": "app.serving.workers.GeventWorker",
    "gthread": "app.serving.workers.ThreadWorker",
}
FD_RESERVE = 256  # files a worker needs besides client connections: Redis, SQLite, logs, metrics


class ServingOptionError(ValueError):
    """A serving setting in the environment cannot be used."""


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ServingOptionError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ServingOptionError(f"{name} must be between {low:g} and {high:g}, got {raw}")
    return value


@dataclass(frozen=True)
class ServingOptions:
    worker_class: str = "buffered"
    worker_connections: int = 10_000
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    threads: int = 4

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServingOptions:
        env = os.environ if env is None else env
        kind = env.get("CITYCODE_WORKER_CLASS", "") or cls.worker_class
        if kind not in WORKER_CLASSES:
            raise ServingOptionError(f"CITYCODE_WORKER_CLASS must be one of {', '.join(WORKER_CLASSES)}, "
                                     f"got {kind!r}")
        return cls(worker_class=kind,
                   worker_connections=int(_number(env, "CITYCODE_WORKER_CONNECTIONS", cls.worker_connections,
                                                  10, 1_000_000)),
                   header_timeout=_number(env, "CITYCODE_HEADER_TIMEOUT", cls.header_timeout, 0.5, 600),
                   body_timeout=_number(env, "CITYCODE_BODY_TIMEOUT", cls.body_timeout, 0.5, 3600),
                   threads=int(_number(env, "CITYCODE_THREADS", cls.threads, 1, 256)))

    @property
    def worker_class_path(self) -> str:
        return WORKER_CLASSES[self.worker_class]

    def connections_within(self, open_files: int) -> int:
        """Connections per worker that fit under an open-file limit."""
        return max(10, min(self.worker_connections, open_files - FD_RESERVE))


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (children inherit it); the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):  # e.g. above the kernel's nr_open: keep what we have
            pass
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def body_buffer_bytes() -> int:
    """The largest body the service accepts (``POST /v1/taps``), read ahead in full before the
    application runs; larger ones are the application's to refuse (413)."""
    from app.config import Settings

    settings = Settings.from_env()
    return max(settings.max_body_bytes, settings.taps_max_body_bytes)
