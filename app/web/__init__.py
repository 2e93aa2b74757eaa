"""The service's web face: the landing page ``/``, the citizen app ``/app`` (an installable web app
that is a plain client of the ``/v1/me`` API) and the hall display boards ``/halls/<hall>/board``.

Pages are server-rendered HTML with hand-written JS and CSS from ``static/`` (no CDN, no build);
their texts come from Flask-Babel message catalogs in ``translations/`` (Chinese by default,
English by ``Accept-Language``, ``?lang=`` or the language switch). The API's JSON is untouched:
these routes are registered on the Flask app, not on the OpenAPI ``Api``, so they are not in
``/openapi.json``.
"""
from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask_babel import Babel

from app.web import i18n

TRANSLATIONS = Path(__file__).resolve().parent / "translations"


def init_app(app: Flask) -> None:
    """Set up the catalogs (zh default, Asia/Shanghai) and register the pages."""
    from app.web.views import blp

    app.config.update(BABEL_DEFAULT_LOCALE=i18n.DEFAULT, BABEL_DEFAULT_TIMEZONE=i18n.TIMEZONE,
                      BABEL_TRANSLATION_DIRECTORIES=str(TRANSLATIONS))
    Babel(app, locale_selector=i18n.select_locale)
    app.register_blueprint(blp)
