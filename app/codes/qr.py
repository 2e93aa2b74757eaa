"""QR rendering of a code: error correction M, quiet zone 4, PNG (Pillow) or SVG (path)."""
from __future__ import annotations

import io
from dataclasses import dataclass

import qrcode
import qrcode.constants
from qrcode.image.pil import PilImage
from qrcode.image.svg import SvgPathImage

MAX_VERSION = 12  # the design's budget: a phone screen at a gate reads this size reliably


@dataclass(frozen=True)
class RenderedQr:
    content: bytes
    mimetype: str
    version: int


def _matrix(data: str) -> qrcode.QRCode:  # type: ignore[type-arg]
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4, box_size=8)
    qr.add_data(data, optimize=0)
    qr.make(fit=True)
    return qr


def version_of(data: str) -> int:
    """The QR version ``data`` needs at error correction M."""
    return int(_matrix(data).version)


def png(data: str) -> RenderedQr:
    qr = _matrix(data)
    buffer = io.BytesIO()
    qr.make_image(image_factory=PilImage).save(buffer, format="PNG", optimize=False)
    return RenderedQr(buffer.getvalue(), "image/png", int(qr.version))


def svg(data: str) -> RenderedQr:
    qr = _matrix(data)
    buffer = io.BytesIO()
    qr.make_image(image_factory=SvgPathImage).save(buffer)
    return RenderedQr(buffer.getvalue(), "image/svg+xml", int(qr.version))
