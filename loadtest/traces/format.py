"""The trace file: JSON lines, a header line first, then one event per line in time order.

See loadtest/traces/README.md for the fields. ``read`` parses and checks a file (``.gz`` too);
``write`` writes one; ``check`` says everything wrong with a trace, including events whose expected
outcome does not follow from the ones before (an exit with no open trip expected to pass).
"""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

FORMAT = "citycode-trace"
VERSION = 1
SCENES = ("bus", "metro", "scenic", "hall")
KINDS = {"bus": "bus", "metro": "metro", "scenic": "scenic", "hall": "hall"}
MODES = ("online", "offline")
OUTCOMES = {"bus": {"accept", "duplicate_tap"}, "metro": {"accept", "passback", "no_entry"},
            "scenic": {"accept", "no_reservation", "already_admitted"}, "hall": {"accept"}}


class TraceError(ValueError):
    """The file is not a well-formed trace."""


@dataclass(frozen=True)
class Event:
    """One scan: at ``t`` seconds after 07:00, ``rider`` shows a fresh code at ``terminal``."""

    t: float
    scene: str
    terminal: str
    rider: int
    expect: str  # "accept" or the deny reason the trace means to cause
    mode: str = "online"
    direction: str | None = None  # metro: entry / exit
    service: str | None = None  # hall: the service the number is for

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"t": self.t, "scene": self.scene, "terminal": self.terminal,
                                "rider": self.rider}
        if self.direction is not None:
            body["direction"] = self.direction
        if self.service is not None:
            body["service"] = self.service
        return body | {"mode": self.mode, "expect": self.expect}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Event:
        unknown = set(raw) - {"t", "scene", "terminal", "rider", "expect", "mode", "direction",
                              "service"}
        if unknown:
            raise TraceError(f"unknown event fields {sorted(unknown)}")
        try:
            return cls(float(raw["t"]), str(raw["scene"]), str(raw["terminal"]), int(raw["rider"]),
                       str(raw["expect"]), str(raw.get("mode", "online")), raw.get("direction"),
                       raw.get("service"))
        except (KeyError, TypeError, ValueError) as error:
            raise TraceError(f"bad event {raw!r}: {error}") from error


@dataclass
class Trace:
    """A header (``seed``, ``scale``, ``terminals``, ``riders``, ``counts`` …) and the events."""

    header: dict[str, Any]
    events: list[Event] = field(default_factory=list)

    @property
    def terminals(self) -> dict[str, dict[str, Any]]:
        """Trace terminal id → ``{kind, site, mode}``."""
        return {t["terminal"]: t for t in self.header["terminals"]}

    @property
    def riders(self) -> int:
        return int(self.header["riders"]["count"])

    @property
    def credentials(self) -> dict[str, list[int]]:
        """Credential (``student_card``, ``senior_card``, ``scenic_reservation:<spot>``) → riders."""
        return dict(self.header["riders"]["credentials"])


def _open(path: Path, mode: str) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return open(path, mode, encoding="utf-8")


def write(trace: Trace, path: Path) -> None:
    with _open(path, "w") as out:
        out.write(json.dumps(trace.header, ensure_ascii=False, separators=(",", ":")) + "\n")
        for event in trace.events:
            out.write(json.dumps(event.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n")


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with _open(path, "r") as source:
        for number, line in enumerate(source, 1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as error:
                    raise TraceError(f"line {number}: not JSON ({error})") from error


def read(path: Path) -> Trace:
    """Parse and check a trace file; ``TraceError`` naming the first problems if it is not one."""
    lines = _lines(Path(path))
    _, header = next(lines, (0, {}))
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise TraceError(f"not a {FORMAT} v{VERSION} file (header {str(header)[:80]})")
    trace = Trace(header, [Event.from_dict(raw) for _, raw in lines])
    problems = check(trace)
    if problems:
        raise TraceError("; ".join(problems[:5]) + (" …" if len(problems) > 5 else ""))
    return trace


def check(trace: Trace) -> list[str]:
    """Everything wrong with the trace: shape, order, references, and expected outcomes that do
    not follow from the rider's earlier events."""
    problems: list[str] = []
    terminals, last_t = trace.terminals, 0.0
    for n, e in enumerate(trace.events):
        where = f"event {n} (t={e.t}, rider {e.rider})"
        if e.t < last_t:
            problems.append(f"{where}: out of time order")
        last_t = e.t
        terminal = terminals.get(e.terminal)
        if e.scene not in SCENES or terminal is None or terminal["kind"] != KINDS[e.scene]:
            problems.append(f"{where}: scene {e.scene!r} at unknown or other-kind terminal")
            continue
        if e.expect not in OUTCOMES[e.scene] or e.mode not in MODES or e.mode != terminal["mode"]:
            problems.append(f"{where}: outcome {e.expect!r} or mode {e.mode!r} not possible here")
        if not 0 <= e.rider < trace.riders:
            problems.append(f"{where}: rider out of range")
        if (e.direction is not None) != (e.scene == "metro") or \
                e.direction not in (None, "entry", "exit") or (e.service is None) == (e.scene == "hall"):
            problems.append(f"{where}: direction/service do not fit the scene")
    return problems or list(_outcome_problems(trace.events, trace.credentials, terminals))


def _outcome_problems(events: Iterable[Event], credentials: dict[str, list[int]],
                      terminals: dict[str, dict[str, Any]]) -> Iterator[str]:
    """Replay the scene rules on the trace itself: each expected outcome must be what a correct
    server answers given the rider's earlier events."""
    from loadtest.traces.rules import Expectation

    rules = Expectation(credentials)
    for n, event in enumerate(events):
        wanted = rules.outcome(event, terminals[event.terminal]["site"].get("spot"))
        if wanted != event.expect:
            yield f"event {n} (t={event.t}, rider {event.rider}, {event.scene}): expects " \
                  f"{event.expect}, the rules give {wanted}"
