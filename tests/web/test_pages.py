"""The pages over Flask's test client: languages, links, readiness, headers, the catalogs."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import redis_unreachable

WEB = Path(__file__).resolve().parents[2] / "app" / "web"
TRANSLATIONS = WEB / "translations"


def test_landing_is_chinese_by_default_and_links_app_boards_docs_and_readiness(client: FlaskClient) -> None:
    response = client.get("/")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert '<html lang="zh-CN">' in page and "一码通城" in page
    for link in ('href="/app"', 'href="/halls/city/board"', 'href="/docs"', 'href="/healthz/ready"'):
        assert link in page
    assert 'id="readiness" class="status ok"' in page and "服务正常" in page


def test_landing_says_what_is_not_ready(app: Flask, client: FlaskClient) -> None:
    with redis_unreachable(app):
        page = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert 'id="readiness" class="status bad"' in page and "Not ready" in page
    assert "unavailable (" in page


def test_english_by_accept_language(client: FlaskClient) -> None:
    page = client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"}).get_data(as_text=True)
    assert '<html lang="en">' in page and "One code for the whole city" in page and "Ready" in page


def test_chinese_when_the_browser_prefers_a_chinese_variant(client: FlaskClient) -> None:
    page = client.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}).get_data(as_text=True)
    assert '<html lang="zh-CN">' in page


def test_the_switch_wins_over_accept_language_and_is_remembered(client: FlaskClient) -> None:
    response = client.get("/app?lang=en", headers={"Accept-Language": "zh-CN"})
    assert '<html lang="en">' in response.get_data(as_text=True)
    assert "lang=en" in response.headers["Set-Cookie"]
    again = client.get("/app", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert '<html lang="en">' in again and 'href="?lang=zh"' in again


def test_an_unknown_language_falls_back_to_chinese(client: FlaskClient) -> None:
    page = client.get("/?lang=fr", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert '<html lang="zh-CN">' in page


def test_the_api_answers_stay_json_whatever_the_language(client: FlaskClient) -> None:
    response = client.get("/v1/halls/nowhere/board", headers={"Accept-Language": "en"})
    assert response.status_code == 404 and response.mimetype == "application/problem+json"


def test_pages_allow_no_foreign_or_inline_script(client: FlaskClient) -> None:
    for path in ("/", "/app", "/halls/city/board"):
        response = client.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self';" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        page = response.get_data(as_text=True)
        assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page


def test_board_of_an_unknown_hall_is_an_html_404(client: FlaskClient) -> None:
    response = client.get("/halls/nowhere/board")
    assert response.status_code == 404 and response.mimetype == "text/html"


def test_hall_picker_redirects_to_the_board(client: FlaskClient) -> None:
    response = client.get("/halls/board?hall=shinan-01")
    assert response.status_code == 302 and response.headers["Location"].endswith("/halls/shinan-01/board")


def test_board_names_services_in_the_page_language(client: FlaskClient) -> None:
    assert "户籍" in client.get("/halls/city/board").get_data(as_text=True)
    assert "Household registration" in client.get("/halls/city/board?lang=en").get_data(as_text=True)


def test_manifest_makes_the_app_installable(client: FlaskClient) -> None:
    response = client.get("/app/manifest.webmanifest", headers={"Accept-Language": "en"})
    manifest = json.loads(response.get_data(as_text=True))
    assert response.mimetype == "application/manifest+json"
    assert manifest["start_url"] == "/app" and manifest["display"] == "standalone"
    assert {icon["sizes"] for icon in manifest["icons"]} >= {"192x192", "512x512"}
    for icon in manifest["icons"]:
        with client.get(icon["src"]) as served:
            assert served.status_code == 200


def test_service_worker_is_served_for_the_app_scope_and_never_caches_the_api(client: FlaskClient) -> None:
    with client.get("/app/sw.js") as response:
        assert response.status_code == 200 and response.mimetype == "text/javascript"
        assert response.headers["Service-Worker-Allowed"] == "/app"
        assert "/v1/" not in response.get_data(as_text=True)


def test_web_pages_are_not_api_operations(client: FlaskClient) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]
    assert not {"/", "/app", "/halls/{hall}/board"} & set(paths)


def _catalog(path: Path, reader: Any) -> dict[str, Any]:
    with path.open("rb") as file:
        return {m.id: m.string for m in reader(file) if m.id}


def test_compiled_catalog_matches_its_source_and_translates_every_text() -> None:
    template = _catalog(TRANSLATIONS / "messages.pot", read_po)
    source = _catalog(TRANSLATIONS / "zh" / "LC_MESSAGES" / "messages.po", read_po)
    compiled = _catalog(TRANSLATIONS / "zh" / "LC_MESSAGES" / "messages.mo", read_mo)
    assert set(template) <= {k for k, v in source.items() if v}, "run pybabel update, then translate"
    assert source == compiled, "run: pybabel compile -d app/web/translations"


def test_the_message_template_holds_every_text_of_the_pages() -> None:
    """After changing a page text: pybabel extract -k _l -F app/web/babel.cfg --no-location
    --omit-header --sort-output -o app/web/translations/messages.pot app/web, then update and
    translate the zh catalog and compile it."""
    method_map = [("**.py", "python"), ("**/templates/**.html", "jinja2"),
                  ("**/templates/**.webmanifest", "jinja2")]
    found = {message[2] for message in extract_from_dir(str(WEB), method_map,
                                                           keywords={**DEFAULT_KEYWORDS, "_l": None})}
    assert found == set(_catalog(TRANSLATIONS / "messages.pot", read_po))
