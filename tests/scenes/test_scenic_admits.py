"""``admits`` / ``entry_denial``: the pure scenic rule the online scene and the offline turnstile
share, decided from the verified code alone (its entitlements, its ``iat``) and the scan time."""
from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest

from app.city import CITY_TZ
from app.scenes.scenic import ScenicConfig, admits, city_config, entry_denial

ROOT = Path(__file__).resolve().parents[2]
CONFIG = city_config()
LAOSHAN, ZHANSHAN = CONFIG.spots["laoshan"], CONFIG.spots["zhanshan_temple"]
DAY = date(2027, 5, 1)


def at(day: date, hh: int, mm: int = 0, ss: int = 0) -> float:
    """Epoch seconds of a city wall-clock time (Asia/Shanghai)."""
    return datetime.combine(day, time(hh, mm, ss), CITY_TZ).timestamp()


NEXT = DAY + timedelta(days=1)

# (entitlements, minted at, scanned at, admitted at Laoshan?)
TABLE = [
    ((), at(DAY, 9), at(DAY, 9, 1), False),
    (("stu", "hg"), at(DAY, 9), at(DAY, 9, 1), False),
    (("sap",), at(DAY, 9), at(DAY, 9, 1), True),
    (("sap",), at(DAY, 23, 59, 50), at(NEXT, 0, 0, 10), True),  # a pass has no day
    (("sen",), at(DAY, 9), at(DAY, 9, 1), True),
    (("dis",), at(DAY, 23, 59, 50), at(NEXT, 0, 0, 10), True),
    (("rla",), at(DAY, 9), at(DAY, 9, 1), True),
    (("rla",), at(DAY, 0, 0, 0), at(DAY, 23, 59, 59), True),  # first and last second of the day
    (("rla",), at(DAY, 23, 59, 50), at(DAY, 23, 59, 59), True),
    (("rla",), at(DAY, 23, 59, 50), at(NEXT, 0, 0, 10), False),  # D's reservation is not D+1's
    (("rla",), at(DAY, 23, 59, 59), at(NEXT, 0, 0, 0), False),
    (("rla",), at(NEXT, 0, 0, 5), at(DAY, 23, 59, 58), False),  # reader clock behind: still not D's
    (("rzt",), at(DAY, 9), at(DAY, 9, 1), False),  # another spot's reservation
    (("rjm", "rzt", "stu"), at(DAY, 9), at(DAY, 9, 1), False),
    (("rla", "rzt", "stu"), at(DAY, 9), at(DAY, 9, 1), True),
    (("rla",), at(DAY, 7, 59, 50), at(DAY, 8, 0, 10), True),  # crosses UTC midnight only
]


@pytest.mark.parametrize(("ent", "minted", "scanned", "expected"), TABLE)
def test_admission_table_at_laoshan(ent: tuple[str, ...], minted: float, scanned: float,
                                    expected: bool) -> None:
    assert admits(CONFIG, LAOSHAN, ent, issued_at=int(minted), scanned_at=scanned) is expected
    denial = entry_denial(CONFIG, LAOSHAN, ent, issued_at=int(minted), scanned_at=scanned)
    assert denial == (None if expected else "no_reservation")


def test_the_day_is_the_city_day_not_the_utc_day() -> None:
    late_minted, early_scanned = at(DAY, 23, 59, 50), at(NEXT, 0, 0, 10)
    assert int(late_minted) // 86400 == int(early_scanned) // 86400  # the same UTC date …
    assert not admits(CONFIG, LAOSHAN, ("rla",), issued_at=int(late_minted), scanned_at=early_scanned)
    before_utc_midnight, after_utc_midnight = at(DAY, 7, 59, 50), at(DAY, 8, 0, 10)
    assert int(before_utc_midnight) // 86400 != int(after_utc_midnight) // 86400  # … different ones
    assert admits(CONFIG, LAOSHAN, ("rla",), issued_at=int(before_utc_midnight), scanned_at=after_utc_midnight)


def test_free_categories_are_per_spot() -> None:
    config = ScenicConfig.from_config({"annual_pass_entitlements": ["sap"], "spots": [
        {"spot": "laoshan", "name": "崂山风景区", "daily_capacity": 1, "free_categories": ["dis"],
         "reservation_entitlement": "rla"}]})
    spot = config.spots["laoshan"]
    assert admits(config, spot, ("dis",), issued_at=int(at(DAY, 9)), scanned_at=at(DAY, 9))
    assert not admits(config, spot, ("sen",), issued_at=int(at(DAY, 9)), scanned_at=at(DAY, 9))


def test_a_spot_without_reservation_entitlement_admits_no_reservation() -> None:
    config = ScenicConfig.from_config({"annual_pass_entitlements": ["sap"], "spots": [
        {"spot": "laoshan", "name": "崂山风景区", "daily_capacity": 1}]})
    spot = config.spots["laoshan"]
    assert spot.reservation is None
    assert not admits(config, spot, ("rla",), issued_at=int(at(DAY, 9)), scanned_at=at(DAY, 9))
    assert admits(config, spot, ("sap",), issued_at=int(at(DAY, 9)), scanned_at=at(DAY, 9))


def test_closed_comes_before_no_reservation_and_before_an_admitting_entitlement() -> None:
    config = ScenicConfig.from_config({"annual_pass_entitlements": ["sap"], "spots": [
        {"spot": "laoshan", "name": "崂山风景区", "daily_capacity": 1, "hours": ["06:00", "18:00"],
         "reservation_entitlement": "rla"}]})
    spot = config.spots["laoshan"]
    for ent in ((), ("sap",), ("rla",)):
        assert entry_denial(config, spot, ent, issued_at=int(at(DAY, 5)), scanned_at=at(DAY, 5, 30)) == "closed"
    assert entry_denial(config, spot, (), issued_at=int(at(DAY, 9)), scanned_at=at(DAY, 9)) == "no_reservation"
    assert entry_denial(config, spot, ("rla",), issued_at=int(at(DAY, 9)), scanned_at=at(DAY, 9)) is None


def test_every_shipped_spot_has_its_own_reservation_entitlement() -> None:
    assert {s.spot: s.reservation for s in CONFIG.spots.values()} == {
        "laoshan": "rla", "zhanshan_temple": "rzt", "jimo_old_town": "rjm"}
    assert admits(CONFIG, ZHANSHAN, ("rzt",), issued_at=int(at(DAY, 9)), scanned_at=at(DAY, 10))


@pytest.mark.parametrize("spots", [
    [{"spot": "laoshan", "name": "x", "daily_capacity": 1, "reservation_entitlement": "rsv:laoshan"}],
    [{"spot": "laoshan", "name": "x", "daily_capacity": 1, "reservation_entitlement": "sap"}],
    [{"spot": "laoshan", "name": "x", "daily_capacity": 1, "reservation_entitlement": "rla"},
     {"spot": "taishan", "name": "y", "daily_capacity": 1, "reservation_entitlement": "rla"}],
])
def test_configuration_refuses_unknown_or_shared_reservation_entitlements(spots: list[dict[str, object]]) -> None:
    with pytest.raises(ValueError):
        ScenicConfig.from_config({"spots": spots})


def test_offline_readers_can_import_the_rule_without_flask_or_a_database() -> None:
    probe = ("import sys, app.scenes.scenic; "
             "print(sorted(m for m in ('flask', 'sqlalchemy', 'app.db') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
