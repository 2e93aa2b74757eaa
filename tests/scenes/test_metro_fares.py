"""Metro fares: bands by stops travelled, the cap, same-station exits, entitlement discounts."""
from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.city import load
from app.scenes.metro.fares import Discount, Fare, FareError, FareTable

SHIPPED = FareTable.from_config(load("metro")["fares"])


def table(**changes: Any) -> FareTable:
    config: dict[str, Any] = {"base_cents": 200, "base_stops": 6, "step_cents": 100, "step_stops": 5,
                              "max_cents": 700, "same_station_cents": 200, "discounts": [
                                  {"category": "disabled", "entitlement": "dis", "percent_off": 100},
                                  {"category": "senior", "entitlement": "sen", "percent_off": 100},
                                  {"category": "student", "entitlement": "stu", "percent_off": 50}]}
    config.update(changes)
    return FareTable.from_config(config)


def test_shipped_table_is_the_documented_one() -> None:
    assert SHIPPED == table()


@pytest.mark.parametrize(("stops", "cents"), [
    (1, 200), (6, 200), (7, 300), (11, 300), (12, 400), (16, 400), (17, 500), (22, 600),
    (26, 600), (27, 700), (36, 700), (500, 700)])
def test_full_fare_rises_one_yuan_per_five_stops_after_six_up_to_seven_yuan(stops: int, cents: int) -> None:
    assert SHIPPED.full_fare(stops) == cents
    assert SHIPPED.quote(stops, ()) == Fare(cents, "full")


def test_exit_at_the_entry_station_pays_the_same_station_fare() -> None:
    assert SHIPPED.full_fare(0) == 200
    assert table(same_station_cents=0).quote(0, ()) == Fare(0, "full")
    assert table(same_station_cents=350).quote(0, ("stu",)) == Fare(175, "student")


def test_same_station_fare_defaults_to_the_base_fare() -> None:
    config = dict(load("metro")["fares"])
    del config["same_station_cents"]
    assert FareTable.from_config(config).full_fare(0) == config["base_cents"]


def test_unknown_route_pays_the_cap() -> None:
    assert SHIPPED.full_fare(None) == 700


def test_student_pays_half() -> None:
    assert SHIPPED.quote(11, ("stu",)) == Fare(150, "student")
    assert SHIPPED.quote(30, ("stu", "hg")) == Fare(350, "student")


@pytest.mark.parametrize(("ent", "category"), [(("sen",), "senior"), (("dis",), "disabled"),
                                               (("sen", "dis"), "disabled"), (("stu", "sen"), "senior")])
def test_seniors_and_disabled_riders_travel_free_and_the_cheapest_category_wins(
        ent: tuple[str, ...], category: str) -> None:
    assert SHIPPED.quote(20, ent) == Fare(0, category)


def test_entitlements_without_a_discount_pay_full_fare() -> None:
    assert SHIPPED.quote(8, ("sap", "hg")) == Fare(300, "full")


def test_discounts_round_down_in_the_riders_favour() -> None:
    odd = table(base_cents=250, max_cents=250,
                discounts=[{"category": "youth", "entitlement": "yth", "percent_off": 33}])
    assert odd.quote(3, ("yth",)) == Fare(167, "youth")  # 250 * 0.67 = 167.5


def test_a_zero_discount_never_beats_full_fare_on_a_tie() -> None:
    assert table(discounts=[{"category": "staff", "entitlement": "stf", "percent_off": 0}]).quote(
        3, ("stf",)) == Fare(200, "full")


@given(stops=st.integers(min_value=1, max_value=200), ent=st.sets(st.sampled_from(["stu", "sen", "dis", "sap"])))
def test_fares_are_bounded_monotone_and_discounts_never_cost_more(stops: int, ent: set[str]) -> None:
    fare = SHIPPED.quote(stops, ent)
    assert 0 <= fare.amount_cents <= SHIPPED.full_fare(stops) <= SHIPPED.max_cents
    assert SHIPPED.full_fare(stops) <= SHIPPED.full_fare(stops + 1)
    assert SHIPPED.full_fare(stops) >= SHIPPED.base_cents


@pytest.mark.parametrize("changes", [
    {"base_cents": -1}, {"step_stops": 0}, {"base_stops": -1}, {"max_cents": 100},
    {"base_cents": 2.5}, {"base_cents": "200"},
    {"discounts": [{"category": "full", "entitlement": "stu", "percent_off": 50}]},
    {"discounts": [{"category": "a", "entitlement": "stu", "percent_off": 50},
                   {"category": "a", "entitlement": "sen", "percent_off": 100}]},
    {"discounts": [{"category": "a", "entitlement": "stu", "percent_off": 101}]},
    {"discounts": [{"category": "a", "entitlement": "stu"}]},
], ids=lambda c: ",".join(c))
def test_bad_fare_tables_fail_at_start_up(changes: dict[str, Any]) -> None:
    with pytest.raises(FareError):
        table(**changes)


def test_missing_fare_table_fails_at_start_up() -> None:
    with pytest.raises(FareError):
        FareTable.from_config(None)
    with pytest.raises(FareError):
        FareTable.from_config({"base_cents": 200})


def test_discount_is_plain_data() -> None:
    assert SHIPPED.discounts[-1] == Discount("student", "stu", 50)
