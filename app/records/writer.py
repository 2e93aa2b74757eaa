"""The record writer: drains the scan-record stream into the SQL audit log in batches.

One step (``step``):

1. read up to ``batch`` records per stream for the consumer group ``audit-writer`` (XREADGROUP,
   waiting up to ``block_ms`` when the streams are empty; whatever arrived while the previous
   batch was being written comes in one read, so batches grow with the load; more than
   ``batch`` is carried to the next steps, oldest first across the streams);
2. append them in ONE SQL transaction (``app.audit.log.append_encoded``: the chain head is
   locked once, the batch takes one contiguous ``seq`` range), skipping record ids already stored;
3. only after the commit: XACK and XDEL them (one MULTI; one script call when they are of
   several streams), so the stream holds exactly the records not yet known to be in SQL.

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

Cost (``loadtest.bench_records writer``; BENCHMARKS.md). Per record the writer parses the
entry's JSON once (``ScanRecord.parse``), builds the row already encoded (``scan_entry``: the
site's canonical JSON cached per terminal, the details encoded by CPython's C encoder built once)
and ``app.audit.log.append_encoded`` hashes it into the chain and binds it with the driver's own
``executemany`` (no SQLAlchemy statement per batch row); a leaf is hashed from the entry hashes
of the batches since the last one, kept in memory (rows appended by others are read back). The
cyclic garbage collector is paused during a step (a batch is ~10 containers per record, freed by
reference counting), and the served process freezes what it loaded at start (``python -m
app.records``). SQLite's page cache for the writer's connection is ``sqlite_cache_kib``.

Durability. On SQLite each batch's transaction runs with ``synchronous=FULL`` (``tune_sqlite``):
its COMMIT fsyncs the WAL before the XACK/XDEL, so an acknowledged record survives an operating
system crash or a power loss as well as a process crash (the service's default, WAL with
``synchronous=NORMAL``, survives only the crash of a process: the WAL is synced at checkpoints,
and the writer deletes what it acknowledged from Redis). One fsync per batch, not per record.
PostgreSQL commits durably by default (``synchronous_commit``).

Crash cases. Killed between commit and XACK: the records stay pending in the group; the next
writer reclaims them (XAUTOCLAIM, at start and then every ``reclaim_seconds`` for entries idle that
long) and finds their ids stored: acknowledged, not doubled. Redis restarted from its AOF: the
group and its pending list come back with the stream; an acknowledgement lost with the last
second is redelivered and skipped the same way. A record that cannot be parsed (never written by
this code) is logged, counted and acknowledged, so it cannot block the stream.
"""
from __future__ import annotations

import gc
import logging
import os
import socket
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping

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
UNLEAFED_LIMIT = 200_000  # entry hashes kept in memory for the next leaf, at most

# XACK then XDEL the ids of each stream. KEYS: the streams; ARGV[1] the group, then per stream
# the number of its ids and the ids. In commands of at most 1,000 ids (Lua's unpack has a limit
# near 8,000). Redis replicates and logs a script's effects: the commands.
_ACKNOWLEDGE = """
local at = 2
for _, key in ipairs(KEYS) do
  local last = at + tonumber(ARGV[at])
  local first = at + 1
  while first <= last do
    local upto = math.min(first + 999, last)
    redis.call('XACK', key, ARGV[1], unpack(ARGV, first, upto))
    redis.call('XDEL', key, unpack(ARGV, first, upto))
    first = upto + 1
  end
  at = last + 1
end
return at - 1
"""

_UTC = timezone.utc


def _details(record: ScanRecord, completions: Completions) -> dict[str, Any]:
    """The ``details`` of a record's ``scan`` entry: the decision and what the terminal was told."""
    rec = record.rec
    details: dict[str, Any] = ({"decision": "accept", **completions.data(record)} if record.reason == "ok"
                               else {"decision": "deny"})
    direction, jti = rec.get("d"), rec.get("jti")
    if direction:
        details["direction"] = direction
    if jti is not None:
        details["jti"] = jti  # ties the entry to tap records; an id, not personal
    return details


def audit_entry(record: ScanRecord, completions: Completions) -> dict[str, Any]:
    """The ``scan`` audit entry of a record: one per scan, accepts and denies."""
    rec = record.rec
    return {"record_id": str(rec["id"]), "at": datetime.fromtimestamp(float(rec["at"]), _UTC),
            "actor_kind": "terminal", "actor_id": str(rec["t"]), "action": "scan",
            "subject": rec.get("sub"), "site": where(str(rec["k"]), rec.get("s") or {}),
            "reason": record.reason, "details": _details(record, completions)}


class Sites:
    """The ``site`` column's canonical JSON per (kind, site) a terminal sends, built once: a city
    has some ten thousand terminals, each sending the same site with every scan. Only sites of
    text values are cached (1, 1.0 and true are equal keys with different encodings)."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._cache: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}

    def json(self, kind: str, site: Mapping[str, Any]) -> str:
        items = tuple(site.items())
        for name, value in items:
            if type(value) is not str or type(name) is not str:
                return audit.canonical(where(kind, site))
        key = (kind, items)
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= self.limit:
                self._cache.clear()
            found = self._cache[key] = audit.canonical(where(kind, site))
        return found


def scan_entry(record: ScanRecord, completions: Completions, sites: Sites) -> audit.Encoded:
    """``audit_entry`` encoded for ``audit.append_encoded``, as the writer appends it: the same
    row, built without the intermediate mapping (a test holds the two to the same rows)."""
    rec = record.rec
    moment, stamp = audit.moment_of(datetime.fromtimestamp(float(rec["at"]), _UTC))
    site = sites.json(str(rec["k"]), rec.get("s") or {})
    return audit.Encoded(str(rec["id"]), moment, stamp, "terminal", str(rec["t"]), "scan", rec.get("sub"),
                         site, None, record.reason, audit.canonical(_details(record, completions)))


def tune_sqlite(connection: Any, cache_kib: int) -> None:
    """The writer's settings on a DB-API SQLite connection, outside any transaction:
    ``synchronous=FULL`` — each batch's COMMIT fsyncs the WAL, so a batch acknowledged (and deleted)
    in Redis survives a power loss too (WAL with NORMAL survives a process crash only: the WAL is
    synced at checkpoints); one fsync per batch, not per record — and a page cache of
    ``cache_kib`` KiB (SQLite's default is 2 MiB), so the indexes' pages stay in memory."""
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute(f"PRAGMA cache_size=-{int(cache_kib)}")


class RecordWriter:
    """Drains one stream. ``consumer`` names this writer in the group (stable across restarts)."""

    def __init__(self, client: "redis.Redis[bytes]", db: Database, *, stream: str = DEFAULT_STREAM,
                 batch: int = 1000, block_ms: int = 100, consumer: str | None = None,
                 reclaim_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic,
                 completions: Completions | None = None, keys: KeyRingCache | None = None,
                 head_seconds: float = 1.0, wall: Callable[[], float] = time.time,
                 leaf_seconds: float = 0.0, taps: "TapUploads | None" = None,
                 scans: bool = True, sqlite_cache_kib: int = 65536, linger_ms: int = 0) -> None:
        self.client = client
        self.db = db
        self.stream = stream
        self.batch = batch
        self.block_ms = block_ms
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}"
        self.reclaim_seconds = reclaim_seconds
        self.clock = clock
        self.completions = completions or Completions()
        self.sites = Sites()
        self.keys = keys
        self.head_seconds = head_seconds
        self.wall = wall
        self.leaf_seconds = leaf_seconds
        self.taps = taps  # tap uploads (``cc:taps``), read in the same blocking call
        self.sqlite_cache_kib = sqlite_cache_kib
        self.linger_ms = linger_ms
        self._sqlite = db.engine.dialect.name == "sqlite"
        self.scans = scans or taps is None  # False: tap uploads only (a writer of its own for them)
        # at start: whatever is pending was left by a writer that died
        self.streams = record_streams(stream)
        self.pendings = [Pending(client, name, GROUP, idle_seconds=reclaim_seconds,
                                 ensure_group=self.ensure_group, what="records", clock=clock)
                         for name in self.streams]
        self.cluster = is_cluster(client)
        self._ack_script = None if self.cluster else client.register_script(_ACKNOWLEDGE)
        self._carried: list[tuple[str, Entry]] = []  # read, not yet written (over ``batch``)
        self._carried_at = 0  # the next of them to write
        self._unleafed: tuple[int, list[str]] | None = None  # see _with_unleafed
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
        (0 when they were empty). The cyclic garbage collector is paused meanwhile (see
        ``write_streams``): the read's reply alone is a thousand dicts."""
        with _gc_paused():
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
        and delete them (per stream: one MULTI on a single Redis, one per master in a cluster).

        The cyclic garbage collector is paused for the batch: a batch allocates some ten
        containers per record, all freed by reference counting when it ends, and collections
        triggered meanwhile cost ~10 % of the writer's time walking them."""
        with _gc_paused():
            records = []
            for entry_id, fields in (entry for entries in batch.values() for entry in entries):
                try:
                    records.append(ScanRecord.parse(entry_id, fields))
                except ValueError:
                    UNREADABLE.inc()
                    log.error("unreadable stream entry acknowledged", extra={"entry": str(entry_id)})
            if len(batch) > 1:  # streams of several shards: in scan-time order within the batch
                records.sort(key=_scan_time)
            completions, sites = self.completions, self.sites
            rows = [scan_entry(record, completions, sites) for record in records]
            del records
            if rows:
                with self.db.session() as session:
                    if self._sqlite:  # before the transaction begins (SQLite refuses it inside)
                        tune_sqlite(session.connection().connection.driver_connection, self.sqlite_cache_kib)
                    hashes: list[str] = []
                    span = audit.append_encoded(session, rows, hashes)
                    unleafed = self._with_unleafed(span, hashes)
                    closing = self._leaf_due()
                    if closing:
                        self._close(session, span[1] if span is not None else tree_store.lock(session),
                                    known=unleafed)
                self._unleafed = None if closing else unleafed  # committed: known for the next leaf
                stored = 0 if span is None else span[1] - span[0] + 1
                WRITTEN.inc(stored)
                if stored < len(rows):
                    DUPLICATES.inc(len(rows) - stored)
            del rows
        self._acknowledge({name: [entry_id for entry_id, _ in entries] for name, entries in batch.items() if entries})

    def _acknowledge(self, ids: dict[str, list[bytes]]) -> None:
        """XACK and XDEL ``ids`` by stream, atomically: one MULTI on a single Redis (one script
        call when they are of several streams: a batch of the 64 rider shards' streams is 128
        commands, and the script saves the client packing and reading each of them, ~40 % of the
        acknowledgement); in a cluster, one MULTI-less pipeline (streams of several slots)."""
        if not ids:
            return
        if len(ids) > 1 and self._ack_script is not None:
            args: list[Any] = [GROUP]
            for stream_ids in ids.values():
                args.append(len(stream_ids))
                args.extend(stream_ids)
            self._ack_script(keys=list(ids), args=args)
            return
        pipe = self.client.pipeline(transaction=not self.cluster)
        for name, stream_ids in ids.items():
            pipe.xack(name, GROUP, *stream_ids)
            pipe.xdel(name, *stream_ids)
        pipe.execute()

    def _with_unleafed(self, span: tuple[int, int] | None, hashes: list[str]) -> tuple[int, list[str]] | None:
        """The entry hashes this writer knows of the rows not yet in a leaf — its committed batches
        since the last leaf (``_unleafed``) and this one, while they are contiguous — as
        ``(first seq, hashes)`` for ``tree_store.close_leaf``, which reads back only the rows
        before them. At most ``UNLEAFED_LIMIT`` kept (a long ``leaf_seconds``)."""
        earlier = self._unleafed
        if span is None:
            return earlier
        if earlier is not None and earlier[0] + len(earlier[1]) == span[0] \
                and len(earlier[1]) + len(hashes) <= UNLEAFED_LIMIT:
            return earlier[0], earlier[1] + hashes
        return span[0], hashes

    def _leaf_due(self) -> bool:
        """Whether this batch closes a leaf: ``leaf_seconds`` since the last, or a head due."""
        now = self.wall()
        return now >= self._next_leaf or (self.keys is not None and now >= self._next_head)

    def _close(self, session: Any, last_seq: int, *, force: bool = False,
               known: tuple[int, list[str]] | None = None) -> None:
        """In the caller's transaction (audit head locked): a leaf up to ``last_seq``, and a
        signed head when one is due (or ``force``) and there are keys. ``known``: the batch's
        first seq and entry hashes (``tree_store.close_leaf``)."""
        if tree_store.close_leaf(session, last_seq, known=known) is not None:
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
            self._close(session, tree_store.lock(session), force=force, known=self._unleafed)
        self._unleafed = None

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
                    began = time.monotonic()
                    taken = self.step()
                    if self.scans and self.clock() >= self._next_seal:
                        self.seal()
                    delay = 0.1
                    self._linger(taken, began)
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

    def _linger(self, taken: int, began: float) -> None:
        """After a batch that was neither empty (the read blocked already) nor full (a backlog:
        no waiting), wait until ``linger_ms`` after the read began, so records gather into batches
        instead of the writer looping on a few at a time: each step has fixed costs (a read over
        every shard stream, a transaction, an fsync, an acknowledgement) that, at 1,000 scans/s and
        batches of a handful, took 80 % of a core. A record waits at most that much longer to be in
        SQL (its scan was decided and its record made durable in Redis at once); a tap upload's
        answer too (its worker waits for the commit)."""
        if self.linger_ms and 0 < taken < self.batch:
            rest = self.linger_ms / 1000 - (time.monotonic() - began)
            if rest > 0:
                time.sleep(rest)

    def _restart(self) -> None:
        self._carried, self._carried_at = [], 0  # pending in Redis: reclaimed at once
        self._unleafed = None
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
        pending, reclaimed like any). Records of several streams are carried oldest first (by
        the millisecond of their stream entry id; stable, so each stream keeps its order): a
        backlog drains in scan-time order across the shards, and each batch's rows cover a short
        stretch of time (their record ids, time-ordered, then land together in the unique index)."""
        if sum(len(batch) for batch in entries.values()) <= self.batch:
            return entries
        self._carried = [(name, entry) for name, batch in entries.items() for entry in batch]
        self._carried_at = 0
        if len(entries) > 1:
            self._carried.sort(key=_entry_millisecond)
        return self._take_carried()

    def _take_carried(self) -> dict[str, list[Entry]]:
        taken: dict[str, list[Entry]] = {}
        start, end = self._carried_at, self._carried_at + self.batch
        for name, entry in self._carried[start:end]:
            taken.setdefault(name, []).append(entry)
        if end >= len(self._carried):
            self._carried, self._carried_at = [], 0
        else:
            self._carried_at = end
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


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No automatic cyclic collection inside (restored as it was, even on an error)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _entry_millisecond(item: tuple[str, Entry]) -> int:
    """The millisecond part of a carried stream entry's id (``<ms>-<seq>``, bytes or text)."""
    entry_id: Any = item[1][0]
    return int(entry_id.split(b"-" if isinstance(entry_id, bytes) else "-", 1)[0])


def _scan_time(record: ScanRecord) -> float:
    try:
        return float(record.rec["at"])
    except (KeyError, TypeError, ValueError):
        return 0.0
