"""Online first: the server decides when it answers within the timeout; otherwise the reader decides
offline, backs off, and comes back online when the server answers again."""
from __future__ import annotations

import time
from pathlib import Path


def test_online_decision_is_the_servers_journaled_and_cached_locally(city, tmp_path: Path) -> None:
    reader = city.reader(tmp_path / "r", "bus")
    _, app_token = city.citizen()
    code = city.code(app_token)
    decision = reader.scan(code)
    assert (decision.decision, decision.mode, decision.stale) == ("accept", "online", False)
    assert decision.data["fare"] == {"amount_cents": 200, "category": "full", "display": "full"}
    assert decision.request_id and "online_ms" in decision.timings
    record = reader.journal.record(decision.seq)
    assert record["mode"] == "online" and record["request_id"] == decision.request_id
    assert record["jti"] and record["result"]["fare"]["amount_cents"] == 200
    offline_again = reader.scan(code, offline=True)
    assert offline_again.reason == "replayed"  # the local cache knows the server used it
    online_again = reader.scan(code)
    assert (online_again.mode, online_again.reason) == ("online", "replayed")


def test_online_metro_entry_opens_the_local_trip_so_an_offline_entry_is_passback(city, tmp_path: Path) -> None:
    gate = city.reader(tmp_path / "r", "metro", {"station": "五四广场"})
    _, app_token = city.citizen()
    online = gate.scan(city.code(app_token), direction="entry")
    assert (online.mode, online.reason) == ("online", "ok") and online.data["trip"]["station"] == "五四广场"
    offline = gate.scan(city.code(app_token), direction="entry", offline=True)
    assert offline.reason == "passback"


def test_unreachable_server_falls_back_offline_and_backs_off(
        city, tmp_path: Path, dead_port: int, manual_clock) -> None:
    clock = manual_clock(time.time())
    city.reader(tmp_path / "r", "bus").close()
    reader = city.reopen(tmp_path / "r", base_url=f"http://127.0.0.1:{dead_port}", clock=clock,
                         monotonic=clock.monotonic)
    _, app_token = city.citizen()
    first = reader.scan(city.code(app_token))
    assert (first.decision, first.mode) == ("accept", "offline")
    assert first.fallback and first.request_id  # it tried, and says with which request_id
    assert reader.journal.record(first.seq)["request_id"] == first.request_id
    assert reader.online is False
    second = reader.scan(city.code(city.citizen()[1]))
    assert second.mode == "offline" and second.request_id is None  # within the backoff: no try
    clock.advance(6)
    assert reader.online is True  # the next scan probes the server again


def test_server_that_never_answers_times_out_in_the_online_budget(
        city, tmp_path: Path, silent_port: int) -> None:
    city.reader(tmp_path / "r", "metro", {"station": "五四广场"}).close()
    reader = city.reopen(tmp_path / "r", base_url=f"http://127.0.0.1:{silent_port}",
                         online_timeout_s=0.3)
    _, app_token = city.citizen()
    decision = reader.scan(city.code(app_token), direction="entry")
    assert (decision.decision, decision.mode) == ("accept", "offline")
    assert "timed out" in decision.fallback
    assert 250 <= decision.timings["online_ms"] < 1500


def test_reader_goes_back_online_when_the_stopped_server_answers_again(
        city, tmp_path: Path, manual_clock) -> None:
    clock = manual_clock(time.time())
    reader = city.reader(tmp_path / "r", "bus", clock=clock, monotonic=clock.monotonic)
    _, app_token = city.citizen()
    city.served.stop()
    during = reader.scan(city.code_at(city.citizen()[0], reader.now()))
    assert during.mode == "offline" and reader.online is False
    city.served.start()  # same port
    assert reader.sync().ok and reader.online is True
    after = reader.scan(city.code(app_token))
    assert after.mode == "online" and after.accepted
    assert [reader.journal.record(s)["mode"] for s in (during.seq, after.seq)] == ["offline", "online"]


def test_hall_kiosk_takes_a_queue_number_online_and_journals_it(city, tmp_path: Path) -> None:
    kiosk = city.reader(tmp_path / "k", "hall")
    _, app_token = city.citizen()
    decision = kiosk.scan(city.code(app_token), service="household")
    assert (decision.decision, decision.mode) == ("accept", "online")
    assert decision.data["ticket"] and decision.data["service"] == "household"
    assert kiosk.journal.record(decision.seq)["result"]["ticket"] == decision.data["ticket"]


def test_request_id_sent_online_is_one_the_server_knows(city, tmp_path: Path) -> None:
    gate = city.reader(tmp_path / "g", "metro", {"station": "五四广场"})
    _, app_token = city.citizen()
    code = city.code(app_token)
    first = gate.scan(code, direction="entry")
    # the gate lost that reply and asks again with the same request_id: the same decision
    again = gate.client.verify({"code": code, "direction": "entry", "request_id": first.request_id}, 5)
    assert (again["decision"], again["reason"]) == ("accept", "ok")
