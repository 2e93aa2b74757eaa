"""The same upload, anomaly and settlement rules on PostgreSQL (its dialect's ON CONFLICT, RETURNING
and advisory lock), including two readers uploading one code's accepts at the same moment."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from app.config import Settings
from app.store.embedded import EmbeddedRedis
from tests.conftest import ADMIN_TOKEN, app_for
from tests.pg_support import postgres_server, postgres_url  # noqa: F401  (fixtures)
from tests.taps.support import T0, anomalies, bus, gate, record, rider, taps, trips, upload, uploaded


@pytest.fixture
def pg_app(tmp_path: Path, redis_server: EmbeddedRedis, redis_client: "redis.Redis[bytes]",
           postgres_url: str) -> Iterator[Flask]:  # noqa: F811
    settings = Settings(data_dir=tmp_path / "data", database_url=postgres_url,
                        redis_url=redis_server.url, admin_token=ADMIN_TOKEN)
    with app_for(settings) as application:
        yield application


@pytest.fixture
def pg_client(pg_app: Flask) -> FlaskClient:
    return pg_app.test_client()


def test_uploads_are_idempotent_and_settle_on_postgresql(pg_app: Flask, pg_client: FlaskClient) -> None:
    entry, leave = gate(pg_client, "五四广场"), gate(pg_client, "李村")
    someone = rider(pg_app, pg_client)
    exit_tap = record(1, someone.sub, T0 - 1200, direction="exit", ent=["stu"])
    entry_taps = [record(seq, someone.sub, T0 - 2400 - seq, direction="entry", ent=["stu"])
                  for seq in range(1, 3)]
    assert uploaded(pg_client, leave, [exit_tap])["stored"] == 1
    assert uploaded(pg_client, entry, entry_taps + entry_taps[:1])["duplicates"] == 1
    again = uploaded(pg_client, entry, list(reversed(entry_taps)))
    assert (again["stored"], again["duplicates"], again["anomalies"]) == (0, 2, [])
    changed = uploaded(pg_client, leave, [{**exit_tap, "scanned_at": T0}])
    assert [a["kind"] for a in changed["anomalies"]] == ["seq_conflict"]
    assert len(taps(pg_app)) == 3
    assert [(t.status, t.amount_cents, t.category) for t in trips(pg_app)] == [("settled", 150, "student")]
    bad = upload(pg_client, entry, [record(3, someone.sub, T0, direction="entry"),
                                    record(4, someone.sub, "soon", direction="entry")])
    assert bad.status_code == 422 and len(taps(pg_app)) == 3


def test_two_readers_uploading_one_code_at_once_meet_in_one_anomaly_on_postgresql(
        pg_app: Flask, pg_client: FlaskClient) -> None:
    readers = [bus(pg_client, f"鲁B-1000{n}") for n in range(4)]
    someone = rider(pg_app, pg_client)
    answers: list[Any] = []
    start = threading.Barrier(len(readers))

    def send(n: int) -> None:
        batch = [record(seq, someone.sub, T0 - 3000 + seq, jti=f"r{n}-{seq}") for seq in range(1, 200)]
        batch.append(record(200, someone.sub, T0 - 100 + n, jti="the-same-code"))
        client = pg_app.test_client()
        start.wait()
        answers.append(upload(client, readers[n], batch))

    threads = [threading.Thread(target=send, args=(n,)) for n in range(len(readers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [response.status_code for response in answers] == [200] * len(readers)
    found = [a for response in answers for a in response.get_json()["anomalies"]]
    assert {a["kind"] for a in found} == {"double_use"}
    assert len(found) == len(anomalies(pg_app)) == 6  # one per pair of the 4 readers


def test_the_longest_iss_and_jti_still_make_one_anomaly_on_postgresql(
        pg_app: Flask, pg_client: FlaskClient) -> None:
    first, second = bus(pg_client, "鲁B-10001"), bus(pg_client, "鲁B-20002")
    someone = rider(pg_app, pg_client)
    longest = {"iss": "i" * 64, "jti": "j" * 128}
    uploaded(pg_client, first, [{**record(1, someone.sub, T0 - 60), **longest}])
    answer = uploaded(pg_client, second, [{**record(1, someone.sub, T0 - 50), **longest}])
    assert [(a["kind"], a["jti"]) for a in answer["anomalies"]] == [("double_use", "j" * 128)]
    assert uploaded(pg_client, second, [{**record(1, someone.sub, T0 - 50), **longest}])["anomalies"] == []


def test_the_same_batch_sent_by_four_threads_at_once_is_stored_once_on_postgresql(
        pg_app: Flask, pg_client: FlaskClient) -> None:
    vehicle, someone = bus(pg_client), rider(pg_app, pg_client)
    batch = [record(seq, someone.sub, T0 - 3000 + seq) for seq in range(1, 301)]
    answers: list[Any] = []
    start = threading.Barrier(4)

    def send() -> None:
        client = pg_app.test_client()
        start.wait()
        answers.append(upload(client, vehicle, batch))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [response.status_code for response in answers] == [200] * 4
    bodies = [response.get_json() for response in answers]
    assert sorted(body["stored"] for body in bodies) == [0, 0, 0, 300]
    assert sum(body["duplicates"] for body in bodies) == 900
    assert all(body["anomalies"] == [] for body in bodies)
    assert [row[1] for row in taps(pg_app)] == list(range(1, 301))
