"""Reservation entitlements (one letter per scenic spot) keep the fullest code within QR version 12
at error correction M, for the spots the city data ships."""
from __future__ import annotations

import io
import secrets

import zxingcpp
from PIL import Image

from app.codes import qr
from app.codes.mint import code_length, mint
from app.codes.wire import QR_MAX_CHARS
from app.registry import entitlements
from app.signing.keyring import KeyRing

from codes_support import T0, TTL

# Everything one citizen can hold on one day: every fare category, the annual pass, one health
# status (a citizen has one), and a reservation for every reservable spot.
EVERY_AT_ONCE = (entitlements.STUDENT, entitlements.SENIOR, entitlements.DISABLED,
                 entitlements.SCENIC_PASS, entitlements.HEALTH_GREEN)


def fullest() -> tuple[str, ...]:
    return EVERY_AT_ONCE + tuple(sorted(entitlements.city_reservations().values()))


def test_every_shipped_spot_can_be_reserved_with_its_own_entitlement() -> None:
    assert dict(entitlements.city_reservations()) == {
        "laoshan": "rla", "zhanshan_temple": "rzt", "jimo_old_town": "rjm"}


def test_fullest_code_with_every_spot_reserved_fits_qr_version_12(ring: KeyRing) -> None:
    """285 characters of 287: eight letters. One more spot would fit (286); a fifth would not."""
    names = fullest()
    minted = mint(ring, issuer="cc", subject=secrets.token_urlsafe(8), entitlements=names,
                  ttl_seconds=TTL, now=T0)
    assert len(minted.code) == 285 <= QR_MAX_CHARS
    rendered = qr.png(minted.code)
    assert qr.version_of(minted.code) == rendered.version == 12 <= qr.MAX_VERSION
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(rendered.content)),
                                     formats=zxingcpp.BarcodeFormat.QRCode)
    assert [(barcode.text, barcode.ec_level) for barcode in decoded] == [(minted.code, "M")]


def test_the_budget_leaves_room_for_exactly_one_more_letter() -> None:
    one_more = fullest() + (entitlements.HEALTH_YELLOW,)  # any other letter costs the same byte
    assert code_length(issuer="cc", subject="s" * 11, entitlements=one_more) == QR_MAX_CHARS - 1
    two_more = one_more + (entitlements.HEALTH_RED,)
    assert code_length(issuer="cc", subject="s" * 11, entitlements=two_more) > QR_MAX_CHARS
