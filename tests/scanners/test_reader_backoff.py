"""Upload retries against a taps endpoint that fails on purpose (a small WSGI app on real HTTP):
exponential backoff with full jitter, Retry-After honoured, bounded attempts, rows kept."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.scanners.conftest import Served


class FlakyTaps:
    """Answers POST /v1/taps with the queued statuses, then 200 ``{stored: n}``."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        size = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(size) or b"{}")
        self.bodies.append(body)
        status = self.statuses.pop(0) if self.statuses else 200
        headers = [("Content-Type", "application/json")]
        if status == 429:
            headers.append(("Retry-After", "7"))
        answer = {"stored": len(body.get("records", [])), "duplicates": 0, "anomalies": []} \
            if status == 200 else {"title": "down", "status": status, "detail": "try later"}
        start_response(f"{status} X", headers)
        return [json.dumps(answer).encode()]


@pytest.fixture
def flaky() -> Iterator[tuple[FlakyTaps, Served]]:
    app = FlakyTaps()
    served = Served(app)
    yield app, served
    served.stop()


def _reader(city, tmp_path: Path, served: Served, sleeps: list[float], attempts: int = 5):
    gate = city.reader(tmp_path / "gate", "metro", {"station": "五四广场"})
    for _ in range(3):
        gate.scan(city.code(city.citizen()[1]), direction="exit", offline=True)
    gate.close()
    return city.reopen(tmp_path / "gate", base_url=served.base_url, sleep=sleeps.append,
                       rng=lambda: 1.0, upload_attempts=attempts, upload_backoff_s=0.5,
                       upload_backoff_cap_s=3.0)


def test_5xx_is_retried_with_growing_jittered_delays_then_acknowledged(city, tmp_path: Path, flaky) -> None:
    app, served = flaky
    sleeps: list[float] = []
    reader = _reader(city, tmp_path, served, sleeps)
    app.statuses = [503, 500, 502, 503]
    result = reader.upload()
    assert result.error is None and result.attempts == 5 and result.acknowledged == 3
    assert sleeps == [0.5, 1.0, 2.0, 3.0]  # rng() = 1: the top of each range, capped at 3 s
    assert [r["seq"] for r in app.bodies[-1]["records"]] == [1, 2, 3]
    assert reader.pending() == 0


def test_full_jitter_draws_each_delay_between_zero_and_the_ceiling(city, tmp_path: Path, flaky) -> None:
    app, served = flaky
    sleeps: list[float] = []
    reader = _reader(city, tmp_path, served, sleeps)
    reader.uploader.backoff = type(reader.uploader.backoff)(5, 0.5, 3.0, sleeps.append, lambda: 0.25)
    app.statuses = [503, 503]
    assert reader.upload().error is None
    assert sleeps == [0.125, 0.25]


def test_attempts_are_bounded_and_the_rows_stay_pending(city, tmp_path: Path, flaky) -> None:
    app, served = flaky
    sleeps: list[float] = []
    reader = _reader(city, tmp_path, served, sleeps, attempts=3)
    app.statuses = [503] * 10
    result = reader.upload()
    assert result.attempts == 3 and len(sleeps) == 2 and "503" in result.error
    assert reader.pending() == 3 and reader.status()["upload_error"]["transient"] is True
    app.statuses.clear()  # the server is healthy again: the next call delivers
    assert reader.upload().error is None and reader.pending() == 0
    assert reader.status()["upload_error"] is None


def test_429_waits_at_least_retry_after(city, tmp_path: Path, flaky) -> None:
    app, served = flaky
    sleeps: list[float] = []
    reader = _reader(city, tmp_path, served, sleeps)
    reader.uploader.backoff = type(reader.uploader.backoff)(5, 0.5, 30.0, sleeps.append, lambda: 0.0)
    app.statuses = [429]
    assert reader.upload().error is None
    assert sleeps == [7.0]


def test_unreachable_server_is_retried_then_reported(city, tmp_path: Path, flaky, dead_port: int) -> None:
    _, served = flaky
    sleeps: list[float] = []
    reader = _reader(city, tmp_path, served, sleeps, attempts=2)
    reader.client.base_url = f"http://127.0.0.1:{dead_port}"
    result = reader.upload()
    assert result.attempts == 2 and result.error and reader.pending() == 3
