"""CityCode: one QR code for a whole city."""
from __future__ import annotations

from typing import TYPE_CHECKING

from app.config import Settings

if TYPE_CHECKING:  # offline readers import app.codes without pulling in Flask
    from flask import Flask


def create_app(settings: Settings | None = None) -> "Flask":
    """Application factory. Expects the database migrated and Redis reachable (``citycode serve``
    arranges both); creates no files and starts no processes itself."""
    from flask import Flask

    from app import compose, runtime
    from app.api import init_app as init_api
    from app.ops import logs, metrics
    from app.web import init_app as init_web

    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        JSON_SORT_KEYS=False,
    )
    runtime.init_app(app, compose.build(settings))
    logs.init_app(app, settings.log_level)
    metrics.init_app(app)
    init_api(app)
    init_web(app)
    return app
