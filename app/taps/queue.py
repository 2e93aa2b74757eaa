"""Tap uploads through the record writer: the Redis stream of uploads and the reply to each.

``POST /v1/taps`` validates a batch in the worker, then ``UploadQueue.submit`` appends it as ONE
entry to the stream ``cc:taps`` and waits (``BLPOP``, at most ``timeout`` seconds) on the
upload's reply key. The record writer (``python -m app.records``, ``app.records.taps``) drains
many pending uploads at once into ONE transaction (``TapDesk.ingest``: store, supersede, detect,
settle), and only after it committed pushes each upload's answer to its reply key, then
acknowledges (``XACK``) and deletes (``XDEL``) the entries. One writer serializes every tap write,
so uploads never contend for the database's write lock, and each commit is shared by all the
uploads that arrived while the previous one was written (group commit).

Keys: ``cc:taps`` (stream; consumer group ``audit-writer``, as ``cc:scans``), ``cc:taps:reply:<upload id>`` (a list
holding the answer JSON, expiring ``REPLY_TTL_S`` after the writer pushed it). Every command and
script touches one key, so in a Redis Cluster no key needs a hash tag (one stream: uploads are a
few hundred per second at most, far below one master's capacity).

Entry fields: ``u`` upload id (96 random bits, hex), ``t`` the terminal ``[id, kind, site]``,
``at`` the time the worker received the upload (epoch seconds; the time the rules compare
``received_at`` with), ``r`` the records as JSON rows (``encode_rows``; values already checked and
digested by the worker, so the writer only decodes).

Why waiting is safe: storage is idempotent by ``(terminal, seq)``. When no answer comes in time
(writer down or behind, Redis gone) the view answers 503 with ``Retry-After``; the entry, if it
was appended, is still written later, and the reader's retry then finds its records stored
(``duplicates``). Nothing is lost (the reader keeps a batch until it gets a 200) and nothing is
doubled (each ``(terminal, seq)`` is stored once however often it arrives).
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Mapping, Sequence

import redis

from app.errors import Unavailable
from app.store.redis import like
from app.registry.terminals import TerminalInfo
from app.taps.record import TapRecord, from_micros, micros

log = logging.getLogger(__name__)

STREAM = "cc:taps"
GROUP = "audit-writer"  # the record writer's group, the same name as on cc:scans: one XREADGROUP
# call (one group name for all its streams) waits on both streams at once
REPLY_PREFIX = "cc:taps:reply:"
REPLY_TTL_S = 120  # an answer nobody took (the view gave up) expires
TIMEOUT_S = 5.0  # how long a view waits for its answer (the reader's own timeout is 10 s)
MAX_BACKLOG = 2000  # uploads waiting in the stream beyond which new ones are refused (503)
PER_UPLOAD_S = 0.03  # rough writer time per waiting upload, for Retry-After

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

# KEYS[1] the stream. ARGV: max backlog, then field/value pairs. The entry id, or the backlog
# when it is full (nothing appended).
_APPEND = """
local waiting = redis.call('XLEN', KEYS[1])
if waiting >= tonumber(ARGV[1]) then return waiting end
return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
"""


class NotAnswered(Unavailable):
    """The upload's answer did not come in time (the writer is down or behind, or Redis is
    unreachable). Safe to retry after ``retry_after`` seconds: a retry stores nothing twice."""

    title = "Upload not confirmed yet"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.retry_after = retry_after


def encode_rows(records: Sequence[TapRecord]) -> str:
    """The records as JSON rows: every field in ``TapRecord``'s order (``scanned_at`` as epoch
    microseconds), then ``result_json`` and the digest."""
    return _dumps([(r.seq, r.jti, r.sub, r.iss, micros(r.scanned_at), r.decision, r.reason,  # type: ignore[no-any-return]
                    r.direction, r.mode, r.ent, r.trust_version, r.trust_age_s, r.clock_offset_s,
                    r.location, r.stale, r.request_id, r.result, r.result_json, r.digest)
                   for r in records])


def decode_rows(text: str | bytes) -> list[TapRecord]:
    """``encode_rows`` reversed, with the values the worker derived (digest, ``result_json``)
    and the server time filled in."""
    out: list[TapRecord] = []
    make, moment = TapRecord.of, from_micros
    for row in json.loads(text):
        at = moment(row[4])
        ent, location, offset = row[9], row[13], row[12]
        row[4] = at
        if ent is not None:
            row[9] = tuple(ent)
        if location is not None:
            row[13] = (location[0], location[1])
        out.append(make(row, server_at=at - timedelta(seconds=offset) if offset else at,
                        result_json=row[17], digest=row[18]))
    return out


@dataclass(frozen=True)
class Job:
    """One upload read from the stream."""

    entry_id: bytes
    upload_id: str
    terminal: TerminalInfo
    received_at: float
    records: list[TapRecord]

    @property
    def reply_key(self) -> str:
        return REPLY_PREFIX + self.upload_id

    @classmethod
    def parse(cls, entry_id: bytes, fields: Mapping[bytes, bytes]) -> "Job":
        """A stream entry as XREADGROUP returns it. Raises ``ValueError`` for an unreadable one."""
        try:
            terminal_id, kind, site = json.loads(fields[b"t"])
            return cls(entry_id, fields[b"u"].decode(), TerminalInfo(terminal_id, kind, site),
                       float(fields[b"at"]), decode_rows(fields[b"r"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"unreadable tap upload entry {entry_id!r}") from exc


def encode_job(upload_id: str, terminal: TerminalInfo, records: Sequence[TapRecord],
               received_at: float) -> dict[str, str]:
    return {"u": upload_id, "t": _dumps([terminal.id, terminal.kind, dict(terminal.site)]),
            "at": repr(received_at), "r": encode_rows(records)}


class UploadQueue:
    """The workers' side: append an upload, wait for its answer."""

    def __init__(self, client: "redis.Redis[bytes]", *, stream: str = STREAM,
                 timeout: float = TIMEOUT_S, max_backlog: int = MAX_BACKLOG) -> None:
        # Its own connections: a BLPOP of ``timeout`` seconds must not hit the workers' short
        # socket timeout (the shared client's), nor hold one of its pooled connections.
        self.client: "redis.Redis[bytes]" = like(client, socket_timeout=timeout + 5)
        self.stream = stream
        self.timeout = timeout
        self.max_backlog = max_backlog
        self._append = self.client.register_script(_APPEND)

    def submit(self, terminal: TerminalInfo, records: Sequence[TapRecord], now: float
               ) -> dict[str, Any]:
        """Append the upload and return its answer once the writer committed it. Raises
        ``NotAnswered`` (nothing lost: retry) when the answer does not come within ``timeout``."""
        upload_id = os.urandom(12).hex()
        fields = encode_job(upload_id, terminal, records, now)
        try:
            added = self._append(keys=[self.stream], args=[
                self.max_backlog, *(item for pair in fields.items() for item in pair)])
            if isinstance(added, int):
                raise NotAnswered(f"{added} tap uploads are waiting to be written; not taken, "
                                  "send it again later.", self._retry_after(added))
            reply = self.client.blpop([REPLY_PREFIX + upload_id], timeout=self.timeout)
        except redis.RedisError as exc:
            log.warning("tap upload not confirmed: redis unavailable",
                        extra={"error": type(exc).__name__})
            raise NotAnswered("The upload could not be confirmed (state store unavailable); "
                              "send it again: nothing is stored twice.", 1) from None
        if reply is None:
            raise NotAnswered(f"The upload was not confirmed within {self.timeout:g} s; send it "
                              "again: nothing is stored twice.", self._retry_after(None))
        answer = json.loads(reply[1])
        if "error" in answer:
            raise NotAnswered("The upload could not be written; send it again later: nothing is "
                              "stored twice.", 5)
        return answer  # type: ignore[no-any-return]

    def _retry_after(self, waiting: int | None) -> int:
        if waiting is None:
            try:
                waiting = int(self.client.xlen(self.stream))
            except redis.RedisError:
                return 1
        return max(1, min(60, round(waiting * PER_UPLOAD_S)))

    def close(self) -> None:
        self.client.close()
