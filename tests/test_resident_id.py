from __future__ import annotations

from datetime import date

import pytest

from app.registry import resident_id
from tests.ids import resident_id as make_id


def test_published_example_number_is_valid() -> None:
    # The worked example of GB 11643-1999: 11010519491231002X.
    assert resident_id.problems("11010519491231002X") == []


def test_wrong_check_character_is_refused() -> None:
    assert "the check character does not match" in resident_id.problems("110105194912310021")


@pytest.mark.parametrize("number, message", [
    ("1101051949123100", "must be 17 digits followed by a digit or X"),
    ("11010519491231002Y", "the last character must be a digit or X"),
    ("１１０１０５１９４９１２３１００２X", "must be 17 digits followed by a digit or X"),
])
def test_badly_formed_numbers_are_refused(number: str, message: str) -> None:
    assert message in resident_id.problems(number)


def test_impossible_or_future_birth_dates_are_refused() -> None:
    assert "the birth date is not a real date" in resident_id.problems(make_id(born="19900230"))
    future = make_id(born="20991231")
    assert "the birth date is not plausible" in resident_id.problems(future, today=date(2026, 11, 21))
    assert "the birth date is not plausible" in resident_id.problems(make_id(born="18891231"))


def test_unknown_region_is_refused() -> None:
    assert "the region code is not a valid administrative division" in resident_id.problems(make_id(region="990202"))


def test_mask_keeps_region_and_last_two_characters() -> None:
    assert resident_id.mask("11010519491231002X") == "110105**********2X"
