"""``citycode serve`` for real: gunicorn master + 2 gthread workers + embedded redis-server, over HTTP.

One module-scoped server serves the tests that leave it usable; the destructive ones (stopping
redis, SIGKILL, a second instance, broken key permissions) each start their own.
"""
from __future__ import annotations

import json
import os
import pathlib
import secrets
import signal
import stat
import time
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
import requests
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:  # the helpers come from tests/integration/conftest.py through the `serving` fixture
    from conftest import Server, ServerFactory

pytestmark = pytest.mark.slow

PROBLEM_FIELDS = {"type", "title", "status", "detail"}
LIVE_LABELS = {"method": "GET", "route": "/healthz/live", "status": "200"}
RELOAD_WINDOW = 1.5  # KeyRingCache re-checks keyring.json once a second; a little margin on top


# -- helpers -------------------------------------------------------------------------------------
def keyring(server: Server) -> list[dict[str, Any]]:
    return json.loads((server.data_dir / "keys" / "keyring.json").read_text())["keys"]


def kid_in_state(server: Server, state: str) -> str:
    (kid,) = [e["kid"] for e in keyring(server) if e["state"] == state]
    return kid


def published_kids_on_disk(server: Server) -> set[str]:
    now = time.time()
    return {e["kid"] for e in keyring(server)
            if e["state"] != "retired" or e["publish_until"] > now}


def served_kids(server: Server) -> list[str]:
    """The kids in /.well-known/jwks.json, asked on a new connection (either worker may answer)."""
    response = server.fresh("GET", "/.well-known/jwks.json")
    assert response.status_code == 200, response.text
    return [key["kid"] for key in response.json()["keys"]]


def wait_for_kids(server: Server, expected: set[str], timeout: float) -> float:
    """Poll the served JWKS until it lists exactly ``expected``; return when that happened."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        seen = served_kids(server)
        if set(seen) == expected and len(seen) == len(expected):
            return time.monotonic()
        time.sleep(0.05)
    pytest.fail(f"JWKS still lists {seen} after {timeout} s, expected {sorted(expected)}")


def assert_all_workers_agree(server: Server, expected: set[str], since: float, times: int = 20) -> None:
    """After the reload window, every answer (on fresh connections: both workers) is the same ring."""
    time.sleep(max(0.0, since + RELOAD_WINDOW - time.monotonic()))
    answers = [served_kids(server) for _ in range(times)]
    assert all(set(a) == expected and len(a) == len(expected) for a in answers), answers


def live_counter(metrics_text: str) -> float:
    """citycode_http_requests_total for GET /healthz/live 200 (0 when not there yet)."""
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "citycode_http_requests_total" and sample.labels == LIVE_LABELS:
                return sample.value
    return 0.0


def scrape_live_counter(server: Server) -> float:
    response = server.fresh("GET", "/metrics")
    assert response.status_code == 200, response.text
    return live_counter(response.text)


def live_counter_per_worker(server: Server) -> dict[int, float]:
    """Read each worker's own prometheus-client file: which worker served how many."""
    per_pid: dict[int, float] = {}
    for path in (server.data_dir / "metrics").glob("counter_*.db"):
        pid = int(path.stem.split("_", 1)[1])
        for key, value, _ts, _pos in MmapedDict.read_all_values_from_file(str(path)):
            _metric, name, labels, _help = json.loads(key)
            if name == "citycode_http_requests_total" and labels == LIVE_LABELS:
                per_pid[pid] = per_pid.get(pid, 0.0) + value
    return per_pid


def assert_problem(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].split(";")[0].strip() == "application/problem+json"
    body = response.json()
    assert PROBLEM_FIELDS <= set(body), body
    assert body["status"] == status
    assert all(isinstance(body[f], str) and body[f] for f in ("type", "title", "detail")), body
    for leak in ("Traceback", 'File "', "site-packages", "werkzeug", "/work/"):
        assert leak not in response.text, f"{leak!r} leaked into {response.text}"
    return body


def access_log_lines(server: Server) -> list[dict[str, Any]]:
    entries = []
    for line in server.stderr().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("logger") == "citycode.access":
                entries.append(entry)
    return entries


# -- the shared server ---------------------------------------------------------------------------
def test_service_starts_on_embedded_defaults(srv: Server, serving: ModuleType) -> None:
    response = srv.fresh("GET", "/healthz/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["checks"] == {"database": "ok", "redis": "ok", "keys": "ok", "records": "ok"}
    assert body["failed"] == [] and body["status"] == "ok"

    token_file = srv.data_dir / "admin-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert srv.admin_token and srv.admin_token == token_file.read_text().strip()

    kids = served_kids(srv)
    assert len(kids) == 2
    assert set(kids) == {kid_in_state(srv, "current"), kid_in_state(srv, "next")}

    # the embedded defaults: a redis-server of our own, child of the master, on the data dir's socket
    redis_pid = srv.redis_pid()
    assert serving.redis_pids_for(srv.data_dir) == [redis_pid]
    assert redis_pid in serving.children(srv.pid)
    assert (srv.data_dir / "redis" / "redis.sock").is_socket()
    assert (srv.data_dir / "citycode.sqlite3").is_file()
    assert len(srv.worker_pids()) == 2


def test_admin_rotation_over_http_keeps_old_key_published_and_workers_agree(srv: Server) -> None:
    old_current, old_next = kid_in_state(srv, "current"), kid_in_state(srv, "next")
    before = set(served_kids(srv))

    response = srv.request("POST", "/v1/admin/keys/rotate", headers=srv.admin_headers())
    rotated_at = time.monotonic()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["current_kid"] == old_next
    assert body["current_kid"] == kid_in_state(srv, "current")
    published = set(body["published_kids"])
    assert old_current in published and old_next in published
    assert published == before | {kid_in_state(srv, "next")}
    assert len(published) == len(before) + 1  # 3 on a fresh server: retired, current, new next

    wait_for_kids(srv, published, timeout=3.0)
    # The worker that rotated answers at once, the other within its 1 s re-check: once that window
    # has passed, answers on fresh connections (so from both workers) must all be the same ring.
    assert_all_workers_agree(srv, published, since=rotated_at)


def test_cli_rotation_shows_up_in_served_jwks_within_3s(srv: Server) -> None:
    old_current = kid_in_state(srv, "current")
    result = srv.cli("keys", "rotate")
    rotated_at = time.monotonic()
    assert result.returncode == 0, result.stderr
    new_current = kid_in_state(srv, "current")
    assert new_current != old_current
    assert f"{new_current}  " in result.stdout and "current" in result.stdout
    expected = published_kids_on_disk(srv)
    assert old_current in expected and new_current in expected

    shown_at = wait_for_kids(srv, expected, timeout=3.0)
    assert shown_at - rotated_at < 3.0
    assert_all_workers_agree(srv, expected, since=rotated_at, times=10)


@pytest.mark.parametrize(("method", "path", "headers", "status"), [
    pytest.param("POST", "/v1/admin/keys/rotate", {}, 401, id="no-token"),
    pytest.param("POST", "/v1/admin/keys/rotate", {"Authorization": "Bearer cca_not-a-real-token-at-all"},
                 401, id="wrong-token"),
    pytest.param("POST", "/v1/admin/keys/rotate", {"Authorization": "Basic YWRtaW46YWRtaW4="}, 401,
                 id="not-bearer"),
    pytest.param("GET", "/v1/no/such/endpoint", {}, 404, id="unknown-path"),
    pytest.param("DELETE", "/healthz/live", {}, 405, id="wrong-method"),
])
def test_errors_are_problem_json_without_internals(srv: Server, method: str, path: str,
                                                   headers: dict[str, str], status: int) -> None:
    ring_before = (srv.data_dir / "keys" / "keyring.json").read_bytes()
    response = srv.fresh(method, path, headers=headers)
    body = assert_problem(response, status)
    if status == 401:
        assert response.headers.get("WWW-Authenticate", "").startswith("Bearer")
        assert body["type"].endswith("unauthorized")
    # a failed request changes nothing
    assert (srv.data_dir / "keys" / "keyring.json").read_bytes() == ring_before


def test_oversized_body_is_413_even_where_the_view_reads_no_body(srv: Server) -> None:
    """API.md: bodies over the size limit get 413, and a request that fails changes nothing."""
    old_current = kid_in_state(srv, "current")
    headers = {**srv.admin_headers(), "Content-Type": "application/json"}
    payload = b'{"pad": "' + b"x" * (1 << 20) + b'"}'
    with requests.Session() as session:
        response = session.post(srv.url("/v1/admin/keys/rotate"), data=payload, headers=headers,
                                timeout=30)
    assert response.status_code == 413, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert kid_in_state(srv, "current") == old_current
    assert srv.fresh("GET", "/healthz/live").status_code == 200


def test_metrics_are_summed_over_both_workers(srv: Server) -> None:
    baseline = scrape_live_counter(srv)
    before = live_counter_per_worker(srv)
    made = 0
    for _ in range(40):
        assert srv.fresh("GET", "/healthz/live").status_code == 200
        made += 1
    # Only meaningful if both workers served some: fresh connections are spread by the kernel.
    served = {pid: n - before.get(pid, 0.0) for pid, n in live_counter_per_worker(srv).items()}
    while sum(1 for n in served.values() if n > 0) < 2 and made < 400:
        for _ in range(20):
            assert srv.fresh("GET", "/healthz/live").status_code == 200
            made += 1
        served = {pid: n - before.get(pid, 0.0) for pid, n in live_counter_per_worker(srv).items()}
    busy = {pid: n for pid, n in served.items() if n > 0}
    assert len(busy) >= 2, f"one worker served all {made} requests: {served}"
    assert set(busy) <= set(srv.worker_pids())
    assert sum(served.values()) == made

    # each scrape may be answered by either worker: every one must show the same, summed total
    totals = {scrape_live_counter(srv) for _ in range(8)}
    assert totals == {baseline + made}, (baseline, made, totals)


def test_access_log_lines_carry_request_id_and_never_the_token(srv: Server) -> None:
    request_id = f"itest-{secrets.token_hex(8)}"
    wrong_token = f"cca_itest-wrong-{secrets.token_hex(12)}"
    ok = srv.fresh("GET", "/.well-known/jwks.json",
                   headers={**srv.admin_headers(), "X-Request-Id": request_id})
    assert ok.status_code == 200 and ok.headers["X-Request-Id"] == request_id
    denied = srv.fresh("POST", "/v1/admin/keys/rotate", headers={"Authorization": f"Bearer {wrong_token}"})
    assert denied.status_code == 401
    denied_id = denied.headers["X-Request-Id"]
    assert denied.json().get("request_id") == denied_id

    deadline = time.monotonic() + 3
    while True:
        entries = access_log_lines(srv)
        ids = {e.get("request_id") for e in entries}
        if {request_id, denied_id} <= ids or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert {request_id, denied_id} <= ids
    assert entries and all(e.get("request_id") for e in entries)
    (mine,) = [e for e in entries if e["request_id"] == request_id]
    assert (mine["method"], mine["route"], mine["status"]) == ("GET", "/.well-known/jwks.json", 200)

    text = srv.stderr()
    assert srv.admin_token and srv.admin_token not in text
    assert wrong_token not in text


def test_serve_creates_no_control_socket_outside_its_data_dir(srv: Server) -> None:
    home = pathlib.Path(srv.env["HOME"])
    assert home != srv.data_dir
    assert sorted(str(p) for p in home.rglob("*")) == []


# -- destructive: a server of their own ----------------------------------------------------------
def test_readiness_turns_503_naming_redis_when_redis_stops_and_recovers_on_restart(
        server_factory: ServerFactory, serving: ModuleType) -> None:
    server = server_factory.start(env={"CITYCODE_REDIS_RESTART_SECONDS": "5"})
    redis_pid = server.redis_pid()
    assert b"redis-server" in serving.cmdline(redis_pid)
    os.kill(redis_pid, signal.SIGTERM)
    assert serving.wait_gone([redis_pid], 10) == [], "redis-server did not stop on SIGTERM"

    for _ in range(6):  # fresh connections: both workers must notice
        started = time.monotonic()
        response = server.fresh("GET", "/healthz/ready")
        elapsed = time.monotonic() - started
        assert response.status_code == 503, response.text
        body = response.json()
        assert "redis" in body["failed"]
        assert body["checks"]["database"] == "ok" and body["checks"]["keys"] == "ok"
        assert body["checks"]["redis"] != "ok"
        assert elapsed < 2.0, f"readiness took {elapsed:.2f} s with redis down"
    for _ in range(4):
        live = server.fresh("GET", "/healthz/live")
        assert live.status_code == 200 and live.json() == {"status": "ok"}

    # The master's supervisor restarts redis-server on the same socket: ready again, new pid.
    deadline = time.monotonic() + 20
    while server.fresh("GET", "/healthz/ready").status_code != 200:
        assert time.monotonic() < deadline, "redis-server was not restarted:\n" + server.stderr_tail()
        time.sleep(0.2)
    assert server.redis_pid() != redis_pid
    # The supervisor logs once the new server answers; a worker may see it ready a moment before.
    deadline = time.monotonic() + 5
    while "embedded redis-server restarted" not in server.stderr() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "embedded redis-server restarted" in server.stderr()


def test_sigkill_of_master_leaves_no_redis_and_no_worker(server: Server, serving: ModuleType) -> None:
    redis_pid = server.redis_pid()
    workers = server.worker_pids()
    assert len(workers) == 2 and redis_pid in serving.children(server.pid)

    server.proc.kill()
    server.proc.wait()
    left = serving.wait_gone([redis_pid, *workers], 5)
    assert left == [], f"still running 5 s after SIGKILL of the master: {left}"
    assert serving.redis_pids_for(server.data_dir) == []


@pytest.fixture(scope="class")
def second_start(serving: ModuleType) -> Iterator[dict[str, Any]]:
    """Server A runs; B is started on A's data dir (another port). Once per class."""
    factory = serving.ServerFactory()
    try:
        first = factory.start()
        for _ in range(5):
            first.fresh("GET", "/healthz/live")
        counted = scrape_live_counter(first)
        redis_pid = first.redis_pid()
        second = factory.launch(first.data_dir)
        started = time.monotonic()
        code = serving.wait_exit_or_ready(second, timeout=30)
        yield {"first": first, "second": second, "code": code, "took": time.monotonic() - started,
               "redis_pid": redis_pid, "counted": counted}
    finally:
        factory.close()


class TestSecondServeOnTheSameDataDir:
    """A second ``citycode serve`` on a running server's data dir: run once, checked twice.

    (The metrics test comes first: a class fixture's teardown is reported with the class's last test,
    and an error there must not be swallowed as an expected failure.)
    """

    def test_it_leaves_the_running_servers_metrics_alone(self, second_start: dict[str, Any]) -> None:
        first = second_start["first"]
        assert second_start["code"] not in (None, 0)
        assert scrape_live_counter(first) >= second_start["counted"] >= 5
        before = scrape_live_counter(first)
        for _ in range(5):
            first.fresh("GET", "/healthz/live")
        assert scrape_live_counter(first) == before + 5

    def test_it_fails_to_start_and_leaves_the_running_redis_alone(
            self, second_start: dict[str, Any], serving: ModuleType) -> None:
        first, second, code = second_start["first"], second_start["second"], second_start["code"]
        assert code is not None and code != 0, \
            f"second serve did not fail (code {code}):\n{second.stderr_tail()}"
        assert second_start["took"] < 30
        assert "already in use" in second.stderr()
        # the first one still runs, on the same redis-server
        assert first.proc.poll() is None
        assert not serving.gone(second_start["redis_pid"])
        assert first.redis_pid() == second_start["redis_pid"]
        assert serving.redis_pids_for(first.data_dir) == [second_start["redis_pid"]]
        ready = first.fresh("GET", "/healthz/ready")
        assert ready.status_code == 200, ready.text


@pytest.mark.parametrize("which", [  # "current" last: the module's fixture teardown is reported with it
    "next",
    "current",
])
def test_refuses_to_start_with_a_group_readable_private_key(server_factory: ServerFactory,
                                                            serving: ModuleType, which: str) -> None:
    first = server_factory.start()
    assert serving.stop_server(first) == 0  # SIGTERM: graceful, exit 0, and no redis-server left
    key = first.data_dir / "keys" / f"{kid_in_state(first, which)}.private.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    os.chmod(key, 0o640)

    again = server_factory.launch(first.data_dir)
    code = serving.wait_exit_or_ready(again, timeout=30)
    assert code is not None and code != 0, f"started anyway with {key} mode 0640 (code {code})"
    err = again.stderr()
    assert str(key) in err and "chmod 600" in err, again.stderr_tail()
    assert serving.redis_pids_for(first.data_dir) == [], "the failed start left its redis-server running"
