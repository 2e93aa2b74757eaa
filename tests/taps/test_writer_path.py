"""POST /v1/taps through the record writer (app.taps.queue, app.records.taps): answered only after
the writer committed; a writer killed after its commit, a writer not running and a Redis restart
mid-upload lose nothing and double nothing; uploads waiting together are one transaction and
still meet each other's records."""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from app.config import Settings
from app.records.taps import TapUploads
from app.records.writer import RecordWriter
from app.store.embedded import EmbeddedRedis
from app.taps import TapDesk
from app.taps.queue import GROUP, STREAM, Job
from tests.conftest import ADMIN_TOKEN, app_for
from tests.tap_writer import running_writer
from tests.taps.support import T0, anomalies, bus, record, rider, runtime_of, taps, upload, uploaded

TAP_WRITER = False  # tests/taps/conftest.py: these tests run (or withhold) the writer themselves


def _quick(app: Flask, seconds: float = 1.0) -> None:
    """Views give up waiting after ``seconds`` (5 s in service)."""
    runtime_of(app).taps.queue.timeout = seconds


def _in_thread(target: Any, *args: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(target(*args)), daemon=True)
    thread.start()
    return thread, out


def _backlog(app: Flask) -> tuple[int, int]:
    """(uploads in the stream, uploads delivered and not acknowledged)."""
    client = runtime_of(app).redis
    try:
        pending = client.xpending(STREAM, GROUP)["pending"]
    except redis.ResponseError:  # no group yet
        pending = 0
    return int(client.xlen(STREAM)), int(pending)


def _wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _batch(sub: str, count: int = 20, first: int = 1) -> list[dict[str, Any]]:
    return [record(seq, sub, T0 - 3000 + seq) for seq in range(first, first + count)]


def test_an_upload_is_answered_once_the_writer_committed_it(app: Flask, client: FlaskClient) -> None:
    vehicle, someone = bus(client), rider(app, client)
    with running_writer(app):
        answer = uploaded(client, vehicle, _batch(someone.sub))
    assert (answer["stored"], answer["duplicates"]) == (20, 0)
    assert len(taps(app)) == 20
    assert _backlog(app) == (0, 0)  # acknowledged and deleted after the commit


def test_writer_not_running_is_503_with_retry_after_and_the_upload_is_written_once_it_runs(
        app: Flask, client: FlaskClient) -> None:
    vehicle, someone = bus(client), rider(app, client)
    _quick(app)
    batch = _batch(someone.sub)
    refused = upload(client, vehicle, batch)
    assert refused.status_code == 503 and refused.mimetype == "application/problem+json"
    assert int(refused.headers["Retry-After"]) >= 1
    assert taps(app) == []  # not answered: not stored yet either
    assert _backlog(app)[0] == 1
    with running_writer(app):
        _wait_for(lambda: len(taps(app)) == 20)  # written without the reader sending it again
        again = uploaded(client, vehicle, batch)  # the reader's retry
    assert (again["stored"], again["duplicates"]) == (0, 20)
    assert len(taps(app)) == 20 and _backlog(app) == (0, 0)


def test_writer_killed_after_commit_before_reply_the_retry_gets_duplicates_nothing_doubled(
        app: Flask, client: FlaskClient) -> None:
    vehicle, someone = bus(client), rider(app, client)
    _quick(app)
    batch = _batch(someone.sub)
    waiting, answers = _in_thread(upload, app.test_client(), vehicle, batch)
    rt = runtime_of(app)
    doomed = RecordWriter(rt.redis, rt.db, consumer="doomed", scans=False,
                          taps=TapUploads(rt.redis, TapDesk(rt.db, rt.redis, rt.settings)))
    doomed.ensure_group()
    _wait_for(lambda: _backlog(app)[0] == 1)
    _, entries = doomed._read_all(block=False)
    assert doomed.taps is not None
    doomed.taps.desk.ingest([Job.parse(*entry) for entry in entries], time.time())  # committed ...
    # ... and killed here: no reply, no XACK
    waiting.join(10)
    assert answers[0].status_code == 503 and "Retry-After" in answers[0].headers
    assert len(taps(app)) == 20 and _backlog(app) == (1, 1)
    with running_writer(app):  # the restarted writer reclaims the entry: stored already
        again = uploaded(client, vehicle, batch)
        _wait_for(lambda: _backlog(app) == (0, 0))
    assert (again["stored"], again["duplicates"]) == (0, 20)
    assert len(taps(app)) == 20
    assert len({(row[0], row[1]) for row in taps(app)}) == 20


def test_two_terminals_uploading_overlapping_records_at_once_store_each_once_and_find_one_double_use(
        app: Flask, client: FlaskClient) -> None:
    first, second, someone = bus(client, "鲁B-20001"), bus(client, "鲁B-20002"), rider(app, client)
    shared = [f"jti-shared-{n}" for n in range(3)]  # codes accepted at both buses
    mine = [record(seq, someone.sub, T0 - 3000 + seq, jti=shared[seq - 1] if seq <= 3 else None)
            for seq in range(1, 11)]
    theirs = [record(seq, someone.sub, T0 - 1000 + seq, jti=shared[seq - 1] if seq <= 3 else None)
              for seq in range(1, 11)]
    # Both wait while the writer is down, so the writer takes them together: one transaction.
    _quick(app, 10.0)
    one, a = _in_thread(upload, app.test_client(), first, mine)
    two, b = _in_thread(upload, app.test_client(), second, theirs)
    _wait_for(lambda: _backlog(app)[0] == 2)
    with running_writer(app):
        one.join(10)
        two.join(10)
        answers = [a[0].get_json(), b[0].get_json()]
        assert [x["stored"] for x in answers] == [10, 10]
        # and both once more, at once: duplicates, nothing new found
        one, a = _in_thread(upload, app.test_client(), first, mine)
        two, b = _in_thread(upload, app.test_client(), second, theirs)
        one.join(10)
        two.join(10)
        again = [a[0].get_json(), b[0].get_json()]
    assert [(x["stored"], x["duplicates"], x["anomalies"]) for x in again] == [(0, 10, []), (0, 10, [])]
    assert len(taps(app)) == 20
    reported = [item for x in answers for item in x["anomalies"] if item["kind"] == "double_use"]
    assert sorted(item["jti"] for item in reported) == shared  # each shared code once, to one upload
    assert sorted(a.jti for a in anomalies(app) if a.kind == "double_use") == shared


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A redis-server of this test's own, to kill and restart (the session's one stays up)."""
    with EmbeddedRedis(Path(tmp_path) / "redis") as server:
        yield server


def test_a_redis_restart_mid_upload_loses_nothing_and_doubles_nothing(
        tmp_path: Path, own_redis: EmbeddedRedis) -> None:
    settings = Settings(data_dir=tmp_path / "data", redis_url=own_redis.url, admin_token=ADMIN_TOKEN)
    with app_for(settings) as app:
        client = app.test_client()
        vehicle, someone = bus(client), rider(app, client)
        _quick(app, 10.0)
        batch = _batch(someone.sub)
        waiting, answers = _in_thread(upload, app.test_client(), vehicle, batch)
        _wait_for(lambda: _backlog(app)[0] == 1)  # appended; its view waits for the answer
        pid = own_redis.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # Redis dies mid-upload
        waiting.join(10)
        assert answers[0].status_code == 503 and "Retry-After" in answers[0].headers
        assert taps(app) == []
        own_redis.wait_exit()
        own_redis.start()  # back from its AOF, the appended upload with it
        with running_writer(app):
            _wait_for(lambda: len(taps(app)) == 20)  # written once Redis and the writer are back
            again = uploaded(client, vehicle, batch)  # the reader's retry
        assert (again["stored"], again["duplicates"]) == (0, 20)
        assert len(taps(app)) == 20
