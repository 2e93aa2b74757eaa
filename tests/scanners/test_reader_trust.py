"""Trust material: revocation feed sync (deltas, full snapshots), restarts without network, and
the degraded policy when trust or clock are too old."""
from __future__ import annotations

import time
from pathlib import Path

from tests.helpers import ADMIN, bearer, credential, issuer


def test_citizen_suspended_while_the_reader_is_offline_is_denied_after_the_next_sync(
        city, tmp_path: Path, dead_port: int) -> None:
    city.reader(tmp_path / "r", "bus").close()
    citizen_id, app_token = city.citizen()
    before, after = city.code(app_token), city.code(app_token)
    city.suspend(citizen_id)
    cut_off = city.reopen(tmp_path / "r", base_url=f"http://127.0.0.1:{dead_port}")
    assert cut_off.scan(before).accepted  # it cannot know yet
    assert not cut_off.sync().ok
    cut_off.close()
    reader = city.reopen(tmp_path / "r")
    synced = reader.sync()
    assert synced.ok and synced.entries >= 1
    decision = reader.scan(after, offline=True)
    assert (decision.decision, decision.reason) == ("deny", "suspended")


def test_synced_suspension_holds_after_a_restart_without_network(city, tmp_path: Path, dead_port: int) -> None:
    reader = city.reader(tmp_path / "r", "bus")
    citizen_id, app_token = city.citizen()
    code = city.code(app_token)
    city.suspend(citizen_id)
    assert reader.sync().ok
    version = reader.status()["feed_version"]
    reader.close()
    reopened = city.reopen(tmp_path / "r", base_url=f"http://127.0.0.1:{dead_port}")
    assert reopened.status()["feed_version"] == version
    assert reopened.scan(code).reason == "suspended"


def test_revoked_student_card_stops_the_concession_after_sync(city, tmp_path: Path) -> None:
    reader = city.reader(tmp_path / "r", "bus")
    citizen_id, app_token = city.citizen()
    edu = issuer(city.client, "student_card")
    card = credential(city.client, edu, citizen_id, "student_card")
    code = city.code(app_token)
    response = city.client.post(f"/v1/issuer/credentials/{card['credential_id']}/revoke",
                                headers=bearer(edu), json={})
    assert response.status_code == 200
    assert reader.sync().ok
    decision = reader.scan(code, offline=True)
    assert decision.data["fare"] == {"amount_cents": 200, "category": "full", "display": "full"}


def test_full_snapshot_replaces_the_local_feed(city, tmp_path: Path) -> None:
    gate = {"direction": "exit", "offline": True}  # metro exits accept whatever came before
    reader = city.reader(tmp_path / "r", "metro", {"station": "五四广场"})
    _, app_token = city.citizen()
    sub = reader.journal.record(reader.scan(city.code(app_token), **gate).seq)["sub"]
    # A feed the server never had (e.g. before its database was restored): version far ahead,
    # with a suspension the server does not know of.
    with reader.db.transaction() as conn:
        conn.execute("INSERT INTO feed (version, kind, id, at) VALUES (99999, 'citizen_suspended', ?, 1)", (sub,))
    reader.db.put("trust.feed_version", 99999)
    reader.close()
    reader = city.reopen(tmp_path / "r")
    assert reader.scan(city.code(app_token), **gate).reason == "suspended"
    result = reader.sync()
    assert result.ok and result.full
    assert reader.status()["feed_version"] < 99999
    assert reader.scan(city.code(app_token), **gate).accepted


def test_stale_trust_accepts_flagged_on_bus_and_denies_degraded_at_scenic(
        city, tmp_path: Path, manual_clock) -> None:
    clock = manual_clock(time.time())
    options = {"clock": clock, "monotonic": clock.monotonic, "max_trust_age_s": 900}
    bus = city.reader(tmp_path / "bus", "bus", **options)
    scenic = city.reader(tmp_path / "scenic", "scenic", {"spot": "laoshan"}, **options)
    senior, _ = city.citizen()
    credential(city.client, issuer(city.client, "senior_card"), senior, "senior_card")
    clock.advance(901)
    on_bus = bus.scan(city.code_at(senior, bus.now()), offline=True)
    at_gate = scenic.scan(city.code_at(senior, scenic.now()), offline=True)
    assert (on_bus.decision, on_bus.stale) == ("accept", True)
    record = bus.journal.record(on_bus.seq)
    assert record["stale"] is True and record["trust_age_s"] > 900
    assert (at_gate.decision, at_gate.reason, at_gate.stale) == ("deny", "degraded", True)
    assert bus.status()["stale"] is True
    assert bus.sync().ok
    fresh = bus.scan(city.code_at(city.citizen()[0], bus.now()), offline=True)
    assert fresh.accepted and fresh.stale is False


def test_clock_not_synced_for_too_long_is_stale_too(city, tmp_path: Path, manual_clock) -> None:
    clock = manual_clock(time.time())
    gate = city.reader(tmp_path / "m", "metro", {"station": "五四广场"}, clock=clock,
                       monotonic=clock.monotonic, max_trust_age_s=100_000, max_clock_age_s=600)
    clock.advance(601)
    decision = gate.scan(city.code_at(city.citizen()[0], gate.now()), direction="entry", offline=True)
    assert decision.accepted and decision.stale


def test_terminals_me_needs_a_terminal_token(city) -> None:
    assert city.client.get("/v1/terminals/me").status_code == 401
    assert city.client.get("/v1/terminals/me", headers=ADMIN).status_code == 403


def test_re_reading_an_overlap_of_the_feed_leaves_the_same_state(city, tmp_path: Path) -> None:
    reader = city.reader(tmp_path / "r", "metro", {"station": "五四广场"}, feed_overlap=5)
    citizen_id, app_token = city.citizen()
    codes = [city.code(app_token) for _ in range(3)]
    city.suspend(citizen_id)
    _restore(city, citizen_id)
    city.suspend(citizen_id)
    for code in codes[:2]:  # the second sync re-reads all three entries
        assert reader.sync().ok
        assert reader.scan(code, direction="exit", offline=True).reason == "suspended"
    _restore(city, citizen_id)
    assert reader.sync().ok
    assert reader.scan(codes[2], direction="exit", offline=True).accepted


def _restore(city, citizen_id: str) -> None:
    response = city.client.post(f"/v1/admin/citizens/{citizen_id}/restore", headers=ADMIN, json={})
    assert response.status_code == 200
