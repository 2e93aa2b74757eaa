"""The record writer's second stream: tap uploads (``cc:taps``, see ``app.taps.queue``).

The writer reads both streams in one blocking ``XREADGROUP`` (the same consumer group name on
both), so an upload wakes it at once. Each step takes the uploads waiting and writes them, at
most ``max_records`` records per transaction, in ONE transaction (``TapDesk.ingest``: group commit). Only after the
commit does it apply the metro trip steps to the online trip state (as an in-process upload
does) and then push each upload's answer to the reply key its worker waits on (``LPUSH`` +
``EXPIRE``, one MULTI with the ``XACK`` and ``XDEL`` of the entries).

Crash cases. Killed before the commit: nothing was stored; the entries stay pending, the next
writer reclaims them (XAUTOCLAIM, as for scan records) and writes them, answering any worker
still waiting. Killed after the commit, before the replies: the worker times out (503) and the
reader sends the batch again; the reclaimed entries and the retry find their records stored and
answer ``duplicates`` — stored once, never doubled. Redis restarted: an appended upload lost
with the last second of the AOF is simply never answered (503; the reader keeps the batch and
resends it); one that survived is written then, and a resend is a duplicate. A database error
fails the whole group (nothing of it is stored): each upload is then tried alone, and one that
still fails is answered with an error (its worker answers 503) and dropped — the reader keeps
those records until a 200 and sends them again. A Redis error after the commit leaves the
entries pending: reclaimed, they are written again as duplicates and answered as such.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable, Iterable

import redis
from prometheus_client import Counter

from app.records.pending import Entry, Pending
from app.store.redis import is_cluster
from app.taps import TapDesk
from app.taps.queue import GROUP, REPLY_TTL_S, STREAM, Job

log = logging.getLogger("citycode.records")

UPLOADS = Counter("citycode_tap_uploads_written_total", "Tap uploads written by the record writer")
GROUPS = Counter("citycode_tap_upload_groups_total", "Transactions of tap uploads (group commits)")
FAILED = Counter("citycode_tap_uploads_failed_total", "Tap uploads answered with an error and dropped")



class TapUploads:
    """The consumer of ``cc:taps`` inside the record writer."""

    def __init__(self, client: "redis.Redis[bytes]", desk: TapDesk, *, stream: str = STREAM,
                 max_uploads: int = 64, max_records: int = 20_000,
                 reclaim_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.client = client
        self.desk = desk
        self.stream = stream
        self.max_uploads = max_uploads
        self.max_records = max_records
        self.reclaim_seconds = reclaim_seconds
        self.clock = clock
        self.wall = wall
        self.pending = Pending(client, stream, GROUP, idle_seconds=reclaim_seconds,
                               ensure_group=self.ensure_group, what="tap uploads", clock=clock)

    def ensure_group(self) -> None:
        try:
            self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def restart(self) -> None:
        """After a failure: take back at once whatever this writer had read."""
        self.pending.restart()

    def write(self, entries: list[Entry]) -> int:
        """Write ``entries`` (in groups of at most ``max_records`` records), answer and
        acknowledge them; the number of uploads written."""
        jobs: list[Job] = []
        unreadable: list[bytes] = []
        for entry_id, fields in entries:
            try:
                jobs.append(Job.parse(entry_id, fields))
            except ValueError:
                log.error("unreadable tap upload entry acknowledged", extra={"entry": str(entry_id)})
                unreadable.append(entry_id)
        if unreadable:
            self._finish([], unreadable)
        written, group, size = 0, [], 0
        for job in jobs:
            if group and size + len(job.records) > self.max_records:
                written += self._write_group(group)
                group, size = [], 0
            group.append(job)
            size += len(job.records)
        if group:
            written += self._write_group(group)
        return written

    def _write_group(self, jobs: list[Job]) -> int:
        try:
            answers, steps = self.desk.ingest(jobs, self.wall())
        except Exception:
            if len(jobs) > 1:  # find the upload that cannot be written, if one: each alone
                log.exception("tap upload group not written; writing its uploads one by one")
                return sum(self._write_group([job]) for job in jobs)
            log.exception("tap upload not written; answered with an error and dropped "
                          "(the reader keeps its records and sends them again)")
            self._finish([(jobs[0].reply_key, {"error": "not written"})], [jobs[0].entry_id])
            FAILED.inc()
            return 0
        self.desk.live.apply(steps, self.wall())  # before the answers, as an in-process upload
        self._finish([(job.reply_key, answer.to_dict()) for job, answer in zip(jobs, answers)],
                     [job.entry_id for job in jobs])
        GROUPS.inc()
        UPLOADS.inc(len(jobs))
        return len(jobs)

    def _finish(self, replies: Iterable[tuple[str, dict[str, Any]]], ids: list[bytes]) -> None:
        """Answers, then acknowledge and delete the entries: one MULTI on a single Redis; in a
        cluster (reply keys in other slots) one pipeline, the answers sent before the
        acknowledgements, so a failure between them leaves the entries pending (written again as
        duplicates, answered again)."""
        pipe = self.client.pipeline(transaction=not is_cluster(self.client))
        for key, answer in replies:
            pipe.lpush(key, json.dumps(answer, ensure_ascii=False, separators=(",", ":")))
            pipe.expire(key, REPLY_TTL_S)
        if ids:
            pipe.xack(self.stream, GROUP, *ids)
            pipe.xdel(self.stream, *ids)
        pipe.execute()

    def reclaim(self, consumer: str) -> list[Entry]:
        """Uploads another (dead) consumer left pending, taken over by ``consumer``: all at
        start, then those idle for ``reclaim_seconds``."""
        return self.pending.take(consumer, self.max_uploads)
