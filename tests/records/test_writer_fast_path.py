"""The record writer's fast path (issue #8, item 4) writes exactly the rows the plain path would:
``scan_entry`` + ``append_encoded`` against ``audit_entry`` + ``append_batch``, the cached
timestamp and site texts against the hashed formats, the C encoder against ``canonical_json``,
the level-by-level Merkle root against RFC 9162's recursive definition, a leaf hashed partly
from the batch in memory against the auditor; and each batch commits with ``synchronous=FULL``
with the garbage collector paused (real Redis, real SQLite files)."""
from __future__ import annotations

import gc
import hashlib
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.audit import log as audit
from app.audit import merkle
from app.audit.auditor import audit as audit_check
from app.audit.models import AuditEntry, AuditLeaf
from app.db import Database
from app.records.complete import Completions
from app.records.stream import ScanRecord
from app.records.writer import _ACKNOWLEDGE, RecordWriter, Sites, audit_entry, scan_entry
from tests.helpers import bearer, terminal
from tests.records.support import runtime_of, scan_some, stream_entries
from tests.scenes.metro_support import mint_code


@pytest.fixture
def round_trips_counter(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sends to Redis from this process (a pipeline or a script call is one)."""
    import redis.connection

    count = [0]
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        count[0] += 1
        original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    return count


def _verify(client: FlaskClient, token: str, scanned: str, **extra: Any) -> dict[str, Any]:
    response = client.post("/v1/verify", headers=bearer(token), json={"code": scanned, **extra})
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def _records_of_every_scene(app: Flask, client: FlaskClient) -> list[ScanRecord]:
    rider = "p_fast_path"
    bus = terminal(client, "bus")
    enter, leave = terminal(client, "metro", station="五四广场"), terminal(client, "metro", station="青岛站")
    _verify(client, bus, mint_code(app, rider, ("stu",)))
    _verify(client, enter, mint_code(app, rider), direction="entry")
    _verify(client, leave, mint_code(app, rider, ("sen",)), direction="exit")
    _verify(client, leave, mint_code(app, rider), direction="exit")  # no_entry
    _verify(client, terminal(client, "scenic"), mint_code(app, rider, ("sap",)))
    _verify(client, terminal(client, "hall"), mint_code(app, rider))
    _verify(client, bus, "not-a-code")
    kiosk = terminal(client, "hall", hall="city")
    client.post("/v1/halls/city/tickets", headers=bearer(kiosk),
                json={"code": mint_code(app, rider), "service": "household"})
    entries = [entry for batch in stream_entries(runtime_of(app)).values() for entry in batch]
    return [ScanRecord.parse(entry_id, fields) for entry_id, fields in entries]


def test_the_writer_encodes_every_scene_exactly_as_its_audit_entry(app: Flask, client: FlaskClient) -> None:
    records = _records_of_every_scene(app, client)
    assert len(records) == 8 and {r.rec["k"] for r in records} == {"bus", "metro", "scenic", "hall"}
    completions, sites = Completions(), Sites()
    for _ in range(2):  # the second time from the site cache
        for record in records:
            assert scan_entry(record, completions, sites) == audit.encode_entry(audit_entry(record, completions))


def test_sites_of_equal_but_differently_encoded_values_are_not_confused() -> None:
    completions, sites = Completions(), Sites()
    for value in (1, True, 1.0, "1", [1], {"a": 1}, None):
        record = ScanRecord("1-1", {"id": f"r{value!r}", "t": "trm_x", "k": "bus", "s": {"line": value},
                                    "at": 1796000000.25}, "ok", {})
        encoded = scan_entry(record, completions, sites)
        assert encoded.site == audit.canonical_json({"line": value, "kind": "bus"})
        assert encoded == audit.encode_entry(audit_entry(record, completions))


def test_a_batch_drained_through_the_fast_path_stores_the_plain_paths_rows(
        app: Flask, client: FlaskClient, tmp_path: Any) -> None:
    """The same records appended both ways to two fresh databases: identical rows, valid chains."""
    from app import db

    records = _records_of_every_scene(app, client)
    completions = Completions()
    stored = []
    for name, append in (("plain", lambda s: audit.append_batch(s, [audit_entry(r, completions) for r in records])),
                         ("fast", lambda s: audit.append_encoded(
                             s, [scan_entry(r, completions, Sites()) for r in records]))):
        url = f"sqlite:///{tmp_path}/{name}.sqlite3"
        db.migrate(url)
        database = Database(url)
        with database.session() as session:
            assert append(session) == (1, len(records))
        with database.session() as session:
            assert audit.verify_chain(session) == (True, None)
            stored.append([tuple(getattr(row, c.name) for c in AuditEntry.__table__.c)
                           for row in session.scalars(select(AuditEntry).order_by(AuditEntry.seq))])
        database.dispose()
    assert stored[0] == stored[1]


@pytest.mark.parametrize("moment", [
    datetime(2026, 12, 1, 7, 30, 0, 0, tzinfo=timezone.utc),
    datetime(2026, 12, 1, 7, 30, 0, 1, tzinfo=timezone.utc),
    datetime(2026, 12, 1, 7, 30, 0, 999999, tzinfo=timezone.utc),
    datetime(2026, 12, 1, 15, 30, 0, 500000, tzinfo=timezone(timedelta(hours=8))),
    datetime(2026, 12, 1, 7, 30, 0, 500000),  # naive: UTC, as SQLite hands it back
    datetime(1970, 1, 1, tzinfo=timezone.utc),
    datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
    datetime(2199, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
    datetime(2200, 1, 1, 0, 0, 0, 1, tzinfo=timezone.utc),
    datetime(999, 1, 1, 0, 0, 0, 5, tzinfo=timezone.utc),
    datetime(1, 1, 1, tzinfo=timezone.utc),
])
def test_the_cached_timestamp_text_is_the_hashed_format(moment: datetime) -> None:
    for _ in range(2):  # uncached, then from the cache of its second
        at, text = audit.moment_of(moment)
        assert text == audit.timestamp(moment) and at == audit.utc(moment) and at.tzinfo is timezone.utc


def test_a_second_reached_through_another_time_zone_has_the_same_text() -> None:
    east = datetime(2026, 12, 1, 15, 30, 1, 250, tzinfo=timezone(timedelta(hours=8)))
    assert audit.moment_of(east)[1] == audit.moment_of(east.astimezone(timezone.utc))[1] == \
        "2026-12-01T07:30:01.000250Z"


@pytest.mark.parametrize("value", [
    {"b": 1, "a": {"d": [1, 2.5, None, True], "c": "x"}},
    {"text": "青岛站 \x00\x1f\n\t\"\\ \u2028 \ud7ff \U0001f68c"},
    {"numbers": [0.1, 1e16, 1e-7, -0.0, 2 ** 70, -(2 ** 63), 3.141592653589793]},
    [], {}, "plain", 12, None, False,
])
def test_the_fast_encoder_writes_canonical_json(value: Any) -> None:
    assert audit.canonical(value) == audit.canonical_json(value)


@pytest.mark.parametrize(("value", "error"), [({"x": float("nan")}, ValueError), ({"x": float("inf")}, ValueError),
                                              ({"x": object()}, TypeError), ({"x": {1, 2}}, TypeError)])
def test_the_fast_encoder_refuses_what_canonical_json_refuses(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        audit.canonical_json(value)
    with pytest.raises(error):
        audit.canonical(value)


@pytest.mark.parametrize("text", ['{"id":"r1","t":"trm"}', ' {"id": "r1", "t": "trm"}\n'])
def test_a_record_is_parsed_with_or_without_whitespace_around_it(text: str) -> None:
    for fields in ({b"rec": text.encode(), b"r": b"ok", b"from": "五四广场".encode()},
                   {"rec": text, "r": "ok", "from": "五四广场"}):
        record = ScanRecord.parse(b"7-0", fields)  # type: ignore[arg-type]
        assert record == ScanRecord("7-0", {"id": "r1", "t": "trm"}, "ok", {"from": "五四广场"})


@pytest.mark.parametrize("fields", [
    {b"rec": b'{"id":"r1","t":"trm"} x', b"r": b"ok"},  # trailing garbage
    {b"rec": b'{"id":"r1","t":"trm"', b"r": b"ok"},
    {b"rec": b"\xff", b"r": b"ok"},  # not UTF-8
    {b"rec": b'{"id":"r1","t":"trm"}'},  # no reason
    {b"rec": b'["r1"]', b"r": b"ok"},
])
def test_an_unreadable_record_is_refused(fields: dict[bytes, bytes]) -> None:
    with pytest.raises(ValueError):
        ScanRecord.parse(b"7-0", fields)


def _reference_root(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 as written: split at the largest power of two below n."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _reference_root(leaves[:k]) + _reference_root(leaves[k:])).digest()


@pytest.mark.parametrize("size", [*range(0, 70), 127, 128, 129, 1000, 1025])
def test_the_level_by_level_root_is_the_rfc_root(size: int) -> None:
    leaves = [hashlib.sha256(b"%d" % i).digest() for i in range(size)]
    assert merkle.merkle_tree_hash(leaves) == _reference_root(leaves)


@pytest.mark.parametrize("admin_between", [(), (1,), (2,), (1, 3)])
def test_leaves_hashed_partly_from_memory_cover_every_row_and_verify(
        app: Flask, client: FlaskClient, admin_between: tuple[int, ...]) -> None:
    """Leaves closed every hour of a fake clock, over four batches of 3: the second leaf covers
    batches 2-4 (their hashes kept in memory while contiguous) and any admin entries appended
    between batches (read back from the table, with what they cut off)."""
    rt = runtime_of(app)
    now = [1000.0]
    writer = RecordWriter(rt.redis, rt.db, stream=rt.settings.records_stream, consumer="w_leaf", batch=3,
                          keys=rt.keys, leaf_seconds=3600, head_seconds=3600, wall=lambda: now[0])
    writer.ensure_group()
    scan_some(app, client, 12, "p_leaf")
    for batch in range(4):
        if batch in admin_between:
            with rt.db.session() as session:
                audit.append(session, actor_kind="admin", actor_id="adm", action="citizen_enrolled")
        now[0] += 3600 if batch == 3 else 1
        assert writer.step(block=False) == 3
    with rt.db.session() as session:
        ranges = [(leaf.first_seq, leaf.last_seq) for leaf in session.scalars(select(AuditLeaf).order_by(AuditLeaf.idx))]
        scans = list(session.scalars(select(AuditEntry.seq).where(AuditEntry.record_id.is_not(None))
                                     .order_by(AuditEntry.seq)))
        report = audit_check(session)
    assert len(scans) == 12 and scans[-1] == scans[0] + 11 + len(admin_between)
    assert ranges == [(1, scans[2]), (scans[2] + 1, scans[11])]
    assert report.ok and report.unsealed == 0 and report.leaves == 2, report.problems


def test_a_batch_commits_with_synchronous_full_before_it_is_acknowledged(
        app: Flask, client: FlaskClient) -> None:
    rt = runtime_of(app)
    database = Database(rt.settings.resolved_database_url)  # one connection: the writer's
    try:
        with database.engine.connect() as connection:
            raw = connection.connection.driver_connection
            assert raw.execute("PRAGMA synchronous").fetchone()[0] == 1  # the service's NORMAL
            statements: list[str] = []
            raw.set_trace_callback(statements.append)
        scan_some(app, client, 2, "p_full")
        writer = RecordWriter(rt.redis, database, stream=rt.settings.records_stream, consumer="w_full")
        writer.ensure_group()
        assert writer.step(block=False) == 2
        full = statements.index("PRAGMA synchronous=FULL")
        begin = next(i for i, sql in enumerate(statements) if sql.startswith("BEGIN"))
        insert = next(i for i, sql in enumerate(statements) if sql.startswith("INSERT INTO audit_log"))
        assert full < begin < insert and statements[-1] == "COMMIT"
        with database.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    finally:
        database.dispose()


class _Watching(Completions):
    """Completions that note whether the collector runs while a record is written, or fail."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail
        self.collecting: list[bool] = []

    def data(self, record: ScanRecord) -> dict[str, Any]:
        self.collecting.append(gc.isenabled())
        if self.fail:
            raise RuntimeError("database trouble")
        return super().data(record)


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_paused_for_a_batch_and_restored_after_it(
        app: Flask, client: FlaskClient, enabled: bool) -> None:
    rt = runtime_of(app)
    scan_some(app, client, 4, "p_gc")
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        failing = RecordWriter(rt.redis, rt.db, stream=rt.settings.records_stream, consumer="w_gc",
                               completions=_Watching(fail=True), batch=2)
        failing.ensure_group()
        with pytest.raises(RuntimeError):
            failing.step(block=False)
        assert gc.isenabled() is enabled
        writer = RecordWriter(rt.redis, rt.db, stream=rt.settings.records_stream, consumer="w_gc",
                              completions=_Watching(), batch=2)
        writer._restart()  # take back what the failed step read, as run() does
        assert writer.step(block=False) == 2
        assert gc.isenabled() is enabled
        assert writer.completions.collecting == [False, False]  # type: ignore[attr-defined]
        assert failing.completions.collecting == [False]  # type: ignore[attr-defined]
    finally:
        (gc.enable if was else gc.disable)()


def test_a_batch_of_several_streams_is_acknowledged_and_deleted_in_one_script_call(
        app: Flask, round_trips_counter: list[int]) -> None:
    """8,205 records in two rider shards' streams, one batch: all stored, none left pending or in
    the streams, the acknowledgement one round trip (the script acknowledges 8,200 ids in nine
    commands: Lua cannot unpack that many arguments at once)."""
    import json as _json
    import time

    from app.records.stream import GROUP, shard_stream

    rt = runtime_of(app)
    base = rt.settings.records_stream
    writer = RecordWriter(rt.redis, rt.db, stream=base, consumer="w_ack", batch=10_000)
    writer.ensure_group()
    for shard, count in ((3, 8200), (40, 5)):
        pipe = rt.redis.pipeline(transaction=False)
        for i in range(count):
            rec = {"id": f"ack{shard:02d}{i:06d}", "t": "trm_ack", "k": "bus", "s": {"line": "321"},
                   "at": time.time(), "sub": f"p_ack{i}"}
            pipe.xadd(shard_stream(base, shard), {"rec": _json.dumps(rec), "r": "expired"})
        pipe.execute()
    entries, _ = writer._read_all(block=False)
    assert {name: len(batch) for name, batch in entries.items()} == {shard_stream(base, 3): 8200,
                                                                   shard_stream(base, 40): 5}
    rt.redis.script_load(_ACKNOWLEDGE)  # as after the first batch (redis-py loads it on NOSCRIPT)
    before = round_trips_counter[0]
    writer.write_streams(entries)
    sent = round_trips_counter[0] - before
    with rt.db.session() as session:
        stored = list(session.scalars(select(AuditEntry.record_id).where(AuditEntry.actor_id == "trm_ack")))
    assert len(stored) == len(set(stored)) == 8205
    for shard in (3, 40):
        assert rt.redis.xlen(shard_stream(base, shard)) == 0
        assert rt.redis.xpending(shard_stream(base, shard), GROUP)["pending"] == 0
    assert sent == 1  # EVALSHA (the SQL side sends nothing to Redis)
