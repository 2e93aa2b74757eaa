"""The buffered gthread worker over real sockets (app/serving/buffered.py): a real gunicorn with
ONE thread serving a small echo app (tests/serving/echo_app.py), so any request that held the
thread while waiting on its client would stop the next one."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from app.demo_service import _free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
LIMIT = 65536  # the body cap the server gets: CITYCODE_TAPS_MAX_BODY_BYTES below


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    home = tmp_path_factory.mktemp("gunicorn-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CITYCODE_", "GUNICORN_"))}
    env.update(HOME=str(home), CITYCODE_HEADER_TIMEOUT="1", CITYCODE_BODY_TIMEOUT="1",
               CITYCODE_TAPS_MAX_BODY_BYTES=str(LIMIT), CITYCODE_MAX_BODY_BYTES="4096")
    number = _free_port()
    log = open(home / "gunicorn.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-k", "app.serving.buffered.BufferedThreadWorker", "--threads", "1",
         "--workers", "1", "--bind", f"127.0.0.1:{number}", "--no-control-socket",
         "tests.serving.echo_app:app"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, (home / "gunicorn.log").read_text()
            try:
                with socket.create_connection(("127.0.0.1", number), timeout=1) as probe:
                    probe.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    if probe.recv(100).startswith(b"HTTP/1.1 200"):
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, (home / "gunicorn.log").read_text()
            time.sleep(0.1)
        yield number
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def read_response(sock: socket.socket, buffered: bytearray | None = None) -> tuple[int, dict[str, str], bytes]:
    """One response; bytes read past it stay in ``buffered`` for the next call."""
    data = buffered if buffered is not None else bytearray()
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            raise ConnectionError(f"closed after {bytes(data)!r}")
        data += piece
    end = data.index(b"\r\n\r\n")
    lines = data[:end].decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(data) < end + 4 + length:
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    body = bytes(data[end + 4:end + 4 + length])
    del data[:end + 4 + length]
    return int(lines[0].split()[1]), headers, body


def post(path: str, body: bytes, extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body)


def closed_after(sock: socket.socket, seconds: float) -> tuple[float | None, bytes]:
    """Seconds until the server closed ``sock`` (None: it did not) and what it sent first."""
    started, got = time.monotonic(), b""
    sock.settimeout(seconds)
    try:
        while piece := sock.recv(4096):
            got += piece
    except TimeoutError:
        return None, got
    except ConnectionResetError:
        pass
    return time.monotonic() - started, got


def test_connections_stuck_in_their_head_or_body_hold_no_thread(port: int) -> None:
    stuck = [connect(port) for _ in range(30)]
    try:
        for i, sock in enumerate(stuck):
            sock.sendall(b"POST /v1/verify HTTP/1.1\r\nHost: t\r\n" if i % 2 else post("/", b"{}")[:-1])
        time.sleep(0.2)
        with connect(port) as sock:
            started = time.monotonic()
            sock.sendall(post("/v1/verify", b'{"code":"x"}'))
            status, _, body = read_response(sock)
            assert time.monotonic() - started < 0.5
        assert status == 200 and json.loads(body)["length"] == 12
    finally:
        for sock in stuck:
            sock.close()


def test_a_request_arriving_byte_by_byte_reaches_the_app_whole(port: int) -> None:
    request = post("/split", b'{"code":"abc"}')
    with connect(port) as sock:
        for i in range(0, len(request), 7):
            sock.sendall(request[i:i + 7])
            time.sleep(0.01)
        status, _, body = read_response(sock)
    assert status == 200 and json.loads(body)["length"] == 14


def test_a_chunked_body_in_pieces_reaches_the_app_decoded(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"POST /chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
        time.sleep(0.1)
        sock.sendall(b"lo\r\n6\r\n world\r\n0\r\n")
        time.sleep(0.1)
        sock.sendall(b"\r\n")
        status, _, body = read_response(sock)
    assert status == 200 and json.loads(body)["length"] == 11


def test_pipelined_and_kept_alive_requests_are_answered_in_order_on_one_connection(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(post("/one", b"1") + b"GET /two HTTP/1.1\r\nHost: t\r\n\r\n" + post("/three", b"333")
                     + b"GET /four HTTP/1.1\r\n")  # the fourth head is not finished yet
        ahead = bytearray()
        answers = [read_response(sock, ahead) for _ in range(3)]
        time.sleep(0.3)
        sock.sendall(b"Host: t\r\n\r\n")
        answers.append(read_response(sock, ahead))
        time.sleep(0.3)  # idle between requests, within the header timeout
        sock.sendall(post("/five", b"55555"))
        answers.append(read_response(sock, ahead))
    assert [json.loads(body)["path"] for _, _, body in answers] == ["/one", "/two", "/three", "/four", "/five"]
    assert [json.loads(body)["length"] for _, _, body in answers] == [1, 0, 3, 0, 5]


def test_clients_sending_the_next_request_as_soon_as_an_answer_arrives_are_never_left_waiting(
        port: int) -> None:
    """Keep-alive at full speed: the next request is often readable in the same turn of the loop
    that takes the connection back from its thread (a stale "paused" callback must read it, not
    drop the connection from the selector)."""
    import threading

    answered = [0] * 6

    def client(index: int) -> None:
        with connect(port) as sock:
            ahead = bytearray()
            for n in range(300):
                sock.sendall(post(f"/k{index}", str(n).encode()))
                status, _, body = read_response(sock, ahead)
                assert status == 200 and json.loads(body)["length"] == len(str(n))
                answered[index] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(answered))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert answered == [300] * len(answered)


def test_a_client_expecting_100_continue_gets_it_once_before_sending_its_body(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(post("/continue", b"", "Expect: 100-continue\r\n").replace(b"Length: 0", b"Length: 4"))
        assert sock.recv(4096) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"body")
        status, _, body = read_response(sock)
    assert status == 200 and json.loads(body)["length"] == 4 and b"100 Continue" not in body


def test_a_head_not_in_within_the_header_timeout_is_closed_silently(port: int) -> None:
    with connect(port) as idle, connect(port) as partial:
        partial.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
        took, got = closed_after(partial, 4)
        assert took is not None and took < 2.5 and got == b""
        took, got = closed_after(idle, 4)
        assert took is not None and took < 2.5 and got == b""


def test_a_body_not_in_within_the_body_timeout_is_a_408_problem(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(post("/late", b"0123456789")[:-4])
        started = time.monotonic()
        status, headers, body = read_response(sock)
        assert time.monotonic() - started < 2.5
    assert status == 408 and headers["content-type"] == "application/problem+json"
    assert json.loads(body)["type"] == "urn:citycode:problem:request-timeout"


def test_a_body_over_the_limit_is_handed_to_the_app_unread_to_refuse(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(post("/big", b"")[:-2].replace(b"Length: 0", f"Length: {LIMIT + 1}".encode()) + b"\r\n")
        status, _, body = read_response(sock)  # answered though not one byte of the body was sent
    assert status == 413 and json.loads(body)["refused"] == "unread"


def test_a_chunked_body_over_the_limit_is_refused_by_the_app(port: int) -> None:
    chunk = b"a" * 16384
    with connect(port) as sock:
        sock.sendall(b"POST /big HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(LIMIT // len(chunk) + 2):
                sock.sendall(b"4000\r\n" + chunk + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server may answer and close before the end
        status, _, body = read_response(sock)
    assert status == 413 and json.loads(body)["refused"] == "read"


def test_a_body_just_within_the_limit_reaches_the_app(port: int) -> None:
    payload = os.urandom(LIMIT)
    with connect(port) as sock:
        sock.sendall(post("/full", payload))
        status, _, body = read_response(sock)
    assert status == 200 and json.loads(body)["sha256"] == hashlib.sha256(payload).hexdigest()


def test_gunicorns_own_refusals_are_problem_documents(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, _ = read_response(sock)
    assert status == 414 and headers["content-type"] == "application/problem+json"
