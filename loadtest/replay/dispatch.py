"""The replay clock and the hand-offs between the simulated roles (gevent, inside locust).

A dispatcher greenlet releases each trace event at ``start + t / speed``. A rider's events are
kept in order: while one of them is in flight (the phone fetching a code, then the gate, kiosk or
offline reader using it), the rider's next events wait behind it, so a fast replay can never make
an exit overtake its entry. Released events go to the phones; a phone hands its fresh code on to a
gate (bus, metro, scenic), a kiosk (hall), or — for an offline bus — straight into the bus's
journal, as an offline reader would decide locally.
"""
from __future__ import annotations

import bisect
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import gevent
import gevent.event
from gevent.queue import Empty, Queue

from loadtest.replay.journal import Journals
from loadtest.traces.format import Event, Trace


@dataclass
class Outcomes:
    """What happened, for the end-of-run summary."""

    lag: list[float] = field(default_factory=list)  # seconds each event was picked up late
    done: int = 0
    unexpected: Counter[str] = field(default_factory=Counter)  # "expected → got"
    anomalies: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        lag = sorted(self.lag) or [0.0]
        pick = lambda q: lag[min(len(lag) - 1, int(q * len(lag)))]  # noqa: E731
        lines = [f"replay: {self.done} events done; pick-up lag p50 {pick(.5) * 1000:.0f} ms, "
                 f"p99 {pick(.99) * 1000:.0f} ms, max {lag[-1] * 1000:.0f} ms"]
        lines += [f"  unexpected outcome {what}: {n}" for what, n in self.unexpected.most_common()]
        lines += [f"  anomaly {kind}: {n}" for kind, n in self.anomalies.most_common()]
        return "\n".join(lines)


class Replay:
    """One trace replayed at ``speed``× real time, from trace second 0 up to ``until``."""

    def __init__(self, trace: Trace, speed: float, until: float | None = None,
                 upload_every: float = 60.0, batch: int = 500) -> None:
        self.trace, self.speed = trace, speed
        self.until = trace.header["end_s"] if until is None else until
        self.events = [e for e in trace.events if e.t <= self.until]
        self._times = [e.t for e in self.events]
        self.terminals = trace.terminals
        self.phones: Queue[Event] = Queue()
        self.gates: Queue[tuple[Event, str]] = Queue()
        self.kiosks: Queue[tuple[Event, str]] = Queue()
        self.journals = Journals(max(1.0, upload_every / speed), batch)
        self.outcomes = Outcomes()
        self.ready = gevent.event.Event()
        self.started_at: float | None = None
        self.dispatched = False
        self._waiting: dict[int, deque[Event]] = {}  # rider → events behind the one in flight

    def start(self) -> None:
        """Start the clock (after set-up) and the dispatcher."""
        self.started_at = time.monotonic()
        self.ready.set()
        gevent.spawn(self._dispatch)

    def due(self, event: Event) -> float:
        assert self.started_at is not None
        return self.started_at + event.t / self.speed

    def trace_now(self) -> float:
        """Trace seconds since 07:00 that have been replayed."""
        return 0.0 if self.started_at is None else (time.monotonic() - self.started_at) * self.speed

    def _dispatch(self) -> None:
        for event in self.events:
            delay = self.due(event) - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
            if event.rider in self._waiting:
                self._waiting[event.rider].append(event)
            else:
                self._waiting[event.rider] = deque()
                self.phones.put(event)
        self.dispatched = True

    def next_for_phone(self, timeout: float = 1.0) -> Event | None:
        try:
            event = self.phones.get(timeout=timeout)
        except Empty:
            return None
        self.outcomes.lag.append(max(0.0, time.monotonic() - self.due(event)))
        return event

    def finish(self, event: Event, got: str | None = None) -> None:
        """The event is done (``got``: the outcome, when it was not the expected one); release the
        rider's next event, if any."""
        self.outcomes.done += 1
        if got is not None and got != event.expect:
            self.outcomes.unexpected[f"{event.scene} {event.expect} → {got}"] += 1
        behind = self._waiting.get(event.rider)
        if behind:
            self.phones.put(behind.popleft())
        else:
            self._waiting.pop(event.rider, None)

    def finished(self) -> bool:
        """Every event released and done, every journal uploaded."""
        if not self.dispatched or self._waiting:
            return False
        self.journals.flush_all()
        return self.journals.empty()

    def users_for(self, trace_second: float, per_event_s: float = 0.25) -> int:
        """Simulated users to keep up with the trace around ``trace_second`` (Little's law: events/s
        × ``per_event_s`` of requests in flight), at least 2 per role."""
        upcoming = bisect.bisect_left(self._times, trace_second + 60) - \
            bisect.bisect_left(self._times, trace_second)
        return max(8, int(upcoming / 60 * self.speed * per_event_s * 4) + 4)
