"""Fixtures for reader tests: the real app served over real HTTP, and readers enrolled against it.

The service runs in werkzeug's ``make_server`` on a thread of the test process rather than under
gunicorn: the reader needs a real TCP endpoint (Flask's test client is not one), and a threaded
server starts in milliseconds and can be stopped and restarted on the same port mid-test to cut the
reader off. It serves the very app of ``tests/conftest.py`` — real redis-server, real SQLite file,
real keys — so test set-up (enrol citizens, suspend them) goes through the test client on the same
state. ``test_reader_gunicorn.py`` runs the reader once against ``citycode serve`` for real.
"""
from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import BaseWSGIServer, make_server

from scanners.reader import Reader
from tests.helpers import ADMIN, code, enrol, terminal
from tests.tap_writer import running_writer


class Served:
    """One WSGI app on 127.0.0.1:<port>, stoppable and restartable on the same port."""

    def __init__(self, app: Any, port: int = 0) -> None:
        self.app = app
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.port = port
        self.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.port = server.server_port
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(5)
            self._server = None


@dataclass
class City:
    """The served app plus short ways to set up what a test needs."""

    app: Flask
    client: FlaskClient
    served: Served
    readers: list[Reader] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.served.base_url

    def terminal(self, kind: str, **site: str) -> str:
        return terminal(self.client, kind, **site)

    def citizen(self) -> tuple[str, str]:
        """(citizen_id, app_token) of a fresh citizen."""
        body = enrol(self.client)
        return body["citizen_id"], body["app_token"]

    def code(self, app_token: str) -> str:
        """A real code from POST /v1/me/code."""
        return code(self.client, app_token)

    def code_at(self, citizen_id: str, now: float) -> str:
        """A code minted by the service's own minting path at an injected time."""
        rt = self.app.extensions["citycode"]
        return rt.minter.code_for(citizen_id, now=now).code  # type: ignore[no-any-return]

    def suspend(self, citizen_id: str) -> None:
        response = self.client.post(f"/v1/admin/citizens/{citizen_id}/suspend", headers=ADMIN, json={})
        assert response.status_code == 200, response.get_json()

    def reader(self, data_dir: Path, kind: str, site: dict[str, str] | None = None,
               **options: Any) -> Reader:
        reader = Reader.enrol(data_dir, self.base_url, self.terminal(kind, **(site or {})), **options)
        self.readers.append(reader)
        return reader

    def reopen(self, data_dir: Path, **options: Any) -> Reader:
        reader = Reader.open(data_dir, **options)
        self.readers.append(reader)
        return reader


@pytest.fixture
def city(app: Flask, client: FlaskClient) -> Iterator[City]:
    served = Served(app)
    made = City(app, client, served)
    try:
        with running_writer(app):  # POST /v1/taps is answered once the record writer committed
            yield made
    finally:
        for reader in made.readers:
            try:
                reader.close()
            except Exception:  # already closed by the test
                pass
        served.stop()


@pytest.fixture
def dead_port() -> int:
    """A port nobody listens on: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers: a request times out."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield int(s.getsockname()[1])


class ManualClock:
    """A clock tests move by hand: wall time (``clock``) and the monotonic one together."""

    def __init__(self, start: float) -> None:
        self.now = start
        self.mono = 1000.0

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.mono += seconds


@pytest.fixture
def manual_clock() -> Callable[[float], ManualClock]:
    return ManualClock
