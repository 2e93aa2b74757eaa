"""POST /v1/taps: each (terminal, seq) stored once, whatever the resends, order and batch split;
a batch with any invalid record stores nothing; 1..1000 records; both time forms; roles."""
from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import ADMIN, bearer
from tests.taps.support import (T0, anomalies, bus, forget_uploads, gate, record, rider, taps, trips,
                                upload, uploaded)

if TYPE_CHECKING:
    import redis


def _journal(sub_a: str, sub_b: str, count: int = 60) -> list[dict[str, Any]]:
    """A metro gate's morning: entries and exits of two riders, a deny, one stale accept."""
    records = []
    for seq in range(1, count + 1):
        sub = sub_a if seq % 2 else sub_b
        direction = "entry" if seq % 4 in (1, 2) else "exit"
        records.append(record(seq, sub, T0 - 7200 + seq * 60, direction=direction, ent=["stu"],
                              trust_age_s=120.0, trust_version=7))
    records[10] = record(11, None, T0 - 7200 + 660, jti=None, decision="deny", reason="bad_signature")
    if count > 20:
        records[20]["trust_age_s"] = 7200.0  # one stale_trust anomaly
    return records


def _state(app: Flask) -> tuple[Any, ...]:
    stored_trips = [(t.key.count("t"), t.status, t.entry_station, t.exit_station, t.amount_cents,
                     t.entered_at, t.exited_at) for t in trips(app)]
    found = sorted((a.kind, a.terminal_id, a.seq, a.detail) for a in anomalies(app))
    return taps(app), stored_trips, found


def test_same_journal_uploaded_three_times_shuffled_and_cut_is_stored_once(
        app: Flask, client: FlaskClient, redis_client: "redis.Redis[bytes]") -> None:
    station, first, second = gate(client, "五四广场"), rider(app, client), rider(app, client)
    journal = _journal(first.sub, second.sub)
    shuffler = random.Random(7)
    totals = {"stored": 0, "duplicates": 0}
    for _ in range(3):
        shuffled = [dict(r) for r in journal]
        shuffler.shuffle(shuffled)
        cuts = sorted(shuffler.sample(range(1, 60), 4))
        for lo, hi in zip([0, *cuts], [*cuts, 60]):
            answer = uploaded(client, station, shuffled[lo:hi])
            totals["stored"] += answer["stored"]
            totals["duplicates"] += answer["duplicates"]
    assert totals == {"stored": 60, "duplicates": 120}
    messy = _state(app)

    forget_uploads(app)
    redis_client.flushdb()
    clean = uploaded(client, station, journal)
    assert (clean["stored"], clean["duplicates"]) == (60, 0)
    assert _state(app) == messy
    stored, settled, found = messy
    assert len(stored) == 60 and [a[0] for a in found] == ["stale_trust"]
    assert len(settled) == 29  # 30 entry/exit pairs; the deny at seq 11 leaves one entry open
    assert {t[1:5] for t in settled} == {("settled", "五四广场", "五四广场", 100)}


def test_a_resent_batch_changes_nothing(app: Flask, client: FlaskClient) -> None:
    station, someone = gate(client, "五四广场"), rider(app, client)
    journal = _journal(someone.sub, someone.sub, count=20)
    uploaded(client, station, journal)
    before = _state(app)
    again = uploaded(client, station, list(reversed(journal)))
    assert again == {"stored": 0, "duplicates": 20, "anomalies": [], "superseded": 0}
    assert _state(app) == before


def test_a_seq_resent_with_other_content_stays_a_duplicate_and_is_reported(
        app: Flask, client: FlaskClient) -> None:
    station, someone = gate(client, "五四广场"), rider(app, client)
    original = record(5, someone.sub, T0 - 60, direction="entry")
    uploaded(client, station, [original])
    changed = {**original, "scanned_at": T0 - 30}
    answer = uploaded(client, station, [changed])
    assert (answer["stored"], answer["duplicates"]) == (0, 1)
    assert [a["kind"] for a in answer["anomalies"]] == ["seq_conflict"]
    assert uploaded(client, station, [changed])["anomalies"] == []  # reported once
    assert [row[4].timestamp() for row in taps(app)] == [T0 - 60]  # the first version is kept


def test_a_batch_with_one_invalid_record_is_422_and_stores_nothing(app: Flask, client: FlaskClient) -> None:
    station, someone = gate(client, "五四广场"), rider(app, client)
    batch = [record(seq, someone.sub, T0 - 100 + seq, direction="entry") for seq in range(1, 6)]
    batch[3]["scanned_at"] = "2026-12-01 08:00"  # no seconds, no offset
    batch[1]["seq"] = 0
    response = upload(client, station, batch)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    errors = response.get_json()["errors"]["records"]
    assert set(errors) == {"1", "3"}
    assert "scanned_at" in errors["3"] and "seq" in errors["1"]
    assert taps(app) == []


def test_records_that_do_not_fit_the_terminal_are_422_and_store_nothing(
        app: Flask, client: FlaskClient) -> None:
    station, vehicle, someone = gate(client, "五四广场"), bus(client), rider(app, client)
    no_direction = [record(1, someone.sub, T0), record(2, someone.sub, T0, direction="entry")]
    response = upload(client, station, no_direction)
    assert response.status_code == 422 and set(response.get_json()["errors"]["records"]) == {"0"}
    response = upload(client, vehicle, [record(1, someone.sub, T0, direction="exit")])
    assert response.status_code == 422
    assert taps(app) == []


def test_inconsistent_records_are_422(app: Flask, client: FlaskClient) -> None:
    vehicle, someone = bus(client), rider(app, client)
    for bad in ({"reason": "expired"}, {"decision": "deny"}, {"sub": None}, {"reason": "nope"},
                {"scanned_at": True}, {"scanned_at": "1796085000"}, {"trust_age_s": -1},
                {"location": {"lat": 91, "lon": 0}}, {"stale": "yes"}, {"request_id": "a b"},
                {"mode": "psychic"}, {"extra": 1}, {"seq": 1.5}, {"scanned_at": 10**12}):
        response = upload(client, vehicle, [{**record(1, someone.sub, T0), **bad}])
        assert response.status_code == 422, bad
    assert taps(app) == []


def test_batches_of_1_to_1000_records_are_taken_and_1001_is_refused(
        app: Flask, client: FlaskClient) -> None:
    vehicle, someone = bus(client), rider(app, client)
    full = [record(seq, someone.sub, T0 - 5000 + seq, ent=["stu"], trust_version=3,
                   trust_age_s=60.5, clock_offset_s=-0.25, location={"lat": 36.06, "lon": 120.38},
                   stale=False, request_id=f"req-{seq:08d}", result={"fare": {
                       "amount_cents": 100, "category": "student"}}) for seq in range(1, 1002)]
    assert upload(client, vehicle, []).status_code == 422
    refused = upload(client, vehicle, full)
    assert refused.status_code == 422 and "records" in refused.get_json()["errors"]
    assert taps(app) == []
    taken = uploaded(client, vehicle, full[:1000])  # ~330 kB: over the service-wide 64 KiB limit
    assert (taken["stored"], taken["duplicates"]) == (1000, 0)


def test_a_body_over_the_upload_limit_is_413(app: Flask, client: FlaskClient) -> None:
    vehicle = bus(client)
    limit = app.extensions["citycode"].settings.taps_max_body_bytes
    response = client.post("/v1/taps", headers=bearer(vehicle.token), data=b" " * (limit + 1),
                           content_type="application/json")
    assert response.status_code == 413 and response.mimetype == "application/problem+json"
    other = client.post("/v1/admin/issuers", headers=ADMIN, data=b" " * (70 * 1024),
                        content_type="application/json")
    assert other.status_code == 413  # the rest of the service keeps its own limit


def test_rfc3339_and_epoch_seconds_are_the_same_instant(app: Flask, client: FlaskClient) -> None:
    vehicle, someone = bus(client), rider(app, client)
    as_text = record(1, someone.sub, "2026-12-01T08:30:00.250+08:00")
    uploaded(client, vehicle, [as_text])
    as_epoch = {**as_text, "scanned_at": 1796085000.25}
    assert uploaded(client, vehicle, [as_epoch]) == {"stored": 0, "duplicates": 1, "anomalies": [],
                                                      "superseded": 0}
    zulu = record(2, someone.sub, "2026-12-01T00:30:00Z")
    uploaded(client, vehicle, [zulu, record(3, someone.sub, 1796085000)])
    times = [row[4].timestamp() for row in taps(app)]
    assert times == [1796085000.25, 1796085000.0, 1796085000.0]


def test_clock_offset_moves_the_server_time(app: Flask, client: FlaskClient) -> None:
    vehicle, someone = bus(client), rider(app, client)
    uploaded(client, vehicle, [record(1, someone.sub, T0, clock_offset_s=90.0)])
    assert taps(app)[0][4].timestamp() == T0 - 90


def test_only_terminals_upload_taps(app: Flask, client: FlaskClient) -> None:
    someone = rider(app, client)
    body = {"records": [record(1, someone.sub, T0)]}
    assert client.post("/v1/taps", json=body).status_code == 401
    assert client.post("/v1/taps", headers=bearer("cct_forged"), json=body).status_code == 401
    assert client.post("/v1/taps", headers=ADMIN, json=body).status_code == 403
    assert client.post("/v1/taps", headers=bearer(someone.app_token), json=body).status_code == 403
    assert taps(app) == []


def test_only_the_admin_lists_anomalies(app: Flask, client: FlaskClient) -> None:
    vehicle, someone = bus(client), rider(app, client)
    assert client.get("/v1/admin/anomalies").status_code == 401
    assert client.get("/v1/admin/anomalies", headers=bearer(vehicle.token)).status_code == 403
    assert client.get("/v1/admin/anomalies", headers=bearer(someone.app_token)).status_code == 403
    assert client.get("/v1/admin/anomalies", headers=ADMIN).get_json() == {
        "anomalies": [], "next_since": None}
