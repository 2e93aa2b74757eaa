"""A phone in headless Chromium (Playwright), with the line protocol of node_phone.mjs: prints the
hello line (public JWK, register proof), reads one job line, prints the result line (phone.mjs).

    python loadtest/phone/chromium_phone.py <citizen_id>

The page's origin is http://127.0.0.1:9 (a secure context, so WebCrypto is there); nothing listens
there: Playwright answers its requests from app/web/static and loadtest/phone of this repository.
Chromium is ``$CITYCODE_CHROMIUM`` or /usr/bin/chromium (Debian's; Playwright's download is not
used). A separate process, so that a test process already driving Playwright can use it too.
"""
from __future__ import annotations

import json
import mimetypes
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "http://127.0.0.1:9"
SERVED = ("app/web/static/", "loadtest/phone/")
CHROMIUM = os.environ.get("CITYCODE_CHROMIUM", "/usr/bin/chromium")


def _serve(route: Any) -> None:
    path = route.request.url[len(ORIGIN) + 1:].split("?")[0]
    if path == "":
        route.fulfill(status=200, content_type="text/html", body="<!doctype html><title>phone</title>")
        return
    file = ROOT / path
    if not path.startswith(SERVED) or ".." in path or not file.is_file():
        route.fulfill(status=404, body="")
        return
    kind = "text/javascript" if file.suffix in (".js", ".mjs") else mimetypes.guess_type(file.name)[0]
    route.fulfill(status=200, content_type=kind or "application/octet-stream", body=file.read_bytes())


def main(citizen_id: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.route(f"{ORIGIN}/**", _serve)
            page.goto(f"{ORIGIN}/")
            hello = page.evaluate("""async (id) => {
                window.phone = await import('/loadtest/phone/phone.mjs');
                return window.phone.hello(id);
            }""", citizen_id)
            print(json.dumps({**hello, "agent": page.evaluate("navigator.userAgent")}), flush=True)
            line = sys.stdin.readline()
            if line.strip():
                print(json.dumps(page.evaluate("(job) => window.phone.mint(job)", json.loads(line))), flush=True)
        finally:
            browser.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "cit_test")
