"""Metro settlement of offline taps: pairs in any order across readers, fares from the online fare
code, offline and online ends mixed, unpaired entries at the city's maximum fare."""
from __future__ import annotations

import json
import time
from typing import Any

from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from app.cli import main as cli
from app.config import Settings
from tests.helpers import bearer, drain
from tests.taps.support import (T0, Reader, Rider, code_for, gate, record, rider, runtime_of, taps,
                                trips, uploaded)

HOURS = 3600
# 五四广场 → 李村: 11 stops on line 3. 200 cents up to 6 stops, +100 per 5 more (or part): 300.
# 中山路 → 东郭庄: 17 stops on line 1: 200 + 3 × 100 = 500. Cap: 700 (metro.json "fares").
FROM, TO, FULL, STUDENT = "五四广场", "李村", 300, 150


def _open_trip(app: Flask, who: Rider) -> Any:
    return runtime_of(app).scans.scenes["metro"].trips.open_trip(who.sub, time.time())


def _verify(client: FlaskClient, at: Reader, code: str, direction: str) -> dict[str, Any]:
    response = client.post("/v1/verify", headers=bearer(at.token),
                           json={"code": code, "direction": direction})
    assert response.status_code == 200, response.get_json()
    drain(client.application)  # online scans reach the audit log (and settlement) via the writer
    return response.get_json()  # type: ignore[no-any-return]


def _trip_rows(app: Flask) -> list[tuple[Any, ...]]:
    return [(t.status, t.entry_station, t.exit_station, t.amount_cents, t.category, t.priced_by)
            for t in trips(app)]


def test_offline_entry_and_exit_uploaded_in_reverse_order_by_two_readers_settle_one_trip(
        app: Flask, client: FlaskClient) -> None:
    entry, leave, someone = gate(client, FROM), gate(client, TO), rider(app, client)
    uploaded(client, leave, [record(1, someone.sub, T0 - 1200, direction="exit", ent=["stu"])])
    assert trips(app) == []  # an exit alone, younger than the trip limit, waits
    uploaded(client, entry, [record(1, someone.sub, T0 - 2400, direction="entry", ent=["stu"])])
    assert _trip_rows(app) == [("settled", FROM, TO, STUDENT, "student", "settlement")]
    (trip,) = trips(app)
    assert (trip.entry_terminal_id, trip.entry_seq, trip.exit_terminal_id, trip.exit_seq) == (
        entry.terminal_id, 1, leave.terminal_id, 1)
    assert [row[-1] for row in taps(app)] == [None, None]  # neither tap is pending any more
    runtime_of(app).taps.settle(T0 + 10 * HOURS)  # a later sweep changes nothing
    assert len(trips(app)) == 1


def test_a_late_tap_between_two_settled_ends_re_pairs_them(app: Flask, client: FlaskClient) -> None:
    """E1 10:00, X1 10:20, E2 11:00, X2 11:30, arriving X2, E1, then X1 and E2: before X1 and E2
    arrive, E1–X2 look like one trip; the final trips are E1–X1 and E2–X2."""
    a, b, someone = gate(client, FROM), gate(client, TO), rider(app, client)
    base = T0 - 6 * HOURS
    uploaded(client, a, [record(2, someone.sub, base + 5400, direction="exit")])   # X2 at 五四广场
    uploaded(client, a, [record(1, someone.sub, base, direction="entry")])         # E1 at 五四广场
    assert _trip_rows(app) == [("settled", FROM, FROM, 200, "full", "settlement")]
    uploaded(client, b, [record(1, someone.sub, base + 1200, direction="exit"),     # X1 at 李村
                         record(2, someone.sub, base + 3600, direction="entry")])   # E2 at 李村
    assert _trip_rows(app) == [("settled", FROM, TO, FULL, "full", "settlement"),
                               ("settled", TO, FROM, FULL, "full", "settlement")]


def test_offline_entry_then_online_exit_is_charged_once_at_the_online_fare(
        app: Flask, client: FlaskClient) -> None:
    entry, leave, someone = gate(client, FROM), gate(client, TO), rider(app, client)
    uploaded(client, entry, [record(1, someone.sub, time.time() - 600, direction="entry")])
    assert _open_trip(app, someone).station == FROM  # the offline entry opened the trip online
    code, _ = code_for(app, someone)
    exit_answer = _verify(client, leave, code, "exit")
    assert exit_answer["decision"] == "accept"
    assert exit_answer["fare"] == {"amount_cents": FULL, "category": "full", "display": "full", "from": FROM, "to": TO}
    assert runtime_of(app).taps.settle(time.time()).riders == 1
    assert _trip_rows(app) == [("settled", FROM, TO, FULL, "full", "online_gate")]
    runtime_of(app).taps.settle(time.time() + 10 * HOURS, due_only=True)
    assert len(trips(app)) == 1  # never charged again as unpaired


def test_online_entry_then_offline_exit_is_one_fare_and_closes_the_online_trip(
        app: Flask, client: FlaskClient) -> None:
    entry, leave, someone = gate(client, FROM), gate(client, TO), rider(app, client)
    code, _ = code_for(app, someone)
    assert _verify(client, entry, code, "entry")["decision"] == "accept"
    assert _open_trip(app, someone) is not None
    uploaded(client, leave, [record(1, someone.sub, time.time() + 1, direction="exit", ent=["stu"])])
    assert _trip_rows(app) == [("settled", FROM, TO, STUDENT, "student", "settlement")]
    (trip,) = trips(app)
    assert (trip.entry_tap_id, trip.entry_terminal_id) == (None, entry.terminal_id)
    assert _open_trip(app, someone) is None  # the rider left: the next online entry is no passback
    again, _ = code_for(app, someone)
    assert _verify(client, entry, again, "entry")["decision"] == "accept"


def test_an_offline_entry_older_than_the_newest_online_activity_opens_nothing(
        app: Flask, client: FlaskClient) -> None:
    entry, leave, someone = gate(client, FROM), gate(client, TO), rider(app, client)
    code, _ = code_for(app, someone)
    assert _verify(client, leave, code, "exit")["reason"] == "no_entry"  # left before the upload
    uploaded(client, entry, [record(1, someone.sub, time.time() - 900, direction="entry")])
    assert _open_trip(app, someone) is None


def test_an_unpaired_offline_entry_pays_the_maximum_fare_after_the_trip_limit(
        app: Flask, client: FlaskClient) -> None:
    entry, someone, student = gate(client, FROM), rider(app, client), rider(app, client)
    uploaded(client, entry, [record(1, someone.sub, T0 - 600, direction="entry"),
                             record(2, student.sub, T0 - 500, direction="entry", ent=["stu"])])
    desk = runtime_of(app).taps
    assert desk.settle(T0 + 3 * HOURS).to_dict() == {"riders": 2, "pending_taps": 2, "settled_trips": 0}
    assert trips(app) == []  # not overdue yet: the exit may still come
    assert desk.settle(T0 + 5 * HOURS, due_only=True).riders == 2
    assert sorted(_trip_rows(app)) == [("unpaired_entry", FROM, None, 350, "student", "settlement"),
                                       ("unpaired_entry", FROM, None, 700, "full", "settlement")]


def test_an_exit_uploaded_after_the_unpaired_charge_replaces_it(app: Flask, client: FlaskClient) -> None:
    entry, leave, someone = gate(client, FROM), gate(client, TO), rider(app, client)
    uploaded(client, entry, [record(1, someone.sub, T0 - 6 * HOURS, direction="entry")])
    assert _trip_rows(app) == [("unpaired_entry", FROM, None, 700, "full", "settlement")]
    uploaded(client, leave, [record(1, someone.sub, T0 - 5.5 * HOURS, direction="exit")])
    assert _trip_rows(app) == [("settled", FROM, TO, FULL, "full", "settlement")]


def test_an_old_exit_without_entry_pays_the_maximum_fare(app: Flask, client: FlaskClient) -> None:
    leave, someone = gate(client, TO), rider(app, client)
    uploaded(client, leave, [record(1, someone.sub, T0 - 5 * HOURS, direction="exit")])
    assert _trip_rows(app) == [("unpaired_exit", None, TO, 700, "full", "settlement")]


def test_history_shows_the_taps_and_the_settled_trip_with_its_fare(app: Flask, client: FlaskClient) -> None:
    entry, leave, someone = gate(client, FROM), gate(client, TO), rider(app, client)
    uploaded(client, entry, [record(1, someone.sub, T0 - 2400, direction="entry", ent=["stu"])])
    uploaded(client, leave, [record(9, someone.sub, T0 - 1200, direction="exit", ent=["stu"])])
    body = client.get("/v1/me/history", headers=bearer(someone.app_token)).get_json()
    assert [e["action"] for e in body["entries"]] == ["citizen_enrolled"]
    assert [(t["seq"], t["direction"], t["where"]["station"], t["mode"]) for t in body["taps"]] == [
        (9, "exit", TO, "offline"), (1, "entry", FROM, "offline")]
    (trip,) = body["trips"]
    assert trip["status"] == "settled" and trip["priced_by"] == "settlement"
    assert trip["fare"] == {"amount_cents": STUDENT, "category": "student", "from": FROM, "to": TO}
    assert (trip["entry"]["terminal_id"], trip["exit"]["seq"]) == (entry.terminal_id, 9)
    older = client.get("/v1/me/history", headers=bearer(someone.app_token),
                       query_string={"before": body["entries"][0]["seq"]}).get_json()
    assert older == {"entries": [], "next_before": None, "taps": [], "trips": []}
    other = rider(app, client)
    mine_only = client.get("/v1/me/history", headers=bearer(other.app_token)).get_json()
    assert (mine_only["taps"], mine_only["trips"]) == ([], [])


def test_citycode_settle_picks_up_online_exits_of_offline_entries(
        app: Flask, client: FlaskClient, settings: Settings, monkeypatch: Any) -> None:
    entry, leave, someone = gate(client, FROM), gate(client, TO), rider(app, client)
    uploaded(client, entry, [record(1, someone.sub, time.time() - 600, direction="entry")])
    code, _ = code_for(app, someone)
    assert _verify(client, leave, code, "exit")["decision"] == "accept"
    for name, value in (("CITYCODE_DATA_DIR", str(settings.data_dir)),
                        ("REDIS_URL", str(settings.redis_url))):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    due_only = CliRunner().invoke(cli, ["settle", "--due-only"])
    assert due_only.exit_code == 0, due_only.output
    assert json.loads(due_only.output) == {"riders": 0, "pending_taps": 1, "settled_trips": 0}
    everything = CliRunner().invoke(cli, ["settle"])
    assert everything.exit_code == 0, everything.output
    assert json.loads(everything.output) == {"riders": 1, "pending_taps": 0, "settled_trips": 1}
    assert _trip_rows(app) == [("settled", FROM, TO, FULL, "full", "online_gate")]
