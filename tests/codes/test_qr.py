"""QR rendering (app.codes.qr): what a phone shows at a gate decodes back to exactly the code."""
from __future__ import annotations

import io
import secrets
import xml.etree.ElementTree as ET

import pytest
import qrcode
import qrcode.constants
import segno
import zxingcpp
from PIL import Image

from app.codes import qr
from app.codes.mint import mint
from app.signing.keyring import KeyRing

from codes_support import ISSUER, T0, TTL

SVG_ROOT = "{http://www.w3.org/2000/svg}svg"
REALISTIC = ("sen", "dis", "sap", "hg")  # senior + disabled + scenic pass + health green
ABSOLUTE_WORST = ("stu", "sen", "dis", "sap", "hg")  # every letter a code can hold at once


def realistic_code(ring: KeyRing, entitlements: tuple[str, ...] = REALISTIC) -> str:
    """As the service mints: an 11-character pseudonym (``token_urlsafe(8)``), issuer "cc"."""
    return mint(ring, issuer=ISSUER, subject=secrets.token_urlsafe(8), entitlements=entitlements,
                ttl_seconds=TTL, now=T0).code


def decode_png(content: bytes) -> list[zxingcpp.Barcode]:
    # QR only: searching every format, zxing-cpp now and then also "finds" a 1D barcode in the
    # module pattern (seen about once in 300 codes).
    return zxingcpp.read_barcodes(Image.open(io.BytesIO(content)), formats=zxingcpp.BarcodeFormat.QRCode)


@pytest.fixture
def code(ring: KeyRing) -> str:
    return realistic_code(ring)


def test_png_decodes_to_exactly_the_code_at_ec_m(code: str) -> None:
    rendered = qr.png(code)
    assert rendered.mimetype == "image/png"
    decoded = decode_png(rendered.content)
    assert [barcode.text for barcode in decoded] == [code]
    assert decoded[0].ec_level == "M"
    assert decoded[0].extra["Version"] == str(rendered.version)


def test_version_of_matches_the_png(code: str) -> None:
    rendered = qr.png(code)
    assert qr.version_of(code) == rendered.version == int(decode_png(rendered.content)[0].extra["Version"])
    assert qr.svg(code).version == rendered.version


def test_png_is_one_bit_with_4_pixel_modules_and_a_4_module_quiet_zone(code: str) -> None:
    rendered = qr.png(code)
    image = Image.open(io.BytesIO(rendered.content))
    modules = 17 + 4 * rendered.version
    assert qr.MODULE_PIXELS == 4
    assert image.mode == "1" and image.size == ((modules + 8) * 4,) * 2
    border = 4 * 4
    width = image.size[0]
    for box in ((0, 0, width, border), (0, width - border, width, width),
                (0, 0, border, width), (width - border, 0, width, width)):
        assert image.crop(box).getextrema() == (255, 255)  # all light
    assert image.getpixel((border, border)) == 0  # the finder pattern starts right after it


def test_svg_is_well_formed_with_an_svg_root(code: str) -> None:
    rendered = qr.svg(code)
    assert rendered.mimetype == "image/svg+xml"
    root = ET.fromstring(rendered.content)
    assert root.tag == SVG_ROOT
    side = (17 + 4 * rendered.version + 8) * qr.MODULE_PIXELS
    assert root.get("viewBox") == f"0 0 {side} {side}"  # scales without cropping
    assert root.findall("{http://www.w3.org/2000/svg}*")  # something is drawn


def test_realistic_and_worst_codes_fit_the_budget(ring: KeyRing) -> None:
    for entitlements in (REALISTIC, ABSOLUTE_WORST):
        code = realistic_code(ring, entitlements)
        assert qr.version_of(code) <= qr.MAX_VERSION
        assert qr.png(code).version <= qr.MAX_VERSION


def test_mask_is_chosen_per_symbol_not_fixed() -> None:
    """Full mask selection (penalty rules) is kept: different data, different masks."""
    masks = {decode_png(qr.png(f"cc-mask-probe-{i}" * 10).content)[0].extra["DataMask"] for i in range(8)}
    assert len(masks) > 1


@pytest.mark.parametrize("version", range(1, 41))
def test_version_of_agrees_with_segno_at_every_capacity_boundary(version: int) -> None:
    capacity = qr._BYTE_CAPACITY_M[version - 1]
    for size in (capacity, capacity + 1):
        if size > qr._BYTE_CAPACITY_M[-1]:
            with pytest.raises(ValueError):
                qr.version_of("x" * size)
            continue
        built = segno.make("x" * size, error="m", mode="byte", micro=False, boost_error=False, mask=0)
        assert qr.version_of("x" * size) == built.version


@pytest.mark.parametrize("size", [1, 14, 15, 250, 251, 252, 286, 287, 288, 331, 332])
def test_version_of_agrees_with_qrcode(size: int) -> None:
    """An independent encoder agrees on the versions around the budget."""
    other = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, mask_pattern=0)
    other.add_data("x" * size, optimize=0)
    other.make(fit=True)
    assert qr.version_of("x" * size) == other.version


def test_non_ascii_text_is_measured_by_the_encoder() -> None:
    text = "一码通城" * 20
    assert qr.version_of(text) == qr.png(text).version
    assert [barcode.text for barcode in decode_png(qr.png(text).content)] == [text]
