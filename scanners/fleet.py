"""Fleet mode: many readers, one thread each, against one service, with scripted outages and
restarts; at the end every journal is uploaded and the run summed up.

Riders are the citizens given: each scan takes one at random, fetches their current code as the
phone shows it (``/v1/me/code.png``, decoded with zxing-cpp) or, with ``use_codes``, as a string
(``POST /v1/me/code``, for throughput). Metro gates take a rider's direction from the fleet's own
idea of who is inside (entry if outside, exit if inside). An outage makes the reader decide
offline and hold its uploads; a restart closes the reader and opens it again from its data dir.
"""
from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import requests

from scanners import console, decode
from scanners.fleet_plan import Plan
from scanners.provision import ApiError, CityApi, Citizen, Terminal

FINAL_UPLOAD_ROUNDS = 5


@dataclass
class FleetConfig:
    base_url: str
    terminals: list[Terminal]
    citizens: list[Citizen]
    data_root: Path
    scans_per_reader: int = 50
    plan: Plan = field(default_factory=Plan)
    use_codes: bool = False
    upload_every: int = 25
    seed: int = 7


@dataclass
class FleetSummary:
    readers: int = 0
    scans: int = 0
    elapsed_s: float = 0.0
    by_reason: Counter[str] = field(default_factory=Counter)
    by_mode: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    restarts: int = 0
    stored: int = 0
    duplicates: int = 0
    pending: int = 0
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    upload_errors: dict[int, str] = field(default_factory=dict)
    totals_ms: list[float] = field(default_factory=list)

    @property
    def decisions(self) -> int:
        return sum(self.by_reason.values())

    def to_dict(self) -> dict[str, Any]:
        ordered = sorted(self.totals_ms)
        return {"readers": self.readers, "scans": self.scans, "decisions": self.decisions,
                "elapsed_s": round(self.elapsed_s, 2), "by_reason": dict(self.by_reason.most_common()),
                "by_mode": dict(self.by_mode), "by_kind": dict(self.by_kind), "errors": self.errors,
                "restarts": self.restarts, "upload_errors": dict(self.upload_errors), "uploaded": {"stored": self.stored, "duplicates": self.duplicates},
                "pending": self.pending, "anomalies": self.anomalies,
                "anomalies_by_kind": dict(Counter(a.get("kind", "?") for a in self.anomalies)),
                "image_to_decision_ms": {"p50": _quantile(ordered, 0.50), "p99": _quantile(ordered, 0.99)}}


def _quantile(ordered: list[float], q: float) -> float | None:
    """The ``q`` quantile of sorted values (nearest rank), or None when there are none."""
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


class _Metro:
    """Who the fleet believes is inside the metro, and where they entered."""

    def __init__(self) -> None:
        self.inside: dict[str, str] = {}
        self.lock = threading.Lock()

    def direction(self, citizen: Citizen, station: str) -> str:
        with self.lock:
            if citizen.citizen_id in self.inside:
                del self.inside[citizen.citizen_id]
                return "exit"
            self.inside[citizen.citizen_id] = station
            return "entry"


class _Worker:
    """One reader and its share of the run."""

    def __init__(self, number: int, terminal: Terminal, config: FleetConfig, metro: _Metro,
                 summary: FleetSummary, lock: threading.Lock, tick: Callable[[], None]) -> None:
        from scanners.reader import Reader

        self.number, self.terminal, self.config = number, terminal, config
        self.metro, self.summary, self.lock, self.tick = metro, summary, lock, tick
        self.data_dir = config.data_root / f"reader-{number:03d}"
        self.reader = Reader.enrol(self.data_dir, config.base_url, terminal.token)
        self.kind = console.reader_kind(self.reader) or terminal.kind
        self.rng = random.Random(config.seed * 1000 + number)
        self.session = requests.Session()
        self.api = CityApi(config.base_url, session=self.session)
        self.restarts_done: set[int] = set()

    def run(self, started: float) -> None:
        """This reader's scans; an unexpected failure ends only this reader and is reported."""
        try:
            self._run(started)
        except Exception as exc:  # noqa: BLE001 - shown in the summary's errors, never swallowed
            with self.lock:
                self.summary.errors.append(f"reader {self.number} stopped: {type(exc).__name__}: {exc}")

    def _run(self, started: float) -> None:
        for scans in range(self.config.scans_per_reader):
            elapsed = time.monotonic() - started
            for due in self.config.plan.restarts_due(self.number, elapsed, scans, self.restarts_done):
                self.restarts_done.add(due)
                self.restart()
            offline = self.config.plan.offline(self.number, elapsed, scans)
            self.scan_once(offline)
            if not offline and self.config.upload_every and (scans + 1) % self.config.upload_every == 0:
                self.upload_quietly()
            self.tick()

    def restart(self) -> None:
        """Close the reader and open it again from its data dir, as after a power cut."""
        from scanners.reader import Reader

        self.reader.close()
        self.reader = Reader.open(self.data_dir)
        with self.lock:
            self.summary.restarts += 1

    def scan_once(self, offline: bool) -> None:
        citizen = self.rng.choice(self.config.citizens)
        direction = self.metro.direction(citizen, self.terminal.site.get("station", "")) if self.kind == "metro" else None
        try:
            if self.config.use_codes:
                text, decode_ms = self.api.code(citizen), 0.0
            else:
                image = decode.decode_png(decode.fetch_code_png(self.config.base_url, citizen.app_token, self.session))
                text, decode_ms = image.text, image.decode_ms
        except (decode.DecodeError, decode.FetchError, ApiError, requests.RequestException) as exc:
            with self.lock:
                self.summary.errors.append(f"reader {self.number}: {exc}")
            return
        before = time.perf_counter()
        decided = self.reader.scan(text, direction=direction, offline=offline)
        total_ms = decode_ms + (time.perf_counter() - before) * 1000.0
        with self.lock:
            self.summary.scans += 1
            self.summary.by_reason[decided.reason] += 1
            self.summary.by_mode[getattr(decided, "mode", "?")] += 1
            self.summary.by_kind[self.kind] += 1
            self.summary.totals_ms.append(total_ms)

    def upload_quietly(self) -> None:
        """A routine upload while online; a failure leaves the records pending for the next try."""
        try:
            self.record_upload(self.reader.upload())
        except Exception as exc:  # noqa: BLE001 - the final upload reports what is left
            with self.lock:
                self.summary.errors.append(f"reader {self.number} upload: {type(exc).__name__}")

    def record_upload(self, result: Any) -> None:
        body = console.as_dict(result)
        with self.lock:
            self.summary.stored += int(body.get("stored", 0))
            self.summary.duplicates += int(body.get("duplicates", 0))
            self.summary.anomalies += list(body.get("anomalies", []) or [])
            if body.get("error"):
                self.summary.upload_errors[self.number] = str(body["error"])
            else:
                self.summary.upload_errors.pop(self.number, None)

    def finish(self) -> None:
        """Upload until nothing is pending (a few rounds), then close."""
        try:
            for _ in range(FINAL_UPLOAD_ROUNDS):
                if self.reader.pending() == 0:
                    break
                self.upload_quietly()
            with self.lock:
                self.summary.pending += self.reader.pending()
        finally:
            self.reader.close()
            self.session.close()


def run_fleet(config: FleetConfig, admin: CityApi | None = None,
              progress: Callable[[int], Any] | None = None) -> FleetSummary:
    """Run every reader in its own thread; upload all journals; fetch anomalies if ``admin``."""
    summary, lock, metro = FleetSummary(readers=len(config.terminals)), threading.Lock(), _Metro()
    tick = (lambda: progress(1)) if progress else (lambda: None)
    workers = [_Worker(n, t, config, metro, summary, lock, tick) for n, t in enumerate(config.terminals, start=1)]
    started = time.monotonic()
    threads = [threading.Thread(target=w.run, args=(started,), name=f"reader-{w.number}") for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for worker in workers:
        worker.finish()
    summary.elapsed_s = time.monotonic() - started
    if admin is not None and admin.admin_token:
        try:
            summary.anomalies = admin.anomalies()
        except (ApiError, requests.RequestException) as exc:
            summary.errors.append(f"anomalies not read: {exc}")
    return summary
