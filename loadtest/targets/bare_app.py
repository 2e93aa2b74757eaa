"""The bare baseline: a Flask app with one POST endpoint that parses a JSON body and answers a
small JSON, served by gunicorn with the service's own settings (``bare_gunicorn.py``).

It answers ``/v1/verify`` and ``/v1/me/code`` with the shape of an accept, so the same wrk
scripts and checks run against it unchanged. Loaded by path (``--pythonpath``) with the target
checkout's interpreter, so it is the same Flask and gunicorn as the service; it imports nothing
from the project.
"""
from __future__ import annotations

from flask import Flask, abort, request

app = Flask(__name__)


@app.post("/v1/verify")
@app.post("/v1/me/code")
def answer() -> dict[str, str]:
    body = request.get_json()
    if not isinstance(body, dict):
        abort(400)
    return {"decision": "accept", "reason": "ok"}


@app.get("/healthz/ready")
def ready() -> dict[str, str]:
    return {"status": "ok"}
