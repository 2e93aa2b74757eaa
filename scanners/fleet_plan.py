"""A fleet run's script of trouble: which readers lose the network when, and which restart.

Two spellings, the same events:

- options: ``--outage "reader:3-5 at 10s for 20s"`` (readers 3, 4 and 5 offline from 10 s into the
  run for 20 s) and ``--restart "reader:2 at 15s"``; a time without ``s`` counts the reader's own
  scans instead (``"reader:1 at 5 for 10"``: offline for its scans 5..14), which makes a run
  repeatable whatever the machine's speed;
- a JSON script: ``{"events": [{"action": "outage", "readers": [3, 4, 5], "at": "10s", "for": "20s"},
  {"action": "restart", "readers": [2], "at": 30}]}``.

Readers are numbered from 1. A reader is offline while any of its outages covers the moment.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class PlanError(ValueError):
    """An outage or restart that cannot be understood."""


@dataclass(frozen=True)
class Moment:
    """A point or a length in a run: seconds of wall time, or a count of the reader's scans."""

    value: float
    seconds: bool

    @classmethod
    def parse(cls, text: str | int | float) -> Moment:
        raw = str(text).strip().lower()
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s?)", raw)
        if not match:
            raise PlanError(f"{text!r} is neither seconds (\"10s\") nor a scan count (\"10\")")
        return cls(float(match.group(1)), bool(match.group(2)))

    def reached(self, elapsed_s: float, scans: int) -> bool:
        return (elapsed_s if self.seconds else scans) >= self.value


@dataclass(frozen=True)
class Outage:
    readers: frozenset[int]
    start: Moment
    length: Moment

    def __post_init__(self) -> None:
        if self.start.seconds != self.length.seconds:
            raise PlanError("an outage's start and length use one unit: both seconds or both scans")

    def covers(self, reader: int, elapsed_s: float, scans: int) -> bool:
        now = elapsed_s if self.start.seconds else scans
        return reader in self.readers and self.start.value <= now < self.start.value + self.length.value


@dataclass(frozen=True)
class Restart:
    readers: frozenset[int]
    at: Moment


@dataclass
class Plan:
    outages: list[Outage] = field(default_factory=list)
    restarts: list[Restart] = field(default_factory=list)

    def offline(self, reader: int, elapsed_s: float, scans: int) -> bool:
        """True while one of ``reader``'s outages covers this moment."""
        return any(o.covers(reader, elapsed_s, scans) for o in self.outages)

    def restarts_due(self, reader: int, elapsed_s: float, scans: int, done: set[int]) -> list[int]:
        """Indexes of restarts now due for ``reader`` and not yet in ``done`` (the caller adds them)."""
        return [i for i, r in enumerate(self.restarts)
                if i not in done and reader in r.readers and r.at.reached(elapsed_s, scans)]

    def readers(self) -> set[int]:
        return {n for o in self.outages for n in o.readers} | {n for r in self.restarts for n in r.readers}


def parse_readers(text: str) -> frozenset[int]:
    """``reader:3-5,7`` (or just ``3-5,7``) → {3, 4, 5, 7}."""
    body = text.strip().removeprefix("reader:").removeprefix("readers:")
    found: set[int] = set()
    for part in filter(None, (p.strip() for p in body.split(","))):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise PlanError(f"{text!r}: readers are numbers or ranges, e.g. reader:3-5,7")
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        if low < 1 or high < low:
            raise PlanError(f"{text!r}: readers are numbered from 1, ranges go upwards")
        found.update(range(low, high + 1))
    if not found:
        raise PlanError(f"{text!r} names no reader")
    return frozenset(found)


def parse_outage(text: str) -> Outage:
    match = re.fullmatch(r"\s*(\S+)\s+at\s+(\S+)\s+for\s+(\S+)\s*", text)
    if not match:
        raise PlanError(f"{text!r}: write an outage as \"reader:3-5 at 10s for 20s\"")
    return Outage(parse_readers(match.group(1)), Moment.parse(match.group(2)), Moment.parse(match.group(3)))


def parse_restart(text: str) -> Restart:
    match = re.fullmatch(r"\s*(\S+)\s+at\s+(\S+)\s*", text)
    if not match:
        raise PlanError(f"{text!r}: write a restart as \"reader:2 at 15s\"")
    return Restart(parse_readers(match.group(1)), Moment.parse(match.group(2)))


def from_script(script: dict[str, Any]) -> Plan:
    """The plan in a JSON script's ``events``."""
    plan = Plan()
    for event in script.get("events", []):
        try:
            readers = parse_readers(",".join(str(r) for r in event["readers"]))
            if event["action"] in ("outage", "offline"):
                plan.outages.append(Outage(readers, Moment.parse(event["at"]), Moment.parse(event["for"])))
            elif event["action"] == "restart":
                plan.restarts.append(Restart(readers, Moment.parse(event["at"])))
            else:
                raise PlanError(f"unknown action {event['action']!r} (outage or restart)")
        except (KeyError, TypeError) as exc:
            raise PlanError(f"event {event!r}: missing or wrong field ({exc})") from None
    return plan


def build(outages: tuple[str, ...] = (), restarts: tuple[str, ...] = (), script: Path | None = None) -> Plan:
    """One plan from the options and an optional JSON script file."""
    plan = Plan()
    if script is not None:
        try:
            plan = from_script(json.loads(script.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise PlanError(f"{script}: {exc}") from None
    plan.outages += [parse_outage(o) for o in outages]
    plan.restarts += [parse_restart(r) for r in restarts]
    return plan
