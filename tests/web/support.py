"""What the browser tests share: the served app, a site handle, signing in on the citizen page."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import BaseWSGIServer, make_server

CODE_TTL_SECONDS = 10  # the shortest the service allows: a refresh comes within 7 s


class Served:
    """The app on 127.0.0.1:<free port>, in a threaded werkzeug server."""

    def __init__(self, app: Flask) -> None:
        self._server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@dataclass
class Site:
    """The served app, its test client (for set-up through the API) and where screenshots go."""

    app: Flask
    client: FlaskClient
    base_url: str
    shots: Path

    def url(self, path: str) -> str:
        return self.base_url + path


def sign_in(page: Any, site: Site, app_token: str, path: str = "/app") -> None:
    """Sign in on the citizen page as a citizen would, and wait for the code to show."""
    page.goto(site.url(path))
    page.fill("#token", app_token)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#qr svg")
