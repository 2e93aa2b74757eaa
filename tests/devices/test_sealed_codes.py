"""Sealed device-bound codes ("CC3:"): nothing for bystanders, everything for enrolled readers."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from app.codes import base45, qr
from app.codes.device import (SEALED_PREFIX, issue_sealed_certificate, mint_sealed_code, reader_kid,
                              unwrap_sealed)
from app.codes.verify import Verifier
from app.signing.reader_keys import ReaderKeyRing
from tests.devices.conftest import KID, NOW, PSEUDONYM, World

ALL_LETTERS = ("stu", "sen", "dis", "sap", "hr", "rla", "rzt", "rjm")


class Readers:
    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.kid = reader_kid(self.key.public_key())
        self.held: dict[bytes, ec.EllipticCurvePrivateKey] = {self.kid: self.key}


@pytest.fixture
def readers() -> Readers:
    return Readers()


def sealed(world: World, readers: Readers, *, entitlements: tuple[str, ...] = ("sen", "dis", "hg"),
           now: float = NOW) -> str:
    cert = issue_sealed_certificate(world.service, KID, subject=PSEUDONYM, entitlements=entitlements,
                                    device_key=world.device.public_key(), now=NOW - 3600,
                                    expires_at=NOW + 20 * 3600)
    return mint_sealed_code(cert.certificate, world.device, readers.kid, readers.key.public_key(), now=now).code


def verifier(world: World, readers: Readers) -> Verifier:
    return world.make_verifier(reader_keys=lambda: readers.held)


def test_sealed_code_is_accepted_with_the_certified_claims_and_then_replayed(world: World, readers: Readers) -> None:
    check = verifier(world, readers)
    code = sealed(world, readers)
    decision = check.verify(code)
    assert (decision.decision, decision.reason) == ("accept", "ok")
    assert decision.claims is not None and decision.claims.sub == PSEUDONYM
    assert decision.claims.ent == ("dis", "hg", "sen") and decision.claims.exp == NOW + 30
    assert check.verify(code).reason == "replayed"


def test_every_sealed_code_fits_qr_version_12_at_m_whatever_it_holds(world: World, readers: Readers) -> None:
    sizes = {len(sealed(world, readers, entitlements=ents)) for ents in ((), ("sen",), ALL_LETTERS)}
    assert sizes == {418}  # padded: the length tells a bystander nothing either
    assert qr.version_of(sealed(world, readers, entitlements=ALL_LETTERS)) == 12


def test_reader_without_the_reader_key_denies_unknown_key(world: World, readers: Readers) -> None:
    code = sealed(world, readers)
    other = Readers()
    assert world.make_verifier(reader_keys=lambda: other.held).verify(code).reason == "unknown_key"
    assert world.make_verifier().verify(code).reason == "unknown_key"


def test_tampered_ciphertext_is_denied(world: World, readers: Readers) -> None:
    raw = bytearray(unwrap_sealed(sealed(world, readers)))
    check = verifier(world, readers)
    for position in (60, 120, 200):  # inside the certificate, its signature, the padding
        tampered = bytearray(raw)
        tampered[position] ^= 0x01
        decision = check.verify(SEALED_PREFIX + base45.encode(bytes(tampered)))
        assert decision.decision == "deny" and decision.reason in ("bad_signature", "malformed")


def test_code_sealed_for_one_reader_key_does_not_open_with_a_forged_kid(world: World, readers: Readers) -> None:
    raw = bytearray(unwrap_sealed(sealed(world, readers)))
    other = Readers()
    raw[7:11] = other.kid  # the kid of a key the reader holds, but the code was not sealed to it
    held = {**readers.held, other.kid: other.key}
    assert world.make_verifier(reader_keys=lambda: held).verify(
        SEALED_PREFIX + base45.encode(bytes(raw))).decision == "deny"


def test_two_codes_of_one_citizen_share_only_the_prefix_and_the_reader_kid(world: World, readers: Readers) -> None:
    a, b = (unwrap_sealed(sealed(world, readers)) for _ in range(2))
    assert len(a) == len(b) == 276
    assert a[:11] == b[:11]  # CBOR heads and the reader kid: the same for every citizen's code
    fields = lambda raw: (raw[13:46], raw[48:210], raw[212:])  # epk, ciphertext, signature
    for left, right in zip(fields(a), fields(b)):
        assert left != right and sum(x == y for x, y in zip(left, right)) < len(left) // 8


def test_photographed_sealed_code_shows_no_pseudonym_and_no_entitlement_letters(world: World, readers: Readers) -> None:
    zxingcpp = pytest.importorskip("zxingcpp")
    import io

    from PIL import Image
    code = sealed(world, readers, entitlements=ALL_LETTERS)
    image = Image.open(io.BytesIO(qr.png(code).content))
    text = zxingcpp.read_barcodes(image)[0].text
    assert text == code
    raw = unwrap_sealed(text)
    assert PSEUDONYM.encode() not in raw and PSEUDONYM.upper() not in text
    assert b"ent" not in raw and world.device.public_key().public_numbers().x.to_bytes(32, "big")[:8] not in raw
    assert verifier(world, readers).verify(text).reason == "ok"


def test_reader_key_ring_rotates_on_schedule_and_drops_retired_keys_after_grace(tmp_path: Path) -> None:
    ring = ReaderKeyRing(tmp_path, period_seconds=86400, grace_seconds=900)
    first = ring.keys(NOW)
    assert [k.state for k in first] == ["current", "next"]
    assert all(os.stat(p).st_mode & 0o077 == 0 for p in tmp_path.glob("reader-*.pem"))
    current, upcoming = first
    assert current.valid_until == upcoming.valid_from
    later = ring.keys(current.valid_until + 1)
    assert {k.kid: k.state for k in later} == {current.kid: "retired", upcoming.kid: "current",
                                              later[-1].kid: "next"}
    assert [k["kid"] for k in ring.for_phones(current.valid_until + 1)] == [upcoming.kid_text, later[-1].kid_text]
    gone = ring.keys(current.valid_until + 901)
    assert current.kid not in {k.kid for k in gone}


def test_code_sealed_to_a_rotated_out_reader_key_is_denied_after_the_readers_sync(
        world: World, tmp_path: Path) -> None:
    ring = ReaderKeyRing(tmp_path, period_seconds=3600, grace_seconds=60)
    old = ring.keys(NOW)[0]
    cert = issue_sealed_certificate(world.service, KID, subject=PSEUDONYM, entitlements=("sen",),
                                    device_key=world.device.public_key(), now=NOW - 3600, expires_at=NOW + 20 * 3600)
    code = mint_sealed_code(cert.certificate, world.device, old.kid, old.private_key.public_key(), now=NOW).code
    held = {k.kid: k.private_key for k in ring.keys(NOW + 30)}
    assert world.make_verifier(reader_keys=lambda: held).verify(code).reason == "ok"
    held = {k.kid: k.private_key for k in ring.keys(old.valid_until + 61)}  # rotated out, grace over
    assert world.make_verifier(reader_keys=lambda: held).verify(code).reason == "unknown_key"
    ring.revoke(ring.keys(old.valid_until + 61)[0].kid_text, now=old.valid_until + 61)
    assert len([k for k in ring.keys(old.valid_until + 62) if k.state == "current"]) == 1


def test_cc2_codes_are_still_accepted_beside_cc3(world: World, readers: Readers) -> None:
    check = verifier(world, readers)
    assert check.verify(world.code()).reason == "ok"
    assert check.verify(sealed(world, readers)).reason == "ok"
