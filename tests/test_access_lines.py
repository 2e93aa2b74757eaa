"""The access log's batching queue and the request-id counter (app/ops/logs.py)."""
from __future__ import annotations

import io
import json
import os
import sys
import threading

from app.ops.logs import AccessLines, access_line, new_request_id


def test_queued_lines_are_written_together_in_order_by_flush() -> None:
    out = io.StringIO()
    lines = AccessLines(interval=3600, stream=out)
    for n in range(3):
        lines.add(access_line(f"req-{n:05d}", "POST", "/v1/verify", 200, 0.5, "terminal", 0.0))
    assert out.getvalue() == ""  # nothing written on the request's thread
    lines.flush()
    written = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [w["request_id"] for w in written] == ["req-00000", "req-00001", "req-00002"]
    lines.flush()
    assert len(out.getvalue().splitlines()) == 3  # a flush with nothing queued writes nothing


def test_the_daemon_thread_writes_lines_without_a_flush_call() -> None:
    written = threading.Event()

    class Stream(io.StringIO):
        def flush(self) -> None:
            written.set()

    stream = Stream()
    lines = AccessLines(interval=0.01, stream=stream)
    lines.add("{}")
    assert written.wait(5)
    assert stream.getvalue() == "{}\n"


def test_no_line_is_lost_when_threads_add_while_it_flushes() -> None:
    out = io.StringIO()
    lines = AccessLines(interval=0.001, stream=out)

    def add(thread: int) -> None:
        for n in range(2000):
            lines.add(f"{thread}-{n}")

    workers = [threading.Thread(target=add, args=(t,)) for t in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    lines.flush()
    got = out.getvalue().splitlines()
    assert len(got) == 8000 and len(set(got)) == 8000


def test_request_ids_are_unique_hex_with_a_per_process_prefix() -> None:
    ids = [new_request_id() for _ in range(10000)]
    assert len(set(ids)) == 10000
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids)
    assert len({i[:8] for i in ids}) == 1
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # a forked worker gets its own prefix
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.waitpid(child, 0)
    assert os.read(read, 64).decode()[:8] != ids[0][:8]


def test_lines_go_to_the_stderr_of_configure_not_to_a_later_replacement(monkeypatch) -> None:
    from app.ops import logs

    configured, later = io.StringIO(), io.StringIO()
    before = logs.access_lines.stream
    monkeypatch.setattr(sys, "stderr", configured)
    try:
        logs.configure("INFO")
        monkeypatch.setattr(sys, "stderr", later)  # e.g. click's CliRunner capturing a command
        logs.access_lines.add("{}")
        logs.access_lines.flush()
    finally:
        logs.access_lines.stream = before
    assert configured.getvalue() == "{}\n" and later.getvalue() == ""
