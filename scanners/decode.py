"""Real QR images to code strings, with zxing-cpp: a PNG file, a folder of them, or a citizen's
live ``GET /v1/me/code.png``.

A camera at a gate hands the reader a picture, not a string; the simulators do the same so that
what they time and decide is what a gate would. Only the QR format is searched: scanning every
format, zxing-cpp now and then also "finds" a 1-D barcode in the module pattern.
"""
from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests
import zxingcpp
from PIL import Image

IMAGE_SUFFIXES = (".png",)
LIVE_TIMEOUT_S = 5.0


class DecodeError(Exception):
    """The image holds no readable QR code (or not exactly one)."""


class FetchError(Exception):
    """The live code image could not be fetched (network, token, suspended citizen)."""


@dataclass(frozen=True)
class DecodedImage:
    """The text of the one QR code in an image, where it came from and how long decoding took."""

    source: str
    text: str
    decode_ms: float


def decode_png(content: bytes, source: str = "<bytes>") -> DecodedImage:
    """Decode the single QR code in PNG ``content``; DecodeError if there is none or several."""
    started = time.perf_counter()
    try:
        with Image.open(io.BytesIO(content)) as image:
            image.load()
            found = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    except (OSError, ValueError) as exc:
        raise DecodeError(f"{source}: not a readable image ({exc})") from None
    elapsed = (time.perf_counter() - started) * 1000.0
    texts = [barcode.text for barcode in found if barcode.valid]
    if len(texts) != 1:
        raise DecodeError(f"{source}: {len(texts)} QR codes found, expected exactly one")
    return DecodedImage(source, texts[0], elapsed)


def decode_file(path: Path) -> DecodedImage:
    """Decode one PNG file."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise DecodeError(f"{path}: {exc.strerror or exc}") from None
    return decode_png(content, str(path))


def image_files(path: Path) -> list[Path]:
    """``path`` itself if it is a file, else the PNG files in the folder, sorted by name."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return [path]


def fetch_code_png(base_url: str, app_token: str, session: requests.Session | None = None,
                   timeout: float = LIVE_TIMEOUT_S) -> bytes:
    """A fresh code's QR image from the citizen app endpoint, as the phone would show it."""
    url = base_url.rstrip("/") + "/v1/me/code.png"
    getter = session or requests
    try:
        response = getter.get(url, headers={"Authorization": f"Bearer {app_token}"}, timeout=timeout)
    except requests.RequestException as exc:
        raise FetchError(f"GET {url}: {type(exc).__name__}") from None
    if response.status_code != 200 or not response.headers.get("Content-Type", "").startswith("image/png"):
        raise FetchError(f"GET {url}: HTTP {response.status_code} {_problem_detail(response)}".rstrip())
    return response.content


def decode_live(base_url: str, app_token: str, session: requests.Session | None = None) -> DecodedImage:
    """Fetch a citizen's current code image and decode it (decode time excludes the fetch)."""
    return decode_png(fetch_code_png(base_url, app_token, session), f"{base_url.rstrip('/')}/v1/me/code.png")


def iter_decoded(paths: list[Path]) -> Iterator[DecodedImage | DecodeError]:
    """Each file decoded, or the DecodeError it gave: one bad image does not end a run."""
    for path in paths:
        try:
            yield decode_file(path)
        except DecodeError as exc:
            yield exc


def _problem_detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("detail", "")) if isinstance(body, dict) else ""


def warm_up() -> None:
    """Decode one small rendered code so the first real image is not timed with library start-up
    (image plugins, zxing-cpp's first allocation)."""
    from app.codes import qr

    decode_png(qr.png("citycode warm-up").content, "<warm-up>")
