"""``BufferedThreadWorker``: gunicorn's gthread worker whose main loop reads each request in full
before a thread sees it (issue #9).

gthread hands every accepted or readable connection to a pool thread, which then blocks reading
the request: a few connections that send a request line and stop hold every thread, and
verification stops. Here the main loop (a selector, as in gthread) keeps each connection, set
non-blocking, in its selector with a buffer until ``RequestBuffer`` says the head and the body are
in, and only then passes it to a thread, whose gunicorn parser reads the buffer first. A slow or
idle connection costs a buffer and a selector entry, never a thread:

- the head must be in within ``CITYCODE_HEADER_TIMEOUT`` of the accept or of the end of the
  previous response (also the keep-alive idle time), else the connection is closed silently;
- the body within ``CITYCODE_BODY_TIMEOUT`` of the head, else 408 problem+json and closed;
  ``Expect: 100-continue`` is answered before waiting for it; a body over the largest the service
  accepts is handed over at once for the application to refuse (413);
- a kept-alive connection comes back to the main loop the same way, with any bytes of the next
  request the parser already read; connections closed after a response linger (RFC 9112 9.6) in
  the selector too, not in the main loop;
- threads read and write blocking, as in gthread, but each call ends after the body timeout
  (SO_RCVTIMEO/SO_SNDTIMEO): a handed-over body still to read, a client not reading its answer.

HTTP/1.x in clear only (TLS and HTTP/2 end at the proxy in front): refused at start otherwise.

Per request the loop does little beyond gthread's own hand-over (issue #8, by profile): a
connection handed to a thread stays in the selector with a "paused" callback, which only stops
watching it if it becomes readable meanwhile (pipelined bytes, or the client leaving), so a
kept-alive connection costs a swap of the callback, not two ``epoll_ctl`` calls per request; and
the heartbeat to the arbiter (a ``utime`` of the worker's temp file) is sent at most once a
``HEARTBEAT_SECONDS``, not on every turn of the loop.
"""
from __future__ import annotations

import errno
import selectors
import socket
import struct
import time
from collections import deque
from functools import partial
from typing import Any, Callable

from gunicorn import http
from gunicorn.errors import ConfigError
from gunicorn.workers import gthread

from app.serving.buffering import Limits, Ready, RequestBuffer
from app.serving.options import ServingOptions, body_buffer_bytes
from app.serving.problems import BodyTimeout, ProblemErrors, log_problem

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
LINGER_SECONDS = 2.0  # after a last response, wait this long for the client to close first
LINGER_BYTES = 65536
READ_SIZE = 65536
ACCEPT_BATCH = 64
BUFFER_BUDGET = 128 << 20  # bytes buffered per worker; past it a connection goes to a thread as is
HEARTBEAT_SECONDS = 1.0  # the arbiter's timeout is 30 s

_Deadlines = deque[tuple[float, "BufferedConn", int]]


class BufferedConn(gthread.TConn):  # type: ignore[misc]
    """A client connection and what it has sent of its next request."""

    def __init__(self, cfg: Any, sock: socket.socket, client: Any, server: Any, limits: Limits) -> None:
        super().__init__(cfg, sock, client, server)  # non-blocking
        self.request = RequestBuffer(limits)
        self.continue_answered = False  # the next request's "Expect: 100-continue" is taken care of
        self.generation = 0  # bumped on each state change: older deadlines no longer apply
        self.deadline = 0.0
        self.in_body = False  # the deadline running is the body timeout
        self.lingered = 0
        self.registered = False  # in the worker's selector (with whichever callback)
        self.busy = False  # a thread has it
        self.on_readable: Callable[[Any], None] | None = None  # set by the worker, once
        self.on_paused: Callable[[Any], None] | None = None

    def init(self) -> None:
        """gunicorn's HTTP/1.x parser on the (blocking, time-limited) socket; in a thread."""
        if self.parser is None:
            self.parser = http.get_parser(self.cfg, self.sock, self.client)
        self.initialized = True


class BufferedThreadWorker(ProblemErrors, gthread.ThreadWorker):  # type: ignore[misc]
    """gthread whose threads only ever see complete requests (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.options = ServingOptions.from_env()
        self.limits = Limits.of(self.cfg, 0)
        self.buffered = 0  # bytes held in connection buffers
        self._scratch = memoryview(bytearray(READ_SIZE))  # every read lands here first
        # Threads read and write blocking, like gthread's, but no longer than the body timeout
        # (set on each socket once; what gthread's settimeout would cost is a poll per call).
        seconds = int(self.options.body_timeout)
        self._io_limit = struct.pack("ll", seconds, int((self.options.body_timeout - seconds) * 1e6))
        self._heads: _Deadlines = deque()  # in deadline order: every head gets the same timeout
        self._bodies: _Deadlines = deque()
        self._lingering: _Deadlines = deque()
        self._notified = 0.0

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        super().check_config(cfg, log)
        if cfg.is_ssl or cfg.protocol != "http" or cfg.http2_cleartext not in (None, "off", ""):
            raise ConfigError("the buffered worker serves plain HTTP/1.x: end TLS and HTTP/2 in front of it "
                              "or use CITYCODE_WORKER_CLASS=gevent")

    def init_process(self) -> None:
        self.limits = Limits.of(self.cfg, body_buffer_bytes())
        super().init_process()

    def notify(self) -> None:
        """The heartbeat, at most once a ``HEARTBEAT_SECONDS`` (gthread calls it every turn)."""
        now = time.monotonic()
        if now - self._notified >= HEARTBEAT_SECONDS:
            self._notified = now
            super().notify()

    # -- the selector: one registration per connection -----------------------------------
    def _listen(self, conn: BufferedConn, callback: Callable[[Any], None]) -> None:
        """Watch ``conn`` for reading with ``callback``: for a connection still registered,
        swapping the callback is a dictionary update in the selector, no system call."""
        if conn.registered:
            self.poller.modify(conn.sock, selectors.EVENT_READ, callback)
        else:
            self.poller.register(conn.sock, selectors.EVENT_READ, callback)
            conn.registered = True

    def _forget(self, conn: BufferedConn) -> None:
        if conn.registered:
            conn.registered = False
            try:
                self.poller.unregister(conn.sock)
            except (KeyError, ValueError, OSError):
                pass

    def _on_paused(self, conn: BufferedConn, sock: Any) -> None:
        """Readable while a thread has the connection: stop watching it (level-triggered, it
        would wake the loop until the thread reads); ``finish_request`` watches it again. The
        select that reported it may have run before this turn's ``finish_request`` took the
        connection back: then it is an ordinary read."""
        if conn.busy:
            self._forget(conn)
        else:
            self._on_readable(conn, sock)

    # -- main loop: accept, read, time out ---------------------------------------------------
    def accept(self, listener: socket.socket) -> None:
        """Take up to ``ACCEPT_BATCH`` waiting connections (gthread takes one per wake-up: a
        thousand clients reconnecting at once cost a thousand turns of the loop)."""
        for _ in range(ACCEPT_BATCH):
            if self.nr_conns >= self.worker_connections:
                return
            try:
                sock, addr = listener.accept()
            except OSError as exc:
                if exc.errno == errno.ECONNABORTED:
                    continue
                if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                    raise
                return
            self._take(sock, addr, listener)

    def _take(self, sock: socket.socket, addr: Any, listener: socket.socket) -> None:
        self.nr_conns += 1
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, self._io_limit)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, self._io_limit)
        except OSError:
            pass  # the connection is gone already: the first read says so
        conn = BufferedConn(self.cfg, sock, addr, listener.getsockname(), self.limits)
        conn.on_readable = partial(self._on_readable, conn)
        conn.on_paused = partial(self._on_paused, conn)
        self._wait_for_head(conn)
        self._listen(conn, conn.on_readable)

    def _on_readable(self, conn: BufferedConn, _sock: Any) -> None:
        try:
            size = conn.sock.recv_into(self._scratch)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            size = 0
        if not size:  # the client left
            self._close(conn)
            return
        self.buffered += size
        ready = conn.request.feed(self._scratch[:size])
        if ready is Ready.MORE and self.buffered > BUFFER_BUDGET:
            ready = Ready.HAND_OVER
        self._advance(conn, ready)

    def _advance(self, conn: BufferedConn, ready: Ready) -> None:
        """Hand the connection to a thread, or keep waiting (and answer 100-continue)."""
        request = conn.request
        assert conn.on_readable is not None and conn.on_paused is not None
        if ready is not Ready.MORE:
            if conn.registered:
                self._listen(conn, conn.on_paused)
            conn.busy = True
            conn.generation += 1
            conn.continue_answered = conn.continue_answered or (
                request.expects_continue and ready is Ready.COMPLETE)
            self.buffered -= len(request.data)
            self.enqueue_req(conn)
            return
        if request.continue_due:
            request.continue_due = False
            conn.continue_answered = True
            try:
                conn.sock.send(CONTINUE)  # 25 bytes into an idle connection's empty send buffer
            except OSError:
                pass  # the read that follows sees the connection gone
        if request.in_body and not conn.in_body:
            self._wait_for_body(conn)
        self._listen(conn, conn.on_readable)

    def _wait_for_head(self, conn: BufferedConn) -> None:
        conn.generation += 1
        conn.in_body = False
        conn.deadline = time.monotonic() + self.options.header_timeout
        self._heads.append((conn.deadline, conn, conn.generation))

    def _wait_for_body(self, conn: BufferedConn) -> None:
        conn.generation += 1
        conn.in_body = True
        conn.deadline = time.monotonic() + self.options.body_timeout
        self._bodies.append((conn.deadline, conn, conn.generation))

    def murder_pending(self) -> None:
        """Called by gthread's loop after every wake-up: time out heads, bodies and lingerers."""
        now = time.monotonic()
        self._expire(self._heads, now, self._head_late)
        self._expire(self._bodies, now, self._body_late)
        self._expire(self._lingering, now, self._close)

    @staticmethod
    def _expire(queue: _Deadlines, now: float, late: Callable[[BufferedConn], None]) -> None:
        while queue and queue[0][0] <= now:
            _, conn, generation = queue.popleft()
            if conn.generation == generation and conn.deadline <= now:
                late(conn)

    def _head_late(self, conn: BufferedConn) -> None:
        self._close(conn)  # silently: nothing was asked

    def _body_late(self, conn: BufferedConn) -> None:
        self._forget(conn)
        self._drop_buffer(conn)
        try:
            conn.sock.send(log_problem(BodyTimeout()))
        except OSError:
            pass
        self._linger(conn)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        """Wake up for the next deadline too (gthread wakes up once a second)."""
        due = [queue[0][0] for queue in (self._heads, self._bodies, self._lingering) if queue]
        if due:
            timeout = min(timeout, max(min(due) - time.monotonic(), 0.0))
        super().wait_for_and_dispatch_events(timeout)

    # -- threads -----------------------------------------------------------------------------
    def handle(self, conn: BufferedConn) -> Any:
        """gthread's ``handle`` for a request already read (or handed over): in a thread."""
        req = None
        try:
            conn.sock.setblocking(True)  # SO_RCVTIMEO / SO_SNDTIMEO: the body timeout
            conn.init()
            data = conn.request.take()
            if data:
                conn.parser.unreader.unread(data)
            req = next(conn.parser)
            if not req:
                return False
            if conn.continue_answered:
                req._expected_100_continue = False
                conn.continue_answered = False
            return self._keepalive_after(conn, self.handle_request(req, conn))
        except (http.errors.NoMoreData, StopIteration, TimeoutError, BlockingIOError) as exc:
            self.log.debug("Closing connection: %r", exc)
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                self.log.exception("Socket error processing request.")
        except Exception as exc:
            self.handle_error(req, conn.sock, conn.client, exc)
        return False

    def finish_request(self, conn: BufferedConn, fs: Any) -> None:
        """Back on the main loop after a response: wait for the next request, or close."""
        conn.busy = False
        try:
            keep = bool(fs.result()) if not fs.cancelled() else False
        except Exception:
            keep = False
        if not keep or not self.alive:  # stopping: the answer said "Connection: close"
            self._linger(conn)
            return
        try:
            conn.sock.setblocking(False)
            ahead = conn.parser.unreader.take_buffered()  # read with the previous request
            conn.request.reset(ahead)
            self.buffered += len(ahead)
            self._wait_for_head(conn)
            self._advance(conn, conn.request.check() if ahead else Ready.MORE)
        except Exception:
            self.log.exception("Error returning a connection to the main loop")
            self._close(conn)

    # -- closing -----------------------------------------------------------------------------
    def _linger(self, conn: BufferedConn) -> None:
        """Close after a last answer: send FIN, then read what the client still sends until it
        closes too (or for ``LINGER_SECONDS``), so unread bytes do not turn into a reset that
        could cut the answer short — in the selector, where gthread blocks its main loop."""
        try:
            conn.sock.setblocking(False)
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.generation += 1
        conn.deadline = time.monotonic() + LINGER_SECONDS
        self._lingering.append((conn.deadline, conn, conn.generation))
        self._listen(conn, partial(self._on_lingering, conn))

    def _on_lingering(self, conn: BufferedConn, _sock: Any) -> None:
        try:
            piece = conn.sock.recv(LINGER_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            piece = b""
        conn.lingered += len(piece)
        if not piece or conn.lingered >= LINGER_BYTES:
            self._close(conn)

    def _drop_buffer(self, conn: BufferedConn) -> None:
        self.buffered -= len(conn.request.data)
        conn.request.reset()

    def _close(self, conn: BufferedConn) -> None:
        self._forget(conn)
        conn.generation += 1
        self._drop_buffer(conn)
        self.nr_conns -= 1
        conn.close()

    def _cap_keepalive(self, deadline: float) -> None:
        """Stopping (no more accepts): connections idle between requests close by ``deadline``,
        so a request already on its way is still answered, with "Connection: close"."""
        waiting = []
        for _, conn, generation in self._heads:
            if conn.generation == generation:
                if not conn.request.data:
                    conn.deadline = min(conn.deadline, deadline)
                waiting.append((conn.deadline, conn, generation))
        self._heads = deque(sorted(waiting, key=lambda entry: entry[0]))

    def murder_keepalived(self, force: bool = False) -> None:
        if force:  # the end: every connection still waiting is closed
            for queue in (self._heads, self._bodies, self._lingering):
                while queue:
                    _, conn, generation = queue.popleft()
                    if conn.generation == generation:
                        self._close(conn)
