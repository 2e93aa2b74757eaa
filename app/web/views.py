"""The pages: landing, citizen app (and its manifest and service worker), hall boards."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, send_from_directory, url_for
from flask_babel import get_locale

from app.errors import NotFound
from app.ops import health
from app.runtime import runtime
from app.web import i18n

blp = Blueprint("web", __name__, template_folder="templates", static_folder="static",
                static_url_path="/web/static")

# Scripts and styles only from this origin; no inline script runs, nothing may frame the pages.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; manifest-src 'self'; worker-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def _locale() -> str:
    return str(get_locale() or i18n.DEFAULT)


def _page(template: str, status: int = 200, **context: Any) -> Response:
    locale = _locale()
    response = Response(render_template(template, locale=locale, html_lang=i18n.HTML_LANG[locale],
                                        other=[lang for lang in i18n.LANGUAGES if lang != locale],
                                        **context), status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Vary"] = "Accept-Language, Cookie"
    response.headers["Cache-Control"] = "no-cache"
    chosen = i18n.chosen(request.args.get(i18n.COOKIE))
    if chosen:  # the switch was used: remember it
        response.set_cookie(i18n.COOKIE, chosen, max_age=365 * 86400, samesite="Lax")
    return response


@blp.route("/")
def landing() -> Response:
    """What the service is, where to go, and whether it is ready."""
    checks = health.readiness(runtime())
    halls = list(runtime().halls.halls)
    return _page("landing.html", checks=checks, now=datetime.now(timezone.utc),
                 ready=all(v == "ok" for v in checks.values()),
                 main_halls=[h for h in halls if h.level != "township"],
                 townships=[h for h in halls if h.level == "township"])


@blp.route("/app")
def citizen_app() -> Response:
    """The citizen app: sign in with the app token, show a code, answer disclosure requests."""
    return _page("app.html", texts=i18n.client_texts(_locale()))


@blp.route("/app/manifest.webmanifest")
def manifest() -> Response:
    """The web app manifest: installable, opens /app standalone."""
    locale = _locale()
    body = render_template("manifest.webmanifest", locale=locale, html_lang=i18n.HTML_LANG[locale])
    return Response(body, mimetype="application/manifest+json", headers={"Vary": "Accept-Language, Cookie"})


@blp.route("/app/sw.js")
def service_worker() -> Response:
    """The service worker, served under /app so it may control the /app page (and nothing else)."""
    response = send_from_directory(blp.static_folder or "", "sw.js", mimetype="text/javascript",
                                   max_age=0)
    response.headers["Service-Worker-Allowed"] = "/app"
    response.headers["Cache-Control"] = "no-cache"
    return response


@blp.route("/halls/<hall>/board")
def board(hall: str) -> Response:
    """A hall's display board: numbers called and where, how many wait; updates itself."""
    locale = _locale()
    try:
        found = runtime().halls.halls.get(hall)
    except NotFound:
        return _page("missing.html", status=404, url=url_for("web.landing"))
    services = [{"service": s.service, "prefix": s.prefix,
                 "name": i18n.service_name(s.service, s.name, locale)} for s in found.services]
    return _page("board.html", hall=found, services=services)


@blp.route("/halls/board")
def choose_board() -> Any:
    """The landing page's hall picker (a plain GET form) lands here."""
    hall = request.args.get("hall", "")
    if not hall:
        return redirect(url_for("web.landing"))
    return redirect(url_for("web.board", hall=hall))
