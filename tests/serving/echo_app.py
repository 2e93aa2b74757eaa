"""A WSGI app for serving tests: answers with what it received of the request body, and refuses
a body over the largest the service accepts with 413, unread when its length is announced (as
Flask does)."""
from __future__ import annotations

import hashlib
import json
import threading
from typing import Any, Callable, Iterable

from app.serving.options import body_buffer_bytes

LIMIT = body_buffer_bytes()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    announced = int(environ.get("CONTENT_LENGTH") or 0)
    if announced > LIMIT:
        return _answer(start_response, "413 Content Too Large", {"refused": "unread"})
    body = environ["wsgi.input"].read(LIMIT + 1)
    if len(body) > LIMIT:
        return _answer(start_response, "413 Content Too Large", {"refused": "read"})
    return _answer(start_response, "200 OK", {
        "path": environ["PATH_INFO"], "length": len(body), "sha256": hashlib.sha256(body).hexdigest(),
        "thread": threading.get_ident()})


def _answer(start_response: Callable[..., Any], status: str, doc: dict[str, Any]) -> list[bytes]:
    body = json.dumps(doc).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
