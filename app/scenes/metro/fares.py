"""Metro fares: a full fare banded by stops travelled, and entitlement discounts off it.

Full fare: ``base_cents`` for up to ``base_stops`` stops, plus ``step_cents`` for every further
``step_stops`` stops or part of them, never more than ``max_cents``. Leaving at the entry station
costs ``same_station_cents``; a route the network cannot price (a station renamed between entry
and exit) costs ``max_cents``. A discount applies when the code carries its entitlement; the rider
pays the cheapest applicable category ("full" always applies; first listed wins a tie), and
percentages round down — in the rider's favour.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

FULL = "full"


class FareError(ValueError):
    """The fare table cannot be used."""


@dataclass(frozen=True, slots=True)
class Discount:
    category: str
    entitlement: str
    percent_off: int


@dataclass(frozen=True, slots=True)
class Fare:
    amount_cents: int
    category: str


@dataclass(frozen=True)
class FareTable:
    base_cents: int
    base_stops: int
    step_cents: int
    step_stops: int
    max_cents: int
    same_station_cents: int
    discounts: tuple[Discount, ...] = ()

    def __post_init__(self) -> None:
        amounts = (self.base_cents, self.step_cents, self.max_cents, self.same_station_cents)
        if any(type(n) is not int for n in (*amounts, self.base_stops, self.step_stops)):
            raise FareError("fare amounts and stop counts must be integers")
        if min(amounts) < 0 or self.base_stops < 0 or self.step_stops < 1:
            raise FareError("fare amounts must be >= 0 cents, base_stops >= 0, step_stops >= 1")
        if self.max_cents < self.base_cents:
            raise FareError("max_cents must be at least base_cents")
        categories = [d.category for d in self.discounts]
        if FULL in categories or len(set(categories)) != len(categories):
            raise FareError(f"discount categories must be unique and not {FULL!r}")
        for d in self.discounts:
            if type(d.percent_off) is not int or not 0 <= d.percent_off <= 100:
                raise FareError(f"{d.category}: percent_off must be an integer 0..100")
            if not d.category or not d.entitlement:
                raise FareError("a discount needs a category and an entitlement")

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> FareTable:
        """Build from ``metro.json``'s ``fares`` object; a bad table fails at start-up."""
        if not isinstance(config, Mapping):
            raise FareError("the metro fare table must be an object")
        try:
            discounts = tuple(Discount(str(d["category"]), str(d["entitlement"]), d["percent_off"])
                              for d in config.get("discounts", ()))
            return cls(config["base_cents"], config["base_stops"], config["step_cents"],
                       config["step_stops"], config["max_cents"],
                       config.get("same_station_cents", config["base_cents"]), discounts)
        except (KeyError, TypeError, AttributeError) as exc:
            raise FareError(f"metro fare table is incomplete: {exc!r}") from None

    def full_fare(self, stops: int | None) -> int:
        """The undiscounted fare for a trip of ``stops`` stops (``None``: route unknown)."""
        if stops is None:
            return self.max_cents
        if stops == 0:
            return self.same_station_cents
        extra = max(0, stops - self.base_stops)
        steps = -(-extra // self.step_stops)  # ceiling division: a part of a step counts
        return min(self.max_cents, self.base_cents + steps * self.step_cents)

    def quote(self, stops: int | None, entitlements: Iterable[str]) -> Fare:
        """What this rider pays: the cheapest category their entitlements allow."""
        full = self.full_fare(stops)
        held = set(entitlements)
        best = Fare(full, FULL)
        for d in self.discounts:
            if d.entitlement in held:
                amount = full * (100 - d.percent_off) // 100
                if amount < best.amount_cents:
                    best = Fare(amount, d.category)
        return best
