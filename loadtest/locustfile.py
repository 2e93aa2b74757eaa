"""Replay a morning-rush trace against a CityCode server on THIS machine (loopback only).

    .venv/bin/python -m loadtest.traces.generate --out var/rush.jsonl --scale 0.01 --seed 1
    CITYCODE_ADMIN_TOKEN=$(cat var/admin-token) .venv/bin/locust -f loadtest/locustfile.py \\
        --headless --host http://127.0.0.1:8000 --trace var/rush.jsonl --speed 10 \\
        --csv var/rush --html var/rush.html

Set-up (before the clock starts) enrols the trace's riders, issues their student/senior cards and
today's scenic reservations, and registers its terminals, all through the admin and issuer APIs.
Then ``TraceReplay`` releases each event at ``t / speed`` seconds and sizes the user pool to the
rush; the run ends by itself once every event is done and every journal uploaded. Roles:
``Phone`` fetches the rider's fresh code (``POST /v1/me/code``); ``Gate`` verifies it at a bus,
metro gate or turnstile (``POST /v1/verify``); ``Kiosk`` takes a hall number; ``Reader`` uploads
terminals' journals (``POST /v1/taps``). An answer other than the one the trace expects is a
failure. Options: ``--trace`` (or CITYCODE_TRACE), ``--speed`` (10), ``--until`` (a trace second
to stop releasing at), ``--upload-every`` (trace seconds between a terminal's uploads, 60).
"""
from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import gevent
from locust import FastHttpUser, LoadTestShape, constant, events, task

from loadtest.replay.dispatch import Replay
from loadtest.replay.setup import Cast, prepare
from loadtest.traces.format import Event, read

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
# Compressing time compresses travel: at speed > 1 a metro trip looks faster than any train.
TOLERATED_WHEN_FAST = {"impossible_travel"}
log = logging.getLogger("citycode.replay")
state: dict[str, Any] = {}  # "replay": Replay, "cast": Cast


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--trace", env_var="CITYCODE_TRACE", default="", help="trace file to replay")
    parser.add_argument("--speed", env_var="CITYCODE_SPEED", type=float, default=10.0,
                        help="replay speed factor (10: two hours in twelve minutes)")
    parser.add_argument("--until", type=float, default=None, help="last trace second to release")
    parser.add_argument("--upload-every", type=float, default=60.0,
                        help="trace seconds a terminal's journal waits before upload")
    parser.add_argument("--setup-workers", type=int, default=8, help="parallel set-up requests")


@events.init.add_listener
def _load(environment: Any, **_kwargs: Any) -> None:
    options = environment.parsed_options
    if options is None:  # imported by a tool, not run by locust
        return
    if urlparse(environment.host or "").hostname not in LOOPBACK:
        raise SystemExit(f"refusing to load-test {environment.host!r}: loopback addresses only")
    if not options.trace or options.speed <= 0:
        raise SystemExit("--trace FILE (or CITYCODE_TRACE) and a positive --speed are required")
    state["replay"] = Replay(read(Path(options.trace)), options.speed, options.until,
                             options.upload_every)


@events.test_start.add_listener
def _setup(environment: Any, **_kwargs: Any) -> None:
    replay: Replay = state["replay"]
    token = os.environ.get("CITYCODE_ADMIN_TOKEN")
    if not token:
        raise SystemExit("CITYCODE_ADMIN_TOKEN must be set (the server's admin token)")
    log.info("set-up: %d riders, %d terminals", replay.trace.riders, len(replay.terminals))
    state["cast"] = prepare(replay.trace, environment.host, token,
                            workers=environment.parsed_options.setup_workers)
    log.info("set-up done; replaying %d events at %g× speed", len(replay.events), replay.speed)
    replay.start()


@events.test_stop.add_listener
def _summary(environment: Any, **_kwargs: Any) -> None:
    if "replay" in state:
        log.info("%s", state["replay"].outcomes.summary())


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class _Role(FastHttpUser):
    abstract = True
    wait_time = constant(0)

    @property
    def replay(self) -> Replay:
        return state["replay"]  # type: ignore[no-any-return]

    @property
    def cast(self) -> Cast:
        return state["cast"]  # type: ignore[no-any-return]

    def terminal(self, event: Event) -> dict[str, str]:
        return _bearer(self.cast.terminal_tokens[event.terminal])


class Phone(_Role):
    """A rider's phone: fetches a fresh code and shows it where the event happens."""

    weight = 4

    @task
    def show_code(self) -> None:
        event = self.replay.next_for_phone()
        if event is None:
            return
        with self.client.post("/v1/me/code", headers=_bearer(self.cast.app_tokens[event.rider]),
                              name="POST /v1/me/code", catch_response=True) as response:
            if response.status_code != 201:
                response.failure(f"HTTP {response.status_code}")
                self.replay.finish(event, f"HTTP {response.status_code}")
                return
            code = response.json()["code"]
        if event.scene == "hall":
            self.replay.kiosks.put((event, code))
        elif event.mode == "offline":  # the bus reader decides locally and journals it
            decision, reason = ("accept", "ok") if event.expect == "accept" else ("deny", event.expect)
            self.replay.journals.add(event.terminal, code, decision, reason, mode="offline")
            self.replay.finish(event)
        else:
            self.replay.gates.put((event, code))


class Gate(_Role):
    """Bus readers, metro gates and scenic turnstiles verifying online."""

    weight = 4

    @task
    def verify(self) -> None:
        try:
            event, code = self.replay.gates.get(timeout=1)
        except gevent.queue.Empty:
            return
        body = {"code": code, "request_id": uuid.uuid4().hex}
        label = event.scene
        if event.direction is not None:
            body["direction"] = event.direction
            label = f"metro {event.direction}"
        got = None
        with self.client.post("/v1/verify", json=body, headers=self.terminal(event),
                              name=f"POST /v1/verify [{label}]", catch_response=True) as response:
            if response.status_code != 200:
                got = f"HTTP {response.status_code}"
                response.failure(got)
            else:
                answer = response.json()
                got = "accept" if answer["decision"] == "accept" else answer["reason"]
                if got != event.expect:
                    response.failure(f"expected {event.expect}, got {got}")
                self.replay.journals.add(event.terminal, code, answer["decision"], answer["reason"],
                                         mode="online", direction=event.direction,
                                         request_id=body["request_id"])
        self.replay.finish(event, got)


class Kiosk(_Role):
    """Hall kiosks taking queue numbers."""

    weight = 1

    @task
    def take_number(self) -> None:
        try:
            event, code = self.replay.kiosks.get(timeout=1)
        except gevent.queue.Empty:
            return
        hall = self.replay.terminals[event.terminal]["site"]["hall"]
        with self.client.post(f"/v1/halls/{hall}/tickets", headers=self.terminal(event),
                              json={"code": code, "service": event.service,
                                    "request_id": uuid.uuid4().hex},
                              name="POST /v1/halls/{hall}/tickets", catch_response=True) as response:
            if response.status_code == 201:  # a number; "existing": the one already waiting, again
                got = "existing" if response.json().get("existing") else "accept"
            elif response.status_code == 200:  # a deny decision about the code
                got = response.json()["reason"]
            else:
                got = f"HTTP {response.status_code}"
            if got != event.expect:
                response.failure(f"expected {event.expect}, got {got}")
        self.replay.finish(event, got)


class Reader(_Role):
    """Terminals uploading their journals (online and offline decisions) in batches."""

    weight = 1

    @task
    def upload(self) -> None:
        claimed = self.replay.journals.claim()
        if claimed is None:
            gevent.sleep(0.2)
            return
        terminal, records = claimed
        try:
            with self.client.post("/v1/taps", json={"records": records},
                                  headers=_bearer(self.cast.terminal_tokens[terminal]),
                                  name="POST /v1/taps", catch_response=True) as response:
                if response.status_code != 200:
                    response.failure(f"HTTP {response.status_code}")
                    return
                answer = response.json()
                kinds = [a["kind"] for a in answer.get("anomalies", [])]
                self.replay.outcomes.anomalies.update(kinds)
                tolerated = TOLERATED_WHEN_FAST if self.replay.speed > 1 else set()
                if answer["stored"] != len(records) or answer["duplicates"] \
                        or set(kinds) - tolerated:
                    response.failure(f"stored {answer['stored']}/{len(records)}, duplicates "
                                     f"{answer['duplicates']}, anomalies {sorted(set(kinds))}")
        finally:
            self.replay.journals.done(terminal)


class TraceReplay(LoadTestShape):
    """Users follow the rush (never fewer: a stopped user would drop the event it holds); the
    test ends when the trace is done."""

    users = 8

    def tick(self) -> tuple[int, float] | None:
        replay: Replay | None = state.get("replay")
        if replay is None or not replay.ready.is_set():
            return self.users, 8  # constant while set-up runs (a change would restart spawning)
        if replay.finished():
            return None
        self.users = max(self.users, replay.users_for(replay.trace_now()))
        return self.users, 20
