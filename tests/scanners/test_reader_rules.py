"""Scene rules offline: bus fares and the duplicate-tap window, metro passback, scenic admission,
hall kiosks online only. Codes are minted by the service at the reader's (injected) time."""
from __future__ import annotations

import time
from pathlib import Path

from tests.helpers import credential, issuer


def _bus(city, tmp_path: Path, clock):
    return city.reader(tmp_path / "bus", "bus", clock=clock, monotonic=clock.monotonic)


def test_bus_fare_comes_from_the_codes_entitlements(city, tmp_path: Path, manual_clock) -> None:
    clock = manual_clock(time.time())
    reader = _bus(city, tmp_path, clock)
    citizen_id, _ = city.citizen()
    credential(city.client, issuer(city.client, "student_card"), citizen_id, "student_card")
    decision = reader.scan(city.code_at(citizen_id, reader.now()), offline=True)
    assert decision.data["fare"] == {"amount_cents": 100, "category": "student", "display": "concession"}
    assert reader.journal.record(decision.seq)["ent"] == ["stu"]


def test_second_tap_within_the_window_is_a_duplicate_and_after_it_is_charged(
        city, tmp_path: Path, manual_clock) -> None:
    clock = manual_clock(time.time())
    reader = _bus(city, tmp_path, clock)
    citizen_id, _ = city.citizen()
    first = reader.scan(city.code_at(citizen_id, reader.now()), offline=True)
    clock.advance(119)
    second = reader.scan(city.code_at(citizen_id, reader.now()), offline=True)
    clock.advance(2)  # 121 s after the charged tap: the 120 s window has passed
    third = reader.scan(city.code_at(citizen_id, reader.now()), offline=True)
    assert [d.reason for d in (first, second, third)] == ["ok", "duplicate_tap", "ok"]
    assert "fare" not in second.data and third.data["fare"]["amount_cents"] == 200


def test_duplicate_tap_window_survives_a_restart(city, tmp_path: Path, manual_clock) -> None:
    clock = manual_clock(time.time())
    reader = _bus(city, tmp_path, clock)
    citizen_id, _ = city.citizen()
    assert reader.scan(city.code_at(citizen_id, reader.now()), offline=True).accepted
    reader.close()
    reopened = city.reopen(tmp_path / "bus", clock=clock, monotonic=clock.monotonic)
    assert reopened.scan(city.code_at(citizen_id, reopened.now()), offline=True).reason == "duplicate_tap"


def _gate(city, tmp_path: Path, station: str = "五四广场"):
    return city.reader(tmp_path / station, "metro", {"station": station})


def test_entry_while_a_local_trip_is_open_is_passback_and_exit_closes_it(city, tmp_path: Path) -> None:
    gate = _gate(city, tmp_path)
    _, app_token = city.citizen()
    entry = gate.scan(city.code(app_token), direction="entry", offline=True)
    passback = gate.scan(city.code(app_token), direction="entry", offline=True)
    exit_ = gate.scan(city.code(app_token), direction="exit", offline=True)
    entry_again = gate.scan(city.code(app_token), direction="entry", offline=True)
    assert [d.reason for d in (entry, passback, exit_, entry_again)] == ["ok", "passback", "ok", "ok"]
    assert entry.data["trip"]["station"] == "五四广场"
    assert exit_.data["trip"]["from"] == "五四广场" and exit_.data["trip"]["fare"] == "settled_later"
    records = [gate.journal.record(d.seq) for d in (entry, passback, exit_)]
    assert [r["direction"] for r in records] == ["entry", "entry", "exit"]


def test_exit_without_a_local_trip_is_accepted_and_settled_later(city, tmp_path: Path) -> None:
    gate = _gate(city, tmp_path)
    _, app_token = city.citizen()
    decision = gate.scan(city.code(app_token), direction="exit", offline=True)
    assert decision.accepted and "from" not in decision.data["trip"]
    assert gate.journal.record(decision.seq)["direction"] == "exit"


def test_metro_scan_without_direction_is_malformed_and_leaves_the_code_unused(city, tmp_path: Path) -> None:
    gate = _gate(city, tmp_path)
    _, app_token = city.citizen()
    code = city.code(app_token)
    assert gate.scan(code, offline=True).reason == "malformed"
    assert gate.scan(code, direction="entry", offline=True).accepted


def _turnstile(city, tmp_path: Path, **options):
    return city.reader(tmp_path / "scenic", "scenic", {"spot": "laoshan"}, **options)


def test_scenic_admits_a_free_category_once_a_day_and_refuses_the_rest(city, tmp_path: Path) -> None:
    turnstile = _turnstile(city, tmp_path)
    senior, _ = city.citizen()
    credential(city.client, issuer(city.client, "senior_card"), senior, "senior_card")
    plain, plain_token = city.citizen()
    first = turnstile.scan(city.code_at(senior, turnstile.now()), offline=True)
    again = turnstile.scan(city.code_at(senior, turnstile.now()), offline=True)
    nobody = turnstile.scan(city.code(plain_token), offline=True)
    assert [d.reason for d in (first, again, nobody)] == ["ok", "already_admitted", "no_reservation"]
    assert first.data["admission"]["spot"] == "laoshan"


def test_hall_kiosk_offline_is_degraded_and_spends_nothing(city, tmp_path: Path) -> None:
    kiosk = city.reader(tmp_path / "hall", "hall")
    _, app_token = city.citizen()
    code = city.code(app_token)
    decision = kiosk.scan(code, offline=True)
    assert (decision.decision, decision.reason) == ("deny", "degraded")
    assert decision.seq == 1 and not kiosk.replay.seen("cc", kiosk.journal.record(1)["jti"])


def test_todays_reservation_admits_offline_at_its_spot_only(city, tmp_path: Path) -> None:
    from app.scenes.base import local_date

    laoshan = _turnstile(city, tmp_path)
    temple = city.reader(tmp_path / "temple", "scenic", {"spot": "zhanshan_temple"})
    citizen_id, app_token = city.citizen()
    credential(city.client, issuer(city.client, "scenic_reservation"), citizen_id, "scenic_reservation",
               spot="laoshan", date=local_date(time.time()).isoformat())
    assert laoshan.scan(city.code(app_token), offline=True).reason == "ok"
    assert temple.scan(city.code(app_token), offline=True).reason == "no_reservation"
