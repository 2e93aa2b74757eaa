"""Anomalies found in tap uploads: listed in the upload's answer, stored once, listed for the admin."""
from __future__ import annotations

import time

from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import ADMIN, bearer, drain
from tests.taps.support import (T0, anomalies, bus, code_for, gate, reader, record, rider,
                                uploaded)


def _kinds(answer: dict) -> list[str]:  # type: ignore[type-arg]
    return [a["kind"] for a in answer["anomalies"]]


def test_one_code_accepted_by_two_offline_readers_is_exactly_one_anomaly(
        app: Flask, client: FlaskClient) -> None:
    first, second = bus(client, "鲁B-10001"), bus(client, "鲁B-20002")
    someone = rider(app, client)
    shared = record(1, someone.sub, T0 - 300, jti="shared-jti-1")
    assert _kinds(uploaded(client, first, [shared, record(2, someone.sub, T0 - 200)])) == []
    answer = uploaded(client, second, [record(7, someone.sub, T0 - 290, jti="shared-jti-1")])
    assert _kinds(answer) == ["double_use"]
    found = answer["anomalies"][0]
    assert (found["jti"], found["sub"], found["terminal_id"], found["seq"]) == (
        "shared-jti-1", someone.sub, second.terminal_id, 7)
    assert first.terminal_id in found["detail"]
    # Resends from either reader, and a deny of the same code, add nothing.
    uploaded(client, first, [shared])
    uploaded(client, second, [record(7, someone.sub, T0 - 290, jti="shared-jti-1"),
                              record(8, someone.sub, T0 - 280, jti="shared-jti-1",
                                     decision="deny", reason="replayed")])
    assert [a.kind for a in anomalies(app)] == ["double_use"]


def test_the_same_code_twice_at_one_reader_is_not_double_use(app: Flask, client: FlaskClient) -> None:
    vehicle, someone = bus(client), rider(app, client)
    answer = uploaded(client, vehicle, [record(1, someone.sub, T0, jti="j"),
                                        record(2, someone.sub, T0 + 1, jti="j")])
    assert _kinds(answer) == []


def test_an_offline_accept_after_the_code_was_used_online_is_an_anomaly(
        app: Flask, client: FlaskClient) -> None:
    online, offline = bus(client, "鲁B-10001"), bus(client, "鲁B-20002")
    someone = rider(app, client)
    code, jti = code_for(app, someone)
    verified = client.post("/v1/verify", headers=bearer(online.token), json={"code": code})
    assert verified.get_json()["decision"] == "accept"
    drain(app)  # the online scan reaches the audit log through the record writer
    answer = uploaded(client, offline, [record(3, someone.sub, time.time() + 2, jti=jti)])
    assert _kinds(answer) == ["used_after_online"]
    assert online.terminal_id in answer["anomalies"][0]["detail"]
    assert answer["anomalies"][0]["terminal_id"] == offline.terminal_id


def test_an_online_use_known_only_from_a_tap_record_counts_too(app: Flask, client: FlaskClient) -> None:
    online, offline = bus(client, "鲁B-10001"), bus(client, "鲁B-20002")
    someone = rider(app, client)
    uploaded(client, online, [record(1, someone.sub, T0 - 100, jti="j-online", mode="online")])
    answer = uploaded(client, offline, [record(1, someone.sub, T0 - 50, jti="j-online")])
    assert _kinds(answer) == ["used_after_online"]


def test_a_terminals_own_online_attempt_with_its_request_id_is_not_an_anomaly(
        app: Flask, client: FlaskClient) -> None:
    """The reader asked the server (which accepted and audited the scan), lost the reply, and
    decided offline; its record carries the request_id of that attempt."""
    vehicle, someone = bus(client), rider(app, client)
    code, jti = code_for(app, someone)
    verified = client.post("/v1/verify", headers=bearer(vehicle.token),
                           json={"code": code, "request_id": "r-0001"})
    assert verified.get_json()["decision"] == "accept"
    drain(app)
    mine = record(4, someone.sub, time.time() + 1, jti=jti, request_id="r-0001")
    assert _kinds(uploaded(client, vehicle, [mine])) == []
    # Without a request_id the same terminal's offline accept is a use after the online one.
    again = record(5, someone.sub, time.time() + 2, jti=jti)
    assert _kinds(uploaded(client, vehicle, [again])) == ["used_after_online"]


def test_one_rider_at_two_far_stations_minutes_apart_is_impossible_travel(
        app: Flask, client: FlaskClient) -> None:
    north, south = gate(client, "东郭庄"), gate(client, "董家口火车站")  # about 90 km apart
    near = gate(client, "中山路")
    someone = rider(app, client)
    uploaded(client, north, [record(1, someone.sub, T0 - 600, direction="entry")])
    answer = uploaded(client, south, [record(1, someone.sub, T0 - 300, direction="entry")])
    assert _kinds(answer) == ["impossible_travel"]
    assert north.terminal_id in answer["anomalies"][0]["detail"]
    # Hours later, far away, is possible; so is the next station a few minutes on.
    later = uploaded(client, near, [record(1, someone.sub, T0 + 3 * 3600, direction="exit")])
    assert _kinds(later) == []


def test_bus_locations_count_and_a_short_hop_does_not(app: Flask, client: FlaskClient) -> None:
    vehicle, other = bus(client, "鲁B-10001"), bus(client, "鲁B-20002")
    someone = rider(app, client)
    here = {"lat": 36.0671, "lon": 120.3826}
    uploaded(client, vehicle, [record(1, someone.sub, T0 - 120, location=here)])
    close = uploaded(client, other, [record(1, someone.sub, T0 - 60,
                                            location={"lat": 36.0700, "lon": 120.3850})])
    assert _kinds(close) == []  # 400 m in a minute: below the minimum distance
    far = uploaded(client, other, [record(2, someone.sub, T0 - 30,
                                          location={"lat": 36.3, "lon": 120.4})])
    assert _kinds(far) == ["impossible_travel"]


def test_an_accept_on_trust_older_than_the_limit_is_stale_trust(app: Flask, client: FlaskClient) -> None:
    vehicle, someone = bus(client), rider(app, client)
    limit = app.extensions["citycode"].settings.reader_max_trust_age_seconds
    answer = uploaded(client, vehicle, [
        record(1, someone.sub, T0, trust_age_s=limit - 1),
        record(2, someone.sub, T0 + 1, trust_age_s=limit + 1),
        record(3, someone.sub, T0 + 2, jti=None, decision="deny", reason="expired", trust_age_s=10**6),
        record(4, someone.sub, T0 + 3, stale=True)])
    assert [(a["kind"], a["seq"]) for a in answer["anomalies"]] == [("stale_trust", 2), ("stale_trust", 4)]


def test_a_bus_fare_other_than_the_table_s_is_flagged(app: Flask, client: FlaskClient) -> None:
    vehicle, someone = bus(client), rider(app, client)
    right = {"fare": {"amount_cents": 100, "category": "student"}}
    wrong = {"fare": {"amount_cents": 200, "category": "full"}}
    answer = uploaded(client, vehicle, [record(1, someone.sub, T0, ent=["stu"], result=right),
                                        record(2, someone.sub, T0 + 900, ent=["stu"], result=wrong)])
    assert [(a["kind"], a["seq"]) for a in answer["anomalies"]] == [("fare_mismatch", 2)]


def test_the_admin_pages_through_anomalies_by_id_or_time(app: Flask, client: FlaskClient) -> None:
    vehicle, someone = bus(client), rider(app, client)
    before = time.time() - 1
    stale = [record(n, someone.sub, T0 + n, stale=True) for n in range(1, 6)]
    uploaded(client, vehicle, stale)
    page = client.get("/v1/admin/anomalies", headers=ADMIN, query_string={"limit": 3}).get_json()
    assert [a["seq"] for a in page["anomalies"]] == [1, 2, 3]
    rest = client.get("/v1/admin/anomalies", headers=ADMIN,
                      query_string={"since": page["next_since"]}).get_json()
    assert [a["seq"] for a in rest["anomalies"]] == [4, 5]
    empty = client.get("/v1/admin/anomalies", headers=ADMIN,
                       query_string={"since": rest["next_since"]}).get_json()
    assert empty == {"anomalies": [], "next_since": rest["next_since"]}
    by_time = client.get("/v1/admin/anomalies", headers=ADMIN, query_string={
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(before)), "kind": "stale_trust"})
    assert len(by_time.get_json()["anomalies"]) == 5
    future = client.get("/v1/admin/anomalies", headers=ADMIN,
                        query_string={"since": "2099-01-01T00:00:00+08:00"})
    assert future.get_json()["anomalies"] == []
    for bad in ("yesterday", "-1", str(2**63), "2026-12-01"):
        response = client.get("/v1/admin/anomalies", headers=ADMIN, query_string={"since": bad})
        assert response.status_code == 422, bad
        assert response.mimetype == "application/problem+json"


def test_scenic_and_hall_taps_have_no_place_and_no_travel_check(app: Flask, client: FlaskClient) -> None:
    spot, station = reader(client, "scenic", spot="laoshan"), gate(client, "董家口火车站")
    someone = rider(app, client)
    uploaded(client, spot, [record(1, someone.sub, T0 - 60)])
    assert _kinds(uploaded(client, station, [record(1, someone.sub, T0 - 59, direction="entry")])) == []
