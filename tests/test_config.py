"""Settings read from the environment: defaults, values and refused values."""
from __future__ import annotations

import pytest

from app.config import ConfigError, Settings


def test_the_disclosure_lifetime_defaults_to_five_minutes() -> None:
    assert Settings.from_env({}).disclosure_ttl_seconds == 300


@pytest.mark.parametrize(("raw", "seconds"), [("30", 30), ("120", 120), ("3600", 3600), ("", 300)])
def test_the_disclosure_lifetime_is_read_from_the_environment(raw: str, seconds: int) -> None:
    assert Settings.from_env({"CITYCODE_DISCLOSURE_TTL_SECONDS": raw}).disclosure_ttl_seconds == seconds


@pytest.mark.parametrize("raw", ["29", "3601", "0", "-300", "five minutes", "300.5"])
def test_a_disclosure_lifetime_out_of_range_or_not_an_integer_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="CITYCODE_DISCLOSURE_TTL_SECONDS"):
        Settings.from_env({"CITYCODE_DISCLOSURE_TTL_SECONDS": raw})
