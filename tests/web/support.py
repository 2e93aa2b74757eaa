"""What the browser tests share: the served app, a site handle, signing in on the citizen page."""
from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import zxingcpp
from PIL import Image

CODE_TTL_SECONDS = 10  # the shortest the service allows: a refresh comes within 7 s


class Answer:
    """A response with the bits of Flask's test response the shared helpers use."""

    def __init__(self, response: requests.Response) -> None:
        self.status_code = response.status_code
        self.headers = response.headers
        self._response = response

    def get_json(self) -> Any:
        return self._response.json() if self._response.content else None


class HttpClient:
    """The shared helpers' client interface (``tests.helpers`` take a FlaskClient) over real HTTP
    to ``citycode serve``: ``get``/``post``/``delete`` with ``headers`` and ``json``."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()

    def open(self, method: str, path: str, **kwargs: Any) -> Answer:
        kwargs.setdefault("timeout", 15)
        return Answer(self.session.request(method, self.base_url + path, **kwargs))

    def get(self, path: str, **kwargs: Any) -> Answer:
        return self.open("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Answer:
        return self.open("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Answer:
        return self.open("DELETE", path, **kwargs)


@dataclass
class Site:
    """The served app (``citycode serve``), an HTTP client for set-up through the API, and where
    screenshots go."""

    client: HttpClient
    base_url: str
    shots: Path

    def url(self, path: str) -> str:
        return self.base_url + path

    def recorded(self, app_token: str, action: str = "scan", timeout: float = 15.0) -> None:
        """Wait until the record writer (a process of ``citycode serve``) has put a scan into the
        citizen's history."""
        deadline = time.monotonic() + timeout
        while True:
            history = self.client.get("/v1/me/history", headers={"Authorization": f"Bearer {app_token}"})
            if any(e["action"] == action for e in history.get_json()["entries"]):
                return
            assert time.monotonic() < deadline, f"no {action} in the history after {timeout} s"
            time.sleep(0.1)


def sign_in(page: Any, site: Site, app_token: str, path: str = "/app") -> None:
    """Sign in on the citizen page as a citizen would, and wait for the code to show."""
    page.goto(site.url(path))
    page.fill("#token", app_token)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#qr svg")


def shown_code(page: Any) -> str:
    """What a camera reads off the screen: a screenshot of the QR, decoded by zxing-cpp."""
    image = Image.open(io.BytesIO(page.locator("#qr").screenshot()))
    found = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(found) == 1, "no QR code readable on the screen"
    return found[0].text


def verify(site: Site, reader: dict[str, str], shown: str) -> dict[str, Any]:
    response = site.client.post("/v1/verify", headers=reader, json={"code": shown})
    assert response.status_code == 200
    return response.get_json()  # type: ignore[no-any-return]


# Lighthouse-style basics: a title, a lang, a name for every control, and text contrast of at least
# 4.5:1 (3:1 for large text) against the first opaque background behind it (WCAG 2 formula).
AUDIT = """() => {
  const problems = [];
  if (!document.title.trim()) problems.push('no <title>');
  if (!document.documentElement.lang) problems.push('no lang attribute');
  const visible = (el) => el.checkVisibility();
  for (const el of document.querySelectorAll('button, a[href], input, select, [role=img]')) {
    if (!visible(el)) continue;
    const labels = el.labels ? [...el.labels].map((l) => l.textContent).join('') : '';
    const name = (el.getAttribute('aria-label') || el.textContent || labels).trim();
    if (!name) problems.push('no accessible name: ' + el.outerHTML.slice(0, 80));
  }
  const rgba = (text) => {
    const p = text.match(/[\\d.]+/g).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const lum = (c) => [c.r, c.g, c.b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  const behind = (el) => {
    for (let e = el; e; e = e.parentElement) { const c = rgba(getComputedStyle(e).backgroundColor); if (c.a > 0.5) return c; }
    return { r: 255, g: 255, b: 255, a: 1 };
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const checked = new Set();
  let texts = 0;
  while (walker.nextNode()) {
    const el = walker.currentNode.parentElement;
    if (!walker.currentNode.textContent.trim() || checked.has(el) || !visible(el)) continue;
    checked.add(el);
    texts += 1;
    const style = getComputedStyle(el);
    const [a, b] = [lum(rgba(style.color)), lum(behind(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (parseInt(style.fontWeight, 10) >= 700 && size >= 18.66);
    if (ratio < (large ? 3 : 4.5)) problems.push(`contrast ${ratio.toFixed(2)}: ${el.textContent.trim().slice(0, 40)}`);
  }
  if (texts < 5) problems.push('hardly any text checked');
  return problems;
}"""


def photograph(page: Any, site: Site, name: str) -> None:
    """A full-page screenshot, reduced to a small palette PNG."""
    image = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
    image.quantize(colors=64).save(site.shots / f"{name}.png", optimize=True)
