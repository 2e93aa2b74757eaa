"""gunicorn worker classes for ``citycode serve`` besides the default (``app.serving.buffered``);
``app.serving.options`` picks one.

``GeventWorker``: gunicorn's gevent worker, one greenlet per connection, so connections that
never finish their request cost memory, not the threads verification needs (issue #9). On top:

- a header timeout: a request head (request line and headers) must be complete within
  ``CITYCODE_HEADER_TIMEOUT`` of the accept or of the previous response, else the connection is
  closed (gunicorn's own bound here is the keep-alive setting);
- a body timeout: the body is read in full, within ``CITYCODE_BODY_TIMEOUT``, before the
  application sees the request (408 problem+json otherwise), so a handler never waits on a slow
  client; a body beyond the largest the service accepts is left to the application (413).

``ThreadWorker``: gunicorn's gthread worker; no header or body timeout (its threads block on
slow clients). For use behind a buffering proxy only.

Both answer gunicorn's own errors with problem documents (``app.serving.problems``).
"""
from __future__ import annotations

import socket
from typing import Any

from gunicorn.http.body import Body
from gunicorn.workers import gthread

from app.serving.options import ServingOptions, body_buffer_bytes
from app.serving.problems import BodyTimeout, ProblemErrors

__all__ = ["GeventWorker", "ThreadWorker"]


class _Prefetched:
    """A body reader: the bytes read ahead first, then the rest from gunicorn's reader."""

    def __init__(self, data: bytes, rest: Body) -> None:
        self.data, self.rest = data, rest

    def read(self, size: int) -> bytes:
        if self.data:
            chunk, self.data = self.data[:size], self.data[size:]
            return chunk
        return self.rest.read(size)


def _has_body(req: Any) -> bool:
    reader = getattr(req.body, "reader", None)
    return not (reader is not None and getattr(reader, "length", None) == 0)


class ThreadWorker(ProblemErrors, gthread.ThreadWorker):  # type: ignore[misc]
    """gthread with problem+json error answers (no slow-client protection)."""


try:  # gevent is an optional dependency of gunicorn; ThreadWorker works without it
    import gevent
    from gunicorn.workers import ggevent
except ImportError:  # pragma: no cover - reported when the gevent worker class is loaded
    ggevent = None  # type: ignore[assignment]


if ggevent is not None:
    class GeventWorker(ProblemErrors, ggevent.GeventWorker):  # type: ignore[misc]
        """gevent worker with header and body timeouts and problem+json error answers."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.options = ServingOptions.from_env()
            self.body_buffer = 0

        def init_process(self) -> None:
            self.body_buffer = body_buffer_bytes()
            super().init_process()

        def patch(self) -> None:
            """gunicorn's monkey-patching, without its warning that ``ssl`` was imported first (by
            redis-py in the master, which the worker inherits): the one module it names as
            unpatched, ``redis.asyncio``, is not used here, and TLS to an external Redis goes
            through ``ssl.SSLContext``, which is patched in place."""
            import warnings

            from gevent.monkey import MonkeyPatchWarning

            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=MonkeyPatchWarning,
                                        message="Monkey-patching ssl after ssl has already been imported")
                super().patch()

        def timeout_ctx(self) -> Any:
            """Around reading each request head (gunicorn uses the keep-alive setting here):
            silent, the connection is closed."""
            return gevent.Timeout(self.options.header_timeout, False)

        def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
            if _has_body(req):
                try:
                    self._read_body(req, sock)
                except BodyTimeout as exc:
                    self.handle_error(req, sock, addr, exc)
                    raise StopIteration() from None  # close: the rest of the body is unknown
            return super().handle_request(listener_name, req, sock, addr)

        def _read_body(self, req: Any, sock: socket.socket) -> None:
            """Read the body (up to the largest accepted) before the application runs."""
            if getattr(req, "_expected_100_continue", False):
                # The client waits for this before it sends the body; gunicorn would send it
                # only once the application runs, after this read.
                sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                req._expected_100_continue = False
            timer = gevent.Timeout(self.options.body_timeout, BodyTimeout())
            timer.start()
            try:
                data = req.body.read(self.body_buffer + 1)
            finally:
                timer.close()
            req.body = Body(_Prefetched(data, req.body))
