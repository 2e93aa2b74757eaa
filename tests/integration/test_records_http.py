"""Scan records through a real `citycode serve`: the master runs the record writer as a supervised
child; history shows scans once it drained them; a SIGKILL of the writer or of Redis during load
leaves every record in SQL exactly once (Redis: none lost beyond the AOF's last second)."""
from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from tests.helpers import bearer
from tests.ids import resident_id

if TYPE_CHECKING:
    from conftest import Server

pytestmark = pytest.mark.slow

AOF_WINDOW_SECONDS = 2.0  # appendfsync everysec: up to ~1 s of writes (plus the fsync in flight)


def _scan_rows(server: "Server") -> tuple[int, int]:
    """(scan rows, distinct record ids) in the server's SQLite file."""
    with sqlite3.connect(server.data_dir / "citycode.sqlite3") as db:
        return db.execute("SELECT count(*), count(DISTINCT record_id) FROM audit_log "
                          "WHERE action = 'scan'").fetchone()  # type: ignore[no-any-return]


def _wait_drained(server: "Server", timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        metrics = server.fresh("GET", "/metrics").text
        if "citycode_records_pending 0.0" in metrics:
            return
        assert time.monotonic() < deadline, "the writer did not drain the stream:\n" + server.stderr_tail()
        time.sleep(0.1)


class Load:
    """Threads scanning fresh codes at a hall terminal; every answer kept with its time."""

    def __init__(self, server: "Server", threads: int = 3) -> None:
        admin = server.admin_headers()
        citizen = server.request("POST", "/v1/admin/citizens", headers=admin,
                                 json={"name": "李雷", "id_number": resident_id()}).json()
        gate = server.request("POST", "/v1/admin/terminals", headers=admin,
                              json={"kind": "hall", "site": {"hall": "city"}}).json()
        self.server, self.app = server, bearer(citizen["app_token"])
        self.gate = bearer(gate["terminal_token"])
        self.answers: list[tuple[float, str]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        import requests

        with requests.Session() as session:
            while not self.stop.is_set():
                try:
                    code = session.post(self.server.url("/v1/me/code"), headers=self.app, timeout=5).json()["code"]
                    body = session.post(self.server.url("/v1/verify"), headers=self.gate,
                                        json={"code": code}, timeout=5).json()
                except (requests.RequestException, KeyError, ValueError):
                    continue
                self.answers.append((time.time(), body["reason"]))

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)

    def recorded(self) -> list[float]:
        """Times of the answers that were recorded (a `degraded` answer cannot be)."""
        return [at for at, reason in self.answers if reason != "degraded"]


def test_writer_is_a_supervised_child_and_history_shows_drained_scans(server: "Server") -> None:
    writer = server.writer_pid()
    assert writer is not None and writer not in server.worker_pids()
    citizen = server.request("POST", "/v1/admin/citizens", headers=server.admin_headers(),
                             json={"name": "王芳", "id_number": resident_id()}).json()
    gate = server.request("POST", "/v1/admin/terminals", headers=server.admin_headers(),
                          json={"kind": "bus", "site": {"line": "321", "vehicle": "鲁B-30003"}}).json()
    code = server.request("POST", "/v1/me/code", headers=bearer(citizen["app_token"])).json()["code"]
    assert server.request("POST", "/v1/verify", headers=bearer(gate["terminal_token"]),
                          json={"code": code}).json()["decision"] == "accept"
    deadline = time.monotonic() + 10
    while True:  # the real writer, in the background: a scan shows up within its lag
        entries = server.request("GET", "/v1/me/history", headers=bearer(citizen["app_token"])).json()["entries"]
        if entries[0]["action"] == "scan":
            break
        assert time.monotonic() < deadline, entries
        time.sleep(0.05)
    assert entries[0]["fare"]["amount_cents"] == 200 and entries[0]["terminal_id"] == gate["terminal_id"]
    ready = server.fresh("GET", "/healthz/ready").json()
    assert ready["checks"]["records"] == "ok"


def test_writer_killed_during_load_leaves_every_record_in_sql_exactly_once(server: "Server") -> None:
    with Load(server) as load:
        for _ in range(2):
            time.sleep(1.0)
            writer = server.writer_pid()
            assert writer is not None
            os.kill(writer, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while server.writer_pid() in (None, writer):  # the master restarts it
                assert time.monotonic() < deadline, "writer not restarted:\n" + server.stderr_tail()
                time.sleep(0.05)
        time.sleep(1.0)
    recorded = load.recorded()
    assert len(recorded) == len(load.answers) > 50
    _wait_drained(server)
    assert _scan_rows(server) == (len(recorded), len(recorded))
    assert "record writer restarted" in server.stderr()


def test_redis_killed_during_load_doubles_no_record_and_loses_at_most_the_aof_window(
        server_factory: Any) -> None:
    server = server_factory.start(env={"CITYCODE_REDIS_RESTART_SECONDS": "1"})
    with Load(server) as load:
        time.sleep(1.5)
        killed_at = time.time()
        os.kill(server.redis_pid(), signal.SIGKILL)
        time.sleep(3.0)  # down ~1 s, then restarted from its AOF; the load goes on throughout
    _wait_drained(server)
    recorded = load.recorded()
    rows, distinct = _scan_rows(server)
    at_risk = [at for at in recorded if killed_at - AOF_WINDOW_SECONDS <= at <= killed_at + 0.5]
    assert rows == distinct  # nothing doubled
    assert len(recorded) - len(at_risk) <= rows <= len(recorded), (rows, len(recorded), len(at_risk))
    assert any(at > killed_at + 1.0 for at in recorded)  # scans were recorded again after the restart
