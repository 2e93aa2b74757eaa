"""The scan-record stream: its keys, the Lua prelude every recording script starts with, and the
record's encoding on both sides (the worker's draft, the writer's parse).

See ``app.records`` for the key design and the field list.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Mapping, NamedTuple

from app.codes.decision import CodeClaims
from app.scenes.base import ScanContext
from app.store.slots import BRACED, SHARDS

DEFAULT_STREAM = "cc:scans"
GENERATION_KEY = "cc:trust:generation"  # announced by app.verification.trust_feed
GROUP = "audit-writer"


def shard_stream(base: str, shard: int) -> str:
    """The record stream of a rider shard: ``<base>:{rNN}`` (``app.store.slots``)."""
    return f"{base}:{BRACED[shard]}"


def record_streams(base: str) -> list[str]:
    """Every stream the record writer drains: the shards' streams, then ``base`` itself (records
    appended by a version before rider shards, drained during a rolling upgrade)."""
    return [*(shard_stream(base, shard) for shard in range(SHARDS)), base]


def generation_key(shard: int) -> str:
    """The shard's copy of the trust generation (``GENERATION_KEY``), checked in-slot by scripts."""
    return f"{GENERATION_KEY}:{BRACED[shard]}"


GENERATION_KEYS: tuple[str, ...] = tuple(generation_key(shard) for shard in range(SHARDS))
RECORD_VERSION = 1

# Every recording script starts with this. KEYS[1] the shard's stream, KEYS[2] the shard's trust
# generation key (both in the rider shard's slot, as the scene's keys);
# ARGV[1] the generation the worker last saw ('-': do not compare), ARGV[2] a generation to set
# when none is stored (Redis lost it), ARGV[3] the record drafted by the worker. A scene's own
# keys start at KEYS[3], its arguments at ARGV[4]. ``record(reason, field, value, ...)`` appends
# the record with the decided reason and any outputs that complete its scene data.
PRELUDE = """
local gen = redis.call('GET', KEYS[2])
if not gen then
  redis.call('SET', KEYS[2], ARGV[2])
  gen = ARGV[2]
end
if ARGV[1] ~= '-' and gen ~= ARGV[1] then return {'stale', gen} end
local function record(reason, ...)
  redis.call('XADD', KEYS[1], '*', 'rec', ARGV[3], 'r', reason, ...)
end
"""

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def new_record_id() -> str:
    """32 hex digits (the column's width): the wall clock in milliseconds (48 bits), then 80
    random bits. Unique without coordination (80 random bits within one millisecond), so a record
    keeps its id across retries of the writer and across a Redis restart (stream entry ids may be
    issued again then). Time first, so the ids a batch inserts into the unique index
    ``ux_audit_log_record_id`` (the writer's idempotency key) sit together at its end instead of
    each on a random page: a batch dirties a few index pages, not one per record. (Ids of 24
    random hex digits, drafted before this format, are stored alike.)"""
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


def draft(ctx: ScanContext, claims: CodeClaims | None, *, acc: Mapping[str, Any] | None = None,
          complete: Mapping[str, Any] | None = None) -> str:
    """The ``rec`` field: what the worker knows about a scan before its script decides."""
    rec: dict[str, Any] = {"v": RECORD_VERSION, "id": new_record_id(), "t": ctx.terminal_id,
                           "k": ctx.kind, "s": dict(ctx.site), "at": ctx.now}
    if ctx.direction:
        rec["d"] = ctx.direction
    if claims is not None:
        rec["sub"], rec["jti"], rec["iss"] = claims.sub, claims.jti, claims.iss
    if acc:
        rec["acc"] = acc
    if complete:
        rec["c"] = complete
    return _dumps(rec)  # type: ignore[no-any-return]


class ScanRecord(NamedTuple):
    """One drained record: the worker's draft, the script's reason and outputs. (A named tuple,
    not a frozen dataclass: the writer makes one per record, and this is four times cheaper.)"""

    entry_id: str  # the stream entry id (for XACK); not the identity of the record
    rec: Mapping[str, Any]
    reason: str
    outputs: Mapping[str, str]

    @property
    def record_id(self) -> str:
        return str(self.rec["id"])

    @property
    def accepted(self) -> bool:
        return self.reason == "ok"

    @classmethod
    def parse(cls, entry_id: bytes | str, fields: Mapping[bytes, bytes] | Mapping[str, str]) -> ScanRecord:
        """A stream entry as XREADGROUP returns it (bytes, or text from a decoding client).
        Raises ``ValueError`` for an unreadable one (``UnicodeDecodeError`` is one)."""
        try:
            text = {k.decode(): v.decode() for k, v in fields.items()}  # type: ignore[union-attr]
        except AttributeError:  # text already
            text = {_text(k): _text(v) for k, v in fields.items()}
        try:
            rec = _loads(text.pop("rec"))
            reason = text.pop("r")
        except (KeyError, json.JSONDecodeError) as exc:
            raise ValueError(f"unreadable scan record {_text(entry_id)}") from exc
        if not isinstance(rec, dict) or "id" not in rec or "t" not in rec:
            raise ValueError(f"unreadable scan record {_text(entry_id)}")
        return cls(_text(entry_id), rec, reason, text)


_scan_once = json.JSONDecoder().scan_once


def _loads(text: str) -> Any:
    """``json.loads(text)``, skipping its whitespace handling when the text is one value with
    none around it, as ``draft`` writes it (otherwise, and for any error, ``json.loads`` itself)."""
    try:
        value, end = _scan_once(text, 0)
    except StopIteration:
        end = -1
    return value if end == len(text) else json.loads(text)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
