"""Offline decisions: real codes from POST /v1/me/code, verified by app.codes with synced trust."""
from __future__ import annotations

import time
from pathlib import Path

from scanners.reader import Reader
from scanners.sync import parse_time


def test_enrolled_reader_knows_its_terminal_and_clock(city, tmp_path: Path) -> None:
    reader = city.reader(tmp_path / "r", "bus")
    status = reader.status()
    assert status["kind"] == "bus" and status["site"]["vehicle"] == "鲁B-10001"
    assert status["keys"] and status["stale"] is False
    assert abs(status["clock_offset_s"]) < 1
    assert reader.verifier.max_ttl == 60 and reader.verifier.issuer == "cc"


def test_terminals_me_describes_the_calling_terminal(city) -> None:
    token = city.terminal("metro", station="五四广场")
    response = city.client.get("/v1/terminals/me", headers={"Authorization": f"Bearer {token}"})
    body = response.get_json()
    assert response.status_code == 200
    assert body["kind"] == "metro" and body["site"] == {"station": "五四广场"}
    assert abs(time.time() - parse_time(body["server_time"])) < 5
    assert body["issuer"] == "cc" and body["code_ttl_seconds"] == 60


def test_real_code_is_accepted_offline_with_the_bus_fare_and_journaled(city, tmp_path: Path) -> None:
    reader = city.reader(tmp_path / "r", "bus")
    _, app_token = city.citizen()
    decision = reader.scan(city.code(app_token), offline=True)
    assert (decision.decision, decision.reason, decision.mode) == ("accept", "ok", "offline")
    assert decision.data["fare"] == {"amount_cents": 200, "category": "full", "display": "full"}
    assert decision.seq == 1 and reader.pending() == 1
    record = reader.journal.record(1)
    assert record["decision"] == "accept" and record["mode"] == "offline"
    assert record["jti"] and record["sub"] and record["iss"] == "cc"
    assert record["result"] == {"fare": {"amount_cents": 200, "category": "full", "display": "full"}}


def test_same_code_twice_offline_is_replayed(city, tmp_path: Path) -> None:
    reader = city.reader(tmp_path / "r", "metro", {"station": "五四广场"})
    _, app_token = city.citizen()
    code = city.code(app_token)
    assert reader.scan(code, direction="entry", offline=True).accepted
    again = reader.scan(code, direction="exit", offline=True)
    assert (again.decision, again.reason, again.seq) == ("deny", "replayed", 2)


def test_replay_cache_survives_reopen(city, tmp_path: Path) -> None:
    reader = city.reader(tmp_path / "r", "bus")
    _, app_token = city.citizen()
    code = city.code(app_token)
    assert reader.scan(code, offline=True).accepted
    reader.close()
    reopened = Reader.open(tmp_path / "r", base_url="http://127.0.0.1:9")  # no network needed
    try:
        again = reopened.scan(code, offline=True)
        assert again.reason == "replayed" and again.seq == 2
    finally:
        reopened.close()


def test_forged_code_is_denied_and_journaled_without_claims(city, tmp_path: Path) -> None:
    reader = city.reader(tmp_path / "r", "bus")
    _, app_token = city.citizen()
    head, payload, signature = city.code(app_token).split(".")
    forged = f"{head}.{payload}.{signature[:-4]}AAAA"
    decision = reader.scan(forged, offline=True)
    assert (decision.decision, decision.reason) == ("deny", "bad_signature")
    record = reader.journal.record(decision.seq)
    assert record["jti"] is None and record["sub"] is None and "ent" not in record
