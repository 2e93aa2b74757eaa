"""The upload's fast paths keep every rule: the driver-level insert stores exactly what the ORM
would (and reads back the same), concurrent uploads of the same seqs still store each once, and
the anomaly pre-checks (a code or rider seen only once needs no rows loaded) miss nothing."""
from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.taps.ingest import _sqlite_time
from app.taps.models import Tap
from app.taps.record import TapRecord, parse_scanned_at
from tests.taps.support import (T0, anomalies, bus, gate, record, rider, runtime_of, taps, upload,
                                uploaded)


def _kinds(answer: dict[str, Any]) -> list[str]:
    return sorted(a["kind"] for a in answer["anomalies"])


def test_sqlite_time_text_is_what_the_orm_stores() -> None:
    from sqlalchemy import DateTime
    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect()
    orm = DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)
    for moment in (datetime(2026, 12, 1, 8, 30, tzinfo=timezone.utc),
                   datetime(2000, 1, 1, 0, 0, 0, 1, tzinfo=timezone.utc),
                   parse_scanned_at("2099-12-31T23:59:59.999999+08:00")):
        assert _sqlite_time(moment) == orm(moment)


def test_a_stored_record_reads_back_with_every_field_as_sent(app: Flask, client: FlaskClient) -> None:
    vehicle, someone = bus(client), rider(app, client)
    full = record(1, someone.sub, "2026-12-01T08:30:00.123456+08:00", ent=["stu", "学生"],
                  trust_version=7, trust_age_s=12.5, clock_offset_s=-1.25, stale=False,
                  location={"lat": 36.0671, "lon": 120.3826}, request_id="r-1",
                  result={"fare": {"amount_cents": 100, "category": "student"}, "note": "车"})
    bare = record(2, None, T0, decision="deny", reason="bad_signature")
    assert uploaded(client, vehicle, [full, bare])["stored"] == 2
    with runtime_of(app).db.session() as session:
        first, second = session.scalars(select(Tap).order_by(Tap.seq)).all()
    sent = TapRecord.from_body({**full, "scanned_at": parse_scanned_at(full["scanned_at"])})
    assert first.scanned_at.replace(tzinfo=timezone.utc) == sent.scanned_at
    assert first.server_at.replace(tzinfo=timezone.utc) == sent.server_at
    assert (first.ent, first.result, first.site, first.stale, first.lat, first.lon) == (
        ["stu", "学生"], full["result"], vehicle.site, False, 36.0671, 120.3826)
    assert (first.trust_version, first.trust_age_s, first.clock_offset_s, first.request_id) == (
        7, 12.5, -1.25, "r-1")
    assert first.digest == sent.digest and first.pending_since is None
    assert (second.jti, second.sub, second.ent, second.result, second.stale) == (None, None, None, None, None)
    # The stored row and a resend in the other time form are one record: a plain duplicate.
    again = uploaded(client, vehicle, [{**full, "scanned_at": sent.scanned_at.timestamp()}])
    assert (again["stored"], again["duplicates"], again["anomalies"]) == (0, 1, [])


def test_offline_metro_accepts_are_stored_pending_and_settle(app: Flask, client: FlaskClient) -> None:
    entry, leave = gate(client, "五四广场"), gate(client, "李村")
    someone = rider(app, client)
    uploaded(client, entry, [record(1, someone.sub, T0 - 1200, direction="entry")])
    assert taps(app)[0][-1] is not None  # pending_since set by the fast insert
    uploaded(client, leave, [record(1, someone.sub, T0 - 600, direction="exit")])
    assert [row[-1] for row in taps(app)] == [None, None]  # settled: both ends taken


@pytest.mark.parametrize("senders", [2, 4])
def test_the_same_batch_sent_by_several_threads_at_once_is_stored_once(
        app: Flask, client: FlaskClient, senders: int) -> None:
    vehicle, someone = bus(client), rider(app, client)
    batch = [record(seq, someone.sub, T0 - 3000 + seq) for seq in range(1, 301)]
    answers: list[Any] = []
    start = threading.Barrier(senders)

    def send() -> None:
        own = app.test_client()
        start.wait()
        answers.append(upload(own, vehicle, batch))

    threads = [threading.Thread(target=send) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [response.status_code for response in answers] == [200] * senders
    bodies = [response.get_json() for response in answers]
    assert sorted(body["stored"] for body in bodies) == [0] * (senders - 1) + [300]
    assert sum(body["duplicates"] for body in bodies) == 300 * (senders - 1)
    assert all(body["anomalies"] == [] for body in bodies)
    assert [row[1] for row in taps(app)] == list(range(1, 301))


def test_a_conflicting_resend_is_found_among_new_records(app: Flask, client: FlaskClient) -> None:
    vehicle, someone = bus(client), rider(app, client)
    uploaded(client, vehicle, [record(5, someone.sub, T0 - 50, jti="kept")])
    answer = uploaded(client, vehicle, [record(seq, someone.sub, T0 - 100 + seq) for seq in (4, 6)]
                      + [record(5, someone.sub, T0 - 50, jti="changed")])
    assert (answer["stored"], answer["duplicates"], _kinds(answer)) == (2, 1, ["seq_conflict"])
    assert answer["anomalies"][0]["seq"] == 5


def test_two_uses_of_one_code_inside_one_batch_of_new_riders_are_found(
        app: Flask, client: FlaskClient) -> None:
    first, second = bus(client, "鲁B-10001"), bus(client, "鲁B-20002")
    someone = rider(app, client)
    crowd = [record(seq, f"rider-{seq}", T0 - 900 + seq) for seq in range(1, 400)]
    assert _kinds(uploaded(client, first, crowd + [record(400, someone.sub, T0 - 300, jti="one")])) == []
    others = [record(seq, f"other-{seq}", T0 - 900 + seq) for seq in range(1, 200)]  # own jtis
    answer = uploaded(client, second, others + [record(400, someone.sub, T0 - 290, jti="one")])
    assert _kinds(answer) == ["double_use"]
    assert [a.kind for a in anomalies(app)] == ["double_use"]


def test_one_rider_placed_twice_far_apart_inside_one_batch_is_impossible_travel(
        app: Flask, client: FlaskClient) -> None:
    vehicle = bus(client)
    crowd = [record(seq, f"rider-{seq}", T0 - 900 + seq, location={"lat": 36.0671, "lon": 120.3826})
             for seq in range(1, 300)]
    far = [record(300, "runner", T0 - 120, location={"lat": 36.0671, "lon": 120.3826}),
           record(301, "runner", T0 - 60, location={"lat": 36.30, "lon": 120.60})]
    answer = uploaded(client, vehicle, crowd + far)
    assert _kinds(answer) == ["impossible_travel"]
    assert (answer["anomalies"][0]["sub"], answer["anomalies"][0]["seq"]) == ("runner", 301)
