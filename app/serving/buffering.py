"""When a request read a piece at a time is complete enough for a thread (issue #9).

``RequestBuffer`` holds the bytes one connection has sent so far and says, after each piece,
whether to wait for more, or to hand the connection to a thread: the request head is in ("\\r\\n\\r\\n")
and its body too (``Content-Length`` bytes, or chunks up to the terminating zero chunk and the
trailer section). It only decides *when*: gunicorn's parser, which reads these bytes first, still
decides what they mean. So anything this module does not follow with certainty — an unusual or
contradictory framing, a head or chunk line over gunicorn's limits, a body larger than the service
accepts — is handed over at once (``HAND_OVER``) for gunicorn or the application to answer
(400, 413, 414, 431, 501); the thread then reads the rest itself, under a socket timeout.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")
MAX_CHUNK_LINE = 4096  # a chunk-size line with extensions; longer ones are gunicorn's to refuse


class Ready(enum.Enum):
    MORE = "more"  # wait for more bytes
    COMPLETE = "complete"  # head and body are in: hand over
    HAND_OVER = "hand-over"  # not for this module to wait on: hand over now


@dataclass(frozen=True)
class Limits:
    request_line: int  # longest request line gunicorn accepts
    head: int  # most head bytes gunicorn reads before refusing
    body: int  # largest body read ahead (the largest the service accepts)

    @classmethod
    def of(cls, cfg: Any, body: int) -> Limits:
        """gunicorn's own limits (``limit_request_*``, 0 or less meaning its maximum)."""
        line = cfg.limit_request_line if 0 < cfg.limit_request_line < 8190 else 8190
        fields = cfg.limit_request_fields if 0 < cfg.limit_request_fields <= 32768 else 32768
        size = cfg.limit_request_field_size if cfg.limit_request_field_size > 0 else 8190
        return cls(request_line=line, head=line + 2 + fields * (size + 2) + 4, body=body)


class RequestBuffer:
    """The bytes of one connection up to the end of its next request."""

    __slots__ = ("data", "limits", "head_end", "body_end", "chunk_at", "chunked_bytes",
                 "expects_continue", "continue_due", "_searched")

    def __init__(self, limits: Limits, data: bytes = b"") -> None:
        self.limits = limits
        self.reset(data)

    def reset(self, data: bytes = b"") -> None:
        """Start over for the next request, with what was already read of it."""
        self.data = bytearray(data)
        self.head_end = -1  # offset just past the head's blank line, once it is in
        self.body_end = -1  # offset just past the body, when known (Content-Length)
        self.chunk_at = -1  # offset of the next chunk-size line (chunked body)
        self.chunked_bytes = 0  # chunk data seen so far
        self.expects_continue = False  # "Expect: 100-continue" on an HTTP/1.1 request
        self.continue_due = False  # ... and the body is not in: the client waits for "100 Continue"
        self._searched = 0

    @property
    def in_body(self) -> bool:
        """The head is in; what is missing is body."""
        return self.head_end >= 0

    def feed(self, piece: bytes | memoryview) -> Ready:
        self.data += piece
        return self.check()

    def take(self) -> bytes:
        """Every byte read (for gunicorn's parser), leaving the buffer empty."""
        data, self.data = bytes(self.data), bytearray()
        return data

    def check(self) -> Ready:
        if self.head_end < 0:
            ready = self._find_head()
            if ready is not None:
                return ready
        if self.chunk_at >= 0:
            return self._scan_chunks()
        return Ready.COMPLETE if len(self.data) >= self.body_end else Ready.MORE

    def _find_head(self) -> Ready | None:
        data = self.data
        end = data.find(b"\r\n\r\n", max(self._searched - 3, 0))
        if end < 0:
            self._searched = len(data)
            if len(data) > self.limits.head:
                return Ready.HAND_OVER  # gunicorn answers 431
            line_end = self.limits.request_line + 4  # one empty line may come first
            if len(data) > line_end and data.find(b"\r\n", 2, line_end) < 0:
                return Ready.HAND_OVER  # gunicorn answers 414
            return Ready.MORE
        self.head_end = end + 4
        framing = _framing(bytes(data[:end]))
        if framing is None:
            return Ready.HAND_OVER
        length, chunked, self.expects_continue = framing
        if chunked:
            self.chunk_at = self.head_end
            ready = self._scan_chunks()
        elif length > self.limits.body:
            return Ready.HAND_OVER  # the application answers 413, unread
        else:
            self.body_end = self.head_end + length
            ready = Ready.COMPLETE if len(data) >= self.body_end else Ready.MORE
        self.continue_due = self.expects_continue and ready is Ready.MORE
        return ready

    def _scan_chunks(self) -> Ready:
        data, at = self.data, self.chunk_at
        while True:
            eol = data.find(b"\r\n", at)
            if eol < 0:
                return Ready.HAND_OVER if len(data) - at > MAX_CHUNK_LINE else Ready.MORE
            size_field = bytes(data[at:eol]).split(b";", 1)[0]
            if not _HEX.fullmatch(size_field):
                return Ready.HAND_OVER  # gunicorn answers 400
            size = int(size_field, 16)
            if size == 0:  # the last chunk; then trailer fields up to an empty line
                if data.find(b"\r\n\r\n", eol) >= 0:
                    return Ready.COMPLETE
                return Ready.HAND_OVER if len(data) - eol > self.limits.head else Ready.MORE
            if self.chunked_bytes + size > self.limits.body:
                return Ready.HAND_OVER  # the application answers 413
            end = eol + 2 + size
            if len(data) < end + 2:
                return Ready.MORE
            if data[end:end + 2] != b"\r\n":
                return Ready.HAND_OVER
            self.chunked_bytes += size
            at = self.chunk_at = end + 2


def _framing(head: bytes) -> tuple[int, bool, bool] | None:
    """Content length, whether chunked, whether "Expect: 100-continue" applies; None when the
    framing is not plain (several lengths, a length and a coding, a coding other than chunked,
    a length that is not digits): gunicorn refuses those or has to read on."""
    lines = head.split(b"\r\n")
    if lines[0] == b"" and len(lines) > 1:
        del lines[0]
    length: int | None = None
    coding: bytes | None = None
    expect = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.lower()
        if name == b"content-length":
            value = value.strip(b" \t")
            if length is not None or not value.isdigit():
                return None
            length = int(value)
        elif name == b"transfer-encoding":
            if coding is not None:
                return None
            coding = value.strip(b" \t").lower()
        elif name == b"expect":
            expect = value.strip(b" \t").lower() == b"100-continue"
    if coding is not None and (coding != b"chunked" or length is not None):
        return None
    return length or 0, coding is not None, expect and lines[0].endswith(b" HTTP/1.1")
