"""Fixtures for the browser tests: the real service, ``citycode serve`` (gunicorn, its
embedded redis-server, SQLite file, keys and record writer; started as tests/integration does,
once for the session: a start and stop cost ~5 s), and Debian's headless Chromium driven by
Playwright. Each test makes its own citizens and terminals through the API, over HTTP.

The browser tests skip, saying why, only where no browser can be had: Playwright missing or no
Chromium at ``/usr/bin/chromium`` (``apt-get install chromium``; Playwright's own browser
download is not used). Screenshots go to ``$CITYCODE_SCREENSHOTS`` when it is set (the README's
are made with ``CITYCODE_SCREENSHOTS=docs/screenshots``), else to the test's temporary folder.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

from app.config import Settings
from app.store.embedded import EmbeddedRedis
from tests.conftest import ADMIN_TOKEN
from tests.web.support import CODE_TTL_SECONDS, HttpClient, Site

CHROMIUM = os.environ.get("CITYCODE_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture
def settings(tmp_path: Path, redis_server: EmbeddedRedis) -> Settings:
    """For test_pages.py, which asks the app itself (Flask's test client) about its pages."""
    return Settings(data_dir=tmp_path / "data", redis_url=redis_server.url, admin_token=ADMIN_TOKEN,
                    code_ttl_seconds=CODE_TTL_SECONDS)


@pytest.fixture(scope="session")
def served() -> Iterator[Any]:
    """One ``citycode serve`` for the session's browser tests (tests/integration's helpers)."""
    from tests.integration import conftest as serving

    env = {"CITYCODE_ADMIN_TOKEN": ADMIN_TOKEN, "CITYCODE_CODE_TTL_SECONDS": str(CODE_TTL_SECONDS)}
    with serving.running_server(env=env) as server:
        yield server


@pytest.fixture
def site(browser: Any, served: Any, tmp_path: Path) -> Iterator[Site]:
    """The served service (started only where a browser can be had)."""
    shots = Path(os.environ.get("CITYCODE_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    client = HttpClient(served.base_url)
    try:
        yield Site(client, served.base_url, shots)
    finally:
        client.session.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright): no browser tests")
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium): no browser tests")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox", "--disable-gpu"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def browse(browser: Any) -> Iterator[Any]:
    """``browse(locale="zh-CN", mobile=True)`` → a new page in a fresh browser context (its own
    storage, cookies and service workers); all closed after the test."""
    contexts: list[Any] = []

    def open_page(locale: str = "zh-CN", mobile: bool = True) -> Any:
        size = {"width": 390, "height": 844} if mobile else {"width": 1280, "height": 720}
        context = browser.new_context(locale=locale, viewport=size, timezone_id="Europe/London")
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()
