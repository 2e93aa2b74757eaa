"""Slow clients cannot stop the gates (issue #9): a real ``citycode serve`` keeps verifying while
a thousand connections sit on unfinished requests; request heads and bodies that take too long
are cut off; gunicorn's own error answers are problem documents like the application's."""
from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from loadtest.bench_slow_clients import mint, raise_open_file_limit, run_phase
from loadtest.http_targets import enrol

pytestmark = pytest.mark.slow

HALF_OPEN = 1000
HOLD_SECONDS = 8.0
RATE = 30.0


@pytest.fixture(scope="module")
def impatient(serving: Any) -> Iterator[Any]:
    """A server with one-second header and body timeouts."""
    with serving.running_server(env={"CITYCODE_HEADER_TIMEOUT": "1", "CITYCODE_BODY_TIMEOUT": "1"}) as srv:
        yield srv


def _connect(server: Any) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response (status, lower-case headers, body), read until its Content-Length is in."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def _closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed ``sock`` (reading and discarding), None if it did not."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return None
    return time.monotonic() - started


def test_every_verify_and_liveness_probe_is_answered_while_a_thousand_connections_never_finish_headers(
        server: Any, tmp_path: Path) -> None:
    raise_open_file_limit()
    token = enrol(server).hall_token
    codes = mint(server, int(RATE * HOLD_SECONDS) + 100, tmp_path)
    phase = asyncio.run(run_phase("127.0.0.1", server.port, token, codes, rate=RATE, seconds=HOLD_SECONDS,
                                  connections=4, timeout=5.0, half_open=HALF_OPEN))
    assert phase.half_open is not None and phase.half_open["held"] == HALF_OPEN, phase
    assert phase.half_open["connect_errors"] == {}, phase
    verify = phase.verify
    assert verify["sent"] == int(RATE * HOLD_SECONDS), verify
    assert verify["unanswered"] == 0 and verify["unexpected"] == {}, verify
    assert verify["ok"] == verify["sent"], verify
    assert phase.live["probes"] >= HOLD_SECONDS - 1 and phase.live["answered"] == phase.live["probes"], phase.live


def test_a_request_head_not_finished_within_the_header_timeout_is_closed(impatient: Any) -> None:
    with _connect(impatient) as idle, _connect(impatient) as partial:
        partial.sendall(b"POST /v1/verify HTTP/1.1\r\nHost: gate\r\n")
        assert (_closed_within(partial, 5) or 99) < 3
        assert (_closed_within(idle, 5) or 99) < 3  # a connection that sends nothing, too
    assert impatient.fresh("GET", "/healthz/live").status_code == 200


def test_a_body_not_received_within_the_body_timeout_is_a_408_problem(impatient: Any) -> None:
    with _connect(impatient) as sock:
        sock.sendall(b"POST /v1/verify HTTP/1.1\r\nHost: gate\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"code\":")
        started = time.monotonic()
        status, headers, body = _read_response(sock)
        assert time.monotonic() - started < 3
    assert status == 408 and headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    assert json.loads(body)["type"] == "urn:citycode:problem:request-timeout"


def test_a_body_sent_in_pieces_within_the_timeout_reaches_the_application_whole(impatient: Any,
                                                                                 tmp_path: Path) -> None:
    token = enrol(impatient).hall_token
    code = mint(impatient, 1, tmp_path)[0]
    body = json.dumps({"code": code}).encode()
    with _connect(impatient) as sock:
        sock.sendall(f"POST /v1/verify HTTP/1.1\r\nHost: gate\r\nAuthorization: Bearer {token}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                     + body[:10])
        time.sleep(0.3)
        sock.sendall(body[10:])
        status, _, answer = _read_response(sock)
    assert status == 200 and json.loads(answer)["decision"] == "accept"


def test_a_client_expecting_100_continue_gets_it_before_sending_its_body(srv: Any, tmp_path: Path) -> None:
    token = enrol(srv).hall_token
    code = mint(srv, 1, tmp_path)[0]
    body = json.dumps({"code": code}).encode()
    with _connect(srv) as sock:
        sock.sendall(f"POST /v1/verify HTTP/1.1\r\nHost: gate\r\nAuthorization: Bearer {token}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                     "Expect: 100-continue\r\n\r\n".encode())
        sock.settimeout(3)
        interim = sock.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), interim
        sock.sendall(body)
        status, _, answer = _read_response(sock)
    assert status == 200 and json.loads(answer)["decision"] == "accept"


@pytest.mark.parametrize(("request_bytes", "status", "slug"), [
    (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: gate\r\n\r\n", 414, "uri-too-long"),
    (b"NOT A REQUEST\r\n\r\n", 400, "bad-request"),
    (b"GET / HTTP/1.1\r\nHost: gate\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431, "header-fields-too-large"),
    (b"GET / HTTP/1.1\r\nHost gate\r\n\r\n", 400, "bad-request"),
], ids=["request-line-too-long", "malformed-request-line", "header-field-too-large", "malformed-header"])
def test_requests_gunicorn_refuses_are_answered_with_problem_documents(
        srv: Any, request_bytes: bytes, status: int, slug: str) -> None:
    with _connect(srv) as sock:
        sock.sendall(request_bytes)
        got, headers, body = _read_response(sock)
    assert got == status
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["status"] == status and problem["type"] == f"urn:citycode:problem:{slug}"
    assert b"aaaa" not in body and b"NOT A" not in body  # the request is not echoed back
