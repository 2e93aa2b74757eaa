"""The record writer: batches into one transaction and one seq range, idempotent by record id,
acknowledges only after commit, reclaims what a dead writer left; its lag in readiness and metrics."""
from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.audit import log as audit
from app.audit.models import AuditEntry
from app.records.stream import GROUP, ScanRecord
from app.records.writer import RecordWriter, audit_entry
from tests.helpers import drain
from tests.records.support import runtime_of, scan_some, stream_entries, stream_length, stream_pending


def _writer(app: Flask, consumer: str = "w1", batch: int = 1000) -> RecordWriter:
    rt = runtime_of(app)
    writer = RecordWriter(rt.redis, rt.db, stream=rt.settings.records_stream, consumer=consumer, batch=batch)
    writer.ensure_group()
    return writer


def _rows(app: Flask) -> list[tuple[int, str | None]]:
    with runtime_of(app).db.session() as session:
        return [(e.seq, e.record_id) for e in session.scalars(
            select(AuditEntry).where(AuditEntry.action == "scan").order_by(AuditEntry.seq))]


def test_same_record_drained_twice_is_stored_once(app: Flask, client: FlaskClient) -> None:
    scan_some(app, client, 5, "p_w")
    rt = runtime_of(app)
    entries = stream_entries(rt)
    writer = _writer(app)
    writer.write_streams(entries)
    writer.write_streams(entries)  # e.g. redelivered after a Redis restart lost the acknowledgement
    writer.write_streams({name: batch[:1] for name, batch in entries.items()})
    rows = _rows(app)
    assert len(rows) == 5 and len({r for _, r in rows}) == 5
    with rt.db.session() as session:
        assert audit.verify_chain(session) == (True, None)


def test_a_batch_is_one_contiguous_seq_range(app: Flask, client: FlaskClient) -> None:
    scan_some(app, client, 7, "p_w")
    writer = _writer(app, batch=4)
    assert writer.step(block=False) == 4
    with runtime_of(app).db.session() as session:  # another audited event between two batches
        audit.append(session, actor_kind="admin", actor_id="adm", action="citizen_enrolled")
    assert writer.step(block=False) == 3
    seqs = [seq for seq, _ in _rows(app)]
    first, second = seqs[:4], seqs[4:]
    assert first == list(range(first[0], first[0] + 4)) and second == list(range(second[0], second[0] + 3))
    assert second[0] == first[-1] + 2


def test_records_left_pending_by_a_dead_writer_are_reclaimed_and_stored_once(
        app: Flask, client: FlaskClient) -> None:
    scan_some(app, client, 6, "p_w")
    rt = runtime_of(app)
    dead = _writer(app, consumer="dead", batch=6)
    taken = [entry for batch in dead._read_all(False)[0].values() for entry in batch]  # delivered to the dead writer ...
    assert len(taken) == 6
    with rt.db.session() as session:  # ... which committed half of them, then died before XACK
        audit.append_batch(session, [audit_entry(ScanRecord.parse(entry_id, fields), dead.completions)
                                     for entry_id, fields in taken[:3]])
    assert stream_pending(rt) == 6
    assert drain(app) == 6  # a new writer reclaims all six, stores the three missing
    stored = _rows(app)
    assert len(stored) == 6 and len({r for _, r in stored}) == 6
    assert stream_pending(rt) == 0
    assert stream_length(rt) == 0


def test_an_unreadable_entry_is_acknowledged_and_blocks_nothing(app: Flask, client: FlaskClient) -> None:
    rt = runtime_of(app)
    rt.redis.xadd(rt.settings.records_stream, {"junk": "1"})
    scan_some(app, client, 2, "p_w")
    assert drain(app) == 3
    assert len(_rows(app)) == 2 and stream_length(rt) == 0


def test_readiness_and_metrics_report_the_writers_lag(app: Flask, client: FlaskClient) -> None:
    rt = runtime_of(app)
    stream = rt.settings.records_stream
    ready = client.get("/healthz/ready").get_json()
    assert ready["checks"]["records"] == "ok"
    rt.redis.xadd(stream, {"rec": "{}", "r": "ok"}, id="1000-0")  # a record from 1970: very late
    response = client.get("/healthz/ready")
    body: dict[str, Any] = response.get_json()
    assert response.status_code == 503 and body["failed"] == ["records"]
    assert body["checks"]["records"].startswith("lagging (1 records, oldest ")
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "citycode_records_pending 1.0" in metrics
    assert "citycode_records_oldest_age_seconds" in metrics
    drain(app)
    assert client.get("/healthz/ready").status_code == 200
    with rt.db.session() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)
                              .where(AuditEntry.action == "scan")) == 0


def test_cli_reports_the_lag_and_drains(app: Flask, client: FlaskClient) -> None:
    import json

    from click.testing import CliRunner

    from app.cli import main as cli

    rt = runtime_of(app)
    scan_some(app, client, 3, prefix="p_cli")
    env = {"REDIS_URL": rt.settings.redis_url, "CITYCODE_DATA_DIR": str(rt.settings.data_dir),
           "CITYCODE_ADMIN_TOKEN": "cca_unused-here-0123456789"}
    status = CliRunner().invoke(cli, ["records", "status"], env=env)
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["records"] == 3
    drained = CliRunner().invoke(cli, ["records", "drain"], env=env)
    assert drained.exit_code == 0 and drained.output.strip() == "3 records drained"
    assert len(_rows(app)) == 3


def test_writer_lingers_after_a_partial_batch_but_not_after_a_full_or_an_empty_one(app: Flask) -> None:
    """A handful of records per step would cost a read over every shard stream, a transaction and
    an fsync each: after a partial batch the next read waits ``linger_ms`` from the last one."""
    import time

    rt = runtime_of(app)
    writer = RecordWriter(rt.redis, rt.db, stream=rt.settings.records_stream, batch=1000, linger_ms=150)
    writer.ensure_group()
    taken = iter([5, 1000, 0, 3, 0])
    began: list[float] = []

    def step(block: bool = True) -> int:
        began.append(time.monotonic())
        return next(taken)

    writer.step = step  # type: ignore[method-assign]
    writer.seal = lambda force=False: None  # type: ignore[method-assign]
    writer.run(lambda: len(began) >= 5)
    gaps = [b - a for a, b in zip(began, began[1:])]
    assert gaps[0] >= 0.15  # after 5: waited
    assert gaps[1] < 0.1 and gaps[2] < 0.1  # after 1000 (a backlog) and after 0 (the read blocked): not
    assert gaps[3] >= 0.15  # after 3: waited
