"""Fixtures for the browser tests: the real app served over real HTTP (werkzeug on a thread of
the test process, on the app of ``tests/conftest.py``: real redis-server, real SQLite file, real
keys), and Debian's headless Chromium driven by Playwright.

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
from flask import Flask
from flask.testing import FlaskClient

from app.config import Settings
from app.store.embedded import EmbeddedRedis
from tests.conftest import ADMIN_TOKEN
from tests.web.support import CODE_TTL_SECONDS, Served, Site

CHROMIUM = os.environ.get("CITYCODE_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture
def settings(tmp_path: Path, redis_server: EmbeddedRedis) -> Settings:
    return Settings(data_dir=tmp_path / "data", redis_url=redis_server.url, admin_token=ADMIN_TOKEN,
                    code_ttl_seconds=CODE_TTL_SECONDS)


@pytest.fixture
def site(app: Flask, client: FlaskClient, tmp_path: Path) -> Iterator[Site]:
    served = Served(app)
    shots = Path(os.environ.get("CITYCODE_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    try:
        yield Site(app, client, served.base_url, shots)
    finally:
        served.stop()


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
