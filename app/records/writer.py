"""The record writer: drains the scan-record stream into the SQL audit log in batches.

One step (``step``):

1. read up to ``batch`` records per stream for the consumer group ``audit-writer`` (XREADGROUP,
   waiting up to ``block_ms`` when the streams are empty; whatever arrived while the previous
   batch was being written comes in one read, so batches grow with the load);
2. append them in ONE SQL transaction (``app.audit.log.append_batch``: the chain head is locked
   once, the batch takes one contiguous ``seq`` range), skipping record ids already stored;
3. only after the commit: XACK and XDEL them (one MULTI), so the stream holds exactly the records
   not yet known to be in SQL.

In the batch's transaction the writer also closes one leaf of the audit Merkle tree over every
row not yet in a leaf (the rows of the batches since the last leaf, plus admin/issuer/disclosure
entries appended one by one: ``app.audit.leaves``) — with every batch, or, given
``leaf_seconds``, only when that long has passed since the last leaf or a head is due — and, at
most every ``head_seconds`` (0: with every leaf), signs a tree head with the key ring's current
key (``app.audit.tree_store``). A leaf costs a fixed ~3 ms of SQL and hashing, most of the
writer's CPU at small batches (~100 records per 100 ms block at 1,000 scans/s); ``python -m
app.records`` closes one at most every ``head_seconds``, which bounds sealing as before: a row is
provable only under a signed head, and a batch that finds a head due closes a leaf first. When
idle it seals every ``head_seconds``: a leaf for entries appended outside batches, and a head
over new leaves. ``drain`` seals at the end, so the newest head covers every row. A writer
without a key ring (``keys=None``) appends leaves only; the next writer with keys signs a head
over all of them.

Streams. Scripts append each record to the stream of the rider's shard, ``cc:scans:{rNN}``
(``app.store.slots``: one per shard, ``SHARDS`` of them, in the slot of the scan's other keys), so
the writer drains all of them, plus ``cc:scans`` itself (records of a version before shards, during
a rolling upgrade): ``app.records.stream.record_streams``. On a single Redis that is one
XREADGROUP over every stream (blocking, as before). A Redis Cluster cannot read keys of several
slots in one command, so the streams are grouped by the master owning them and read without
blocking, one pipeline per master (one round trip each); when all were empty the writer sleeps
``block_ms`` before the next look (an idle writer sends ``SHARDS`` + 1 cheap reads per
``block_ms``; records wait at most that long). Records of different shards have no order between
them; within a batch the writer appends them in scan-time order (``at``), so the audit log's
``seq`` follows scan time except across batches, by at most the writer's lag.

Tap uploads. Given ``taps`` (``app.records.taps.TapUploads``; ``python -m app.records`` always
does), the same blocking read also waits on ``cc:taps``, and each step writes the uploads waiting
after the scan batch, in their own transaction (group commit), answering each upload's worker
after the commit. ``scans=False`` makes a writer of tap uploads only (the tests' writer).

Crash cases. Killed between commit and XACK: the records stay pending in the group; the next
writer reclaims them (XAUTOCLAIM, at start and then every ``reclaim_seconds`` for entries idle that
long) and finds their ids stored: acknowledged, not doubled. Redis restarted from its AOF: the
group and its pending list come back with the stream; an acknowledgement lost with the last
second is redelivered and skipped the same way. A record that cannot be parsed (never written by
this code) is logged, counted and acknowledged, so it cannot block the stream.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable

import redis
from prometheus_client import Counter

from app.audit import log as audit
from app.audit import tree_store
from app.audit.scans import where
from app.db import Database
from app.records.complete import Completions
from app.records.pending import Entry, Pending
from app.records.stream import DEFAULT_STREAM, GROUP, ScanRecord, record_streams
from app.signing.keyfiles import KeyFileError
from app.signing.keyring import KeyRingCache
from app.store.redis import is_cluster
from app.store.slots import slot_of

if TYPE_CHECKING:
    from app.records.taps import TapUploads

log = logging.getLogger("citycode.records")

WRITTEN = Counter("citycode_records_written_total", "Scan records appended to the audit log")
DUPLICATES = Counter("citycode_records_duplicate_total", "Scan records drained again, already stored")
UNREADABLE = Counter("citycode_records_unreadable_total", "Stream entries that were not scan records")
LEAVES = Counter("citycode_audit_leaves_total", "Leaves appended to the audit Merkle tree")
HEADS = Counter("citycode_audit_heads_signed_total", "Audit tree heads signed")



def audit_entry(record: ScanRecord, completions: Completions) -> dict[str, Any]:
    """The ``scan`` audit entry of a record: one per scan, accepts and denies."""
    rec = record.rec
    details: dict[str, Any] = {"decision": "accept" if record.accepted else "deny",
                               **completions.data(record)}
    if rec.get("d"):
        details["direction"] = rec["d"]
    if rec.get("jti") is not None:
        details["jti"] = rec["jti"]  # ties the entry to tap records; an id, not personal
    return {"record_id": record.record_id, "at": datetime.fromtimestamp(float(rec["at"]), timezone.utc),
            "actor_kind": "terminal", "actor_id": str(rec["t"]), "action": "scan",
            "subject": rec.get("sub"), "site": where(str(rec["k"]), rec.get("s") or {}),
            "reason": record.reason, "details": details}


class RecordWriter:
    """Drains one stream. ``consumer`` names this writer in the group (stable across restarts)."""

    def __init__(self, client: "redis.Redis[bytes]", db: Database, *, stream: str = DEFAULT_STREAM,
                 batch: int = 1000, block_ms: int = 100, consumer: str | None = None,
                 reclaim_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic,
                 completions: Completions | None = None, keys: KeyRingCache | None = None,
                 head_seconds: float = 1.0, wall: Callable[[], float] = time.time,
                 leaf_seconds: float = 0.0, taps: "TapUploads | None" = None,
                 scans: bool = True) -> None:
        self.client = client
        self.db = db
        self.stream = stream
        self.batch = batch
        self.block_ms = block_ms
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}"
        self.reclaim_seconds = reclaim_seconds
        self.clock = clock
        self.completions = completions or Completions()
        self.keys = keys
        self.head_seconds = head_seconds
        self.wall = wall
        self.leaf_seconds = leaf_seconds
        self.taps = taps  # tap uploads (``cc:taps``), read in the same blocking call
        self.scans = scans or taps is None  # False: tap uploads only (a writer of its own for them)
        # at start: whatever is pending was left by a writer that died
        self.streams = record_streams(stream)
        self.pendings = [Pending(client, name, GROUP, idle_seconds=reclaim_seconds,
                                 ensure_group=self.ensure_group, what="records", clock=clock)
                         for name in self.streams]
        self.cluster = is_cluster(client)
        self._carried: list[tuple[str, Entry]] = []  # read, not yet written (over ``batch``)
        self._next_head = 0.0  # wall clock: the next batch may sign a head from then on
        self._next_leaf = 0.0  # wall clock: the next batch closes a leaf from then on
        self._next_seal = 0.0  # self.clock: when an idle writer next looks for unsealed entries

    def ensure_group(self) -> None:
        """Create the consumer group (and the stream) unless they exist; reading from the start,
        so records appended before the first writer ran are drained too."""
        try:
            if self.scans:
                pipe = self.client.pipeline(transaction=False)
                for name in self.streams:
                    pipe.xgroup_create(name, GROUP, id="0", mkstream=True)
                for result in pipe.execute(raise_on_error=False):
                    if isinstance(result, Exception) and "BUSYGROUP" not in str(result):
                        raise result
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        if self.taps is not None:
            self.taps.ensure_group()

    def step(self, block: bool = True) -> int:
        """Write one batch (reclaimed pending entries first, when due) and, with ``taps``, the
        tap uploads waiting (after the scans: an online scan drained first is seen by the
        uploads' anomaly and supersession rules); the number of entries taken off the streams
        (0 when they were empty)."""
        entries = self._take_carried()
        uploads: list[Entry] = []
        if not entries:
            entries = self._reclaim() if self.scans else {}
            uploads = self.taps.reclaim(self.consumer) if self.taps is not None else []
            if not entries and not uploads:
                entries, uploads = self._read_all(block)
            entries = self._keep_batch(entries)
        if entries:
            self.write_streams(entries)
        if uploads:
            assert self.taps is not None
            self.taps.write(uploads)
        return sum(len(e) for e in entries.values()) + len(uploads)

    def write(self, entries: list[Entry], stream: str | None = None) -> None:
        """Append ``entries`` of ``stream`` (default: ``self.stream``) in one transaction, then
        acknowledge and delete them."""
        self.write_streams({stream or self.stream: entries})

    def write_streams(self, batch: dict[str, list[Entry]]) -> None:
        """Append the entries of every stream in ``batch`` in one transaction, then acknowledge
        and delete them (per stream: one MULTI on a single Redis, one per master in a cluster)."""
        records = []
        for entry_id, fields in (entry for entries in batch.values() for entry in entries):
            try:
                records.append(ScanRecord.parse(entry_id, fields))
            except ValueError:
                UNREADABLE.inc()
                log.error("unreadable stream entry acknowledged", extra={"entry": str(entry_id)})
        if len(batch) > 1:  # streams of several shards: in scan-time order within the batch
            records.sort(key=_scan_time)
        rows = [audit_entry(record, self.completions) for record in records]
        if rows:
            with self.db.session() as session:
                span = audit.append_batch(session, rows)
                if self._leaf_due():
                    self._close(session, span[1] if span is not None else tree_store.lock(session))
            stored = 0 if span is None else span[1] - span[0] + 1
            WRITTEN.inc(stored)
            if stored < len(rows):
                DUPLICATES.inc(len(rows) - stored)
        pipe = self.client.pipeline(transaction=not self.cluster)
        for name, entries in batch.items():
            if entries:
                ids = [entry_id for entry_id, _ in entries]
                pipe.xack(name, GROUP, *ids)
                pipe.xdel(name, *ids)
        pipe.execute()

    def _leaf_due(self) -> bool:
        """Whether this batch closes a leaf: ``leaf_seconds`` since the last, or a head due."""
        now = self.wall()
        return now >= self._next_leaf or (self.keys is not None and now >= self._next_head)

    def _close(self, session: Any, last_seq: int, *, force: bool = False) -> None:
        """In the caller's transaction (audit head locked): a leaf up to ``last_seq``, and a
        signed head when one is due (or ``force``) and there are keys."""
        if tree_store.close_leaf(session, last_seq) is not None:
            LEAVES.inc()
        now = self.wall()
        self._next_leaf = now + self.leaf_seconds
        if self.keys is not None and (force or now >= self._next_head):
            try:
                ring = self.keys.get()
            except KeyFileError as exc:  # no usable key yet: leaves still grow, a later head covers them
                log.warning("record writer: no key to sign a tree head", extra={"error": str(exc)})
                return
            if tree_store.sign_head(session, ring, now=now) is not None:
                HEADS.inc()
                self._next_head = now + self.head_seconds

    def seal(self, *, force: bool = False) -> None:
        """Close a leaf over entries appended outside batches and sign a head over new leaves
        (``force``: whether or not one is due). Takes the audit head's lock only when there is
        something to seal."""
        self._next_seal = self.clock() + max(self.head_seconds, 0.1)
        with self.db.session() as session:
            if not tree_store.unsealed(session, signing=self.keys is not None):
                return
            self._close(session, tree_store.lock(session), force=force)

    def drain(self, max_steps: int = 10_000) -> int:
        """Write until the stream has nothing pending or new, then seal (a test and shutdown
        hook): the newest head then covers every entry."""
        self.ensure_group()
        self._restart()
        total = 0
        for _ in range(max_steps):
            taken = self.step(block=False)
            if not taken:
                break
            total += taken
        if self.scans:
            self.seal(force=True)
        return total

    def run(self, stopping: Callable[[], bool]) -> None:
        """Write batches until ``stopping()``; Redis or database trouble is logged and retried."""
        delay = 0.1
        while not stopping():
            try:
                self.ensure_group()
                while not stopping():
                    self.step()
                    if self.scans and self.clock() >= self._next_seal:
                        self.seal()
                    delay = 0.1
            except (redis.RedisError, OSError) as exc:
                log.warning("record writer: redis unavailable", extra={"error": type(exc).__name__})
            except Exception:  # the database, most likely; the records wait in the stream
                log.exception("record writer: batch not written; retrying")
            # What this writer had read stays pending (perhaps committed, not acknowledged): take
            # it back at once. Safe even if another writer held it: record ids are stored once.
            self._restart()
            if stopping():
                return
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _restart(self) -> None:
        self._carried = []  # pending in Redis: reclaimed at once
        for pending in self.pendings:
            pending.restart()
        if self.taps is not None:
            self.taps.restart()

    # -- reading --------------------------------------------------------------------------------
    def _read_all(self, block: bool) -> tuple[dict[str, list[Entry]], list[Entry]]:
        """New scan records by stream (unless ``scans`` is off) and new tap uploads."""
        names = self.streams if self.scans else []
        if self.cluster:
            return self._read_cluster(names, block)
        streams = {name: ">" for name in names}
        if self.taps is not None:
            streams[self.taps.stream] = ">"
        try:
            reply = self.client.xreadgroup(GROUP, self.consumer, streams, count=self.batch,
                                           block=self.block_ms if block else None)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ensure_group()  # Redis lost the group (restarted without its data): start over
            return {}, []
        return self._split(reply)

    def _read_cluster(self, names: list[str], block: bool) -> tuple[dict[str, list[Entry]], list[Entry]]:
        """Every stream read without blocking, one pipeline per master; then, if all were empty
        and ``block``, a pause of ``block_ms``."""
        cluster = self.client
        by_node: dict[str, tuple[Any, list[str]]] = {}
        for name in [*names, *([self.taps.stream] if self.taps is not None else [])]:
            node = cluster.nodes_manager.get_node_from_slot(slot_of(name))
            by_node.setdefault(node.name, (node, []))[1].append(name)
        reply: list[Any] = []
        lost = False
        for node, streams in by_node.values():
            pipe = cluster.get_redis_connection(node).pipeline(transaction=False)
            for name in streams:
                pipe.xreadgroup(GROUP, self.consumer, {name: ">"}, count=self.batch)
            for result in pipe.execute(raise_on_error=False):
                if isinstance(result, redis.ResponseError) and "NOGROUP" in str(result):
                    lost = True
                elif isinstance(result, Exception):
                    cluster.nodes_manager.initialize()  # MOVED, a master gone: read the table again
                    raise result
                else:
                    reply.extend(result or ())
        if lost:
            self.ensure_group()
        scans, uploads = self._split(reply)
        if block and not scans and not uploads:
            time.sleep(self.block_ms / 1000)
        return scans, uploads

    def _split(self, reply: Iterable[Any] | None) -> tuple[dict[str, list[Entry]], list[Entry]]:
        scans: dict[str, list[Entry]] = {}
        uploads: list[Entry] = []
        taps = self.taps.stream if self.taps is not None else None
        for stream, entries in reply or ():
            name = stream.decode() if isinstance(stream, bytes) else stream
            live = [(entry_id, fields) for entry_id, fields in entries if fields is not None]
            if name == taps:
                uploads.extend(live)
            elif live:
                scans.setdefault(name, []).extend(live)
        return scans, uploads

    def _keep_batch(self, entries: dict[str, list[Entry]]) -> dict[str, list[Entry]]:
        """At most ``batch`` records of ``entries`` (a read returns up to ``batch`` per stream);
        the rest is carried to the next steps (delivered to this writer: a crash leaves it
        pending, reclaimed like any)."""
        if sum(len(batch) for batch in entries.values()) <= self.batch:
            return entries
        self._carried = [(name, entry) for name, batch in entries.items() for entry in batch]
        return self._take_carried()

    def _take_carried(self) -> dict[str, list[Entry]]:
        taken: dict[str, list[Entry]] = {}
        carried, self._carried = self._carried[:self.batch], self._carried[self.batch:]
        for name, entry in carried:
            taken.setdefault(name, []).append(entry)
        return taken

    def _reclaim(self) -> dict[str, list[Entry]]:
        taken: dict[str, list[Entry]] = {}
        room = self.batch
        for pending in self.pendings:
            if room <= 0:
                break
            entries = pending.take(self.consumer, room)
            if entries:
                taken[pending.stream] = entries
                room -= len(entries)
        return taken


def _scan_time(record: ScanRecord) -> float:
    try:
        return float(record.rec["at"])
    except (KeyError, TypeError, ValueError):
        return 0.0
