"""Device-bound codes in the one core: what the phone mints offline, every reader decides alike."""
from __future__ import annotations

import cbor2
import pytest
import segno
from cryptography.hazmat.primitives.asymmetric import ec

from app.codes import base45, cbor, qr
from app.codes.device import DEVICE_PREFIX, cose_key, sign1, unwrap
from app.codes.errors import Malformed
from tests.devices.conftest import ENTITLEMENTS, KID, NOW, PSEUDONYM, World


def reason(world: World, code: str) -> str:
    return world.verifier.verify(code).reason


def test_fresh_device_code_is_accepted_with_the_certified_claims(world: World) -> None:
    decision = world.verifier.verify(world.code())
    assert (decision.decision, decision.reason) == ("accept", "ok")
    claims = decision.claims
    assert claims is not None
    assert (claims.iss, claims.sub, claims.kid) == ("cc", PSEUDONYM, KID)
    assert claims.ent == tuple(sorted(ENTITLEMENTS))
    assert claims.iat == world.cert.issued_at  # the moment the entitlements were read
    assert claims.exp == NOW + 30
    assert claims.jti.startswith(world.cert.cert_id) and len(claims.jti) == 22


def test_second_scan_of_the_same_code_is_replayed(world: World) -> None:
    code = world.code()
    assert reason(world, code) == "ok"
    assert reason(world, code) == "replayed"


def test_two_codes_of_one_certificate_are_both_accepted(world: World) -> None:
    assert [reason(world, world.code()) for _ in range(3)] == ["ok", "ok", "ok"]


def test_code_older_than_its_lifetime_plus_leeway_is_expired(world: World) -> None:
    assert reason(world, world.code(now=NOW - 36)) == "expired"
    assert reason(world, world.code(now=NOW - 34)) == "ok"


def test_code_from_the_future_is_not_yet_valid(world: World) -> None:
    assert reason(world, world.code(now=NOW + 6)) == "not_yet_valid"
    assert reason(world, world.code(now=NOW + 4)) == "ok"


def test_expired_certificate_denies_fresh_codes(world: World) -> None:
    old = world.certificate(now=NOW - 86400, expires_at=NOW - 60)
    assert reason(world, world.code(cert=old.certificate)) == "expired"


def test_certificate_issued_in_the_future_is_not_yet_valid(world: World) -> None:
    early = world.certificate(now=NOW + 600, expires_at=NOW + 7200)
    assert reason(world, world.code(cert=early.certificate)) == "not_yet_valid"


def test_code_signed_by_another_device_key_is_bad_signature(world: World) -> None:
    thief = ec.generate_private_key(ec.SECP256R1())
    assert reason(world, world.code(device=thief)) == "bad_signature"


def test_certificate_signed_by_an_unpublished_key_is_bad_signature(world: World) -> None:
    forged = world.certificate(signing_key=ec.generate_private_key(ec.SECP256R1()))
    assert reason(world, world.code(cert=forged.certificate)) == "bad_signature"


def test_certificate_naming_an_unknown_kid_is_unknown_key(world: World) -> None:
    other = world.certificate(kid="nobody00")
    assert reason(world, world.code(cert=other.certificate)) == "unknown_key"


def test_tampered_certificate_payload_is_bad_signature(world: World) -> None:
    parts = cbor2.loads(world.cert.certificate)
    claims = cbor2.loads(parts[2])
    claims["ent"] = "degp" + "s"  # add the student letter
    parts[2] = cbor2.dumps(claims)
    assert reason(world, world.code(cert=cbor2.dumps(parts))) == "bad_signature"


def test_tampered_code_time_is_bad_signature(world: World) -> None:
    outer = cbor2.loads(unwrap(world.code()))
    cert, t, nonce = cbor2.loads(outer[2])
    outer[2] = cbor2.dumps([cert, t + 1, nonce])
    tampered = DEVICE_PREFIX + base45.encode(cbor2.dumps(outer))
    assert reason(world, tampered) == "bad_signature"


def test_revoked_certificate_is_denied_after_its_signatures_check(world: World) -> None:
    world.trust.apply([{"kind": "code_revoked", "id": f"cc/{world.cert.cert_id}", "at": NOW - 10}])
    decision = world.verifier.verify(world.code())
    assert decision.reason == "revoked" and decision.claims is not None


def test_suspended_citizen_is_denied(world: World) -> None:
    world.trust.suspend(PSEUDONYM)
    assert reason(world, world.code()) == "suspended"


def test_entitlement_revoked_after_certification_is_dropped(world: World) -> None:
    world.trust.revoke_entitlement(PSEUDONYM, "dis", NOW - 100)
    decision = world.verifier.verify(world.code())
    assert decision.accepted and decision.claims is not None and "dis" not in decision.claims.ent


def test_seen_certificate_costs_no_second_certificate_check(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    assert reason(world, world.code()) == "ok"
    checks: list[bytes] = []
    original = world.verifier.device._check_certificate
    monkeypatch.setattr(world.verifier.device, "_check_certificate",
                        lambda raw: checks.append(raw) or original(raw))
    assert reason(world, world.code()) == "ok"
    assert checks == []
    assert len(world.verifier.device.cache) == 1


def test_cached_certificate_stops_counting_when_its_key_leaves_the_key_set(world: World) -> None:
    assert reason(world, world.code()) == "ok"
    del world.keys[KID]
    assert reason(world, world.code()) == "unknown_key"


def test_cache_is_bounded_least_recently_used_first(world: World) -> None:
    verifier = world.make_verifier(certificate_cache_size=2)
    certs = [world.certificate(now=NOW - 3600 - i) for i in range(3)]
    for cert in certs:
        assert verifier.verify(world.code(cert=cert.certificate)).reason == "ok"
    assert len(verifier.device.cache) == 2
    assert verifier.device.cache.get(certs[0].certificate) is None


def test_reader_without_es256_refuses_device_codes(world: World) -> None:
    verifier = world.make_verifier(algorithms=("EdDSA",))
    assert verifier.verify(world.code()).reason == "bad_signature"


@pytest.mark.parametrize("mangle", [
    lambda c: c + "A",  # 1 mod 3 after the prefix? length changes the last group
    lambda c: c.lower(),  # not base45
    lambda c: c[:40],  # truncated
    lambda c: c + "0" * 600,  # over the size cap
    lambda c: "CC2:" + base45.encode(cbor2.dumps(cbor2.CBORTag(18, cbor2.loads(unwrap(c))))),  # a tag
])
def test_damaged_device_codes_are_malformed(world: World, mangle) -> None:  # type: ignore[no-untyped-def]
    assert reason(world, mangle(world.code())) == "malformed"


def test_unexpected_protected_header_is_malformed(world: World) -> None:
    outer = cbor2.loads(unwrap(world.code()))
    payload = outer[2]
    resigned = sign1(world.device, cbor2.dumps({1: -7, 4: b"x"}), payload)
    assert reason(world, DEVICE_PREFIX + base45.encode(resigned)) == "malformed"


@pytest.mark.parametrize("raw", [
    bytes.fromhex("9f01ff"),  # indefinite array
    bytes.fromhex("a201010102"),  # duplicate key
    bytes.fromhex("0101"),  # trailing byte
    bytes.fromhex("f93c00"),  # float
    bytes.fromhex("f6"),  # null
    bytes.fromhex("1801"),  # not the shortest form
    bytes.fromhex("c11a514b67b0"),  # tag 1
    bytes.fromhex("c249010000000000000000"),  # bignum
])
def test_strict_cbor_refuses_what_the_format_never_uses(raw: bytes) -> None:
    with pytest.raises(Malformed):
        cbor.loads(raw)


def test_strict_cbor_reads_what_cbor2_writes() -> None:
    value = [b"\x01" * 300, {1: -7, 4: b"kid", "ent": "eg"}, 2**40, -65537, True, False, "中"]
    assert cbor.loads(cbor2.dumps(value)) == value


@pytest.mark.parametrize("raw, text", [(b"AB", "BB8"), (b"Hello!!", "%69 VD92EX0"),
                                       (b"base-45", "UJCLQE7W581"), (b"ietf!", "QED8WEX0")])
def test_base45_matches_rfc_9285_examples(raw: bytes, text: str) -> None:
    assert base45.encode(raw) == text
    assert base45.decode(text) == raw == base45.decode_slow(text)


@pytest.mark.parametrize("text", ["GGW", "GGW0", "::", "ZZZ", "bb8", "BB"])
def test_base45_refuses_non_canonical_text(text: str) -> None:
    with pytest.raises(ValueError):
        base45.decode(text)


def test_realistic_code_with_nine_letters_fits_qr_version_12_at_m(world: World) -> None:
    cert = world.certificate(entitlements=("stu", "sen", "dis", "sap", "hr", "rla", "rzt", "rjm"))
    code = world.code(cert=cert.certificate)
    symbol = segno.make(code, error="m", micro=False)
    assert symbol.mode == "alphanumeric"
    assert symbol.version <= 12 and qr.version_of(code) == symbol.version


def test_device_key_is_carried_compressed(world: World) -> None:
    key = cose_key(world.device.public_key())
    assert type(key[-3]) is bool and len(key[-2]) == 32


def test_pycose_verifies_both_signatures(world: World) -> None:
    """A second COSE implementation (pycose) checks the certificate with the service key and the
    code with the device key taken from the certificate's cnf claim."""
    from pycose.keys import EC2Key
    from pycose.keys.curves import P256
    from pycose.messages import Sign1Message
    from cryptography.hazmat.primitives import serialization

    def ec2(public: ec.EllipticCurvePublicKey) -> EC2Key:
        numbers = public.public_numbers()
        return EC2Key(crv=P256, x=numbers.x.to_bytes(32, "big"), y=numbers.y.to_bytes(32, "big"))

    def message(raw: bytes) -> Sign1Message:  # untagged COSE_Sign1, as the format has it
        return Sign1Message.from_cose_obj(cbor2.loads(raw), True)  # type: ignore[no-any-return]

    outer = message(unwrap(world.code()))
    cert = message(cbor2.loads(outer.payload)[0])
    cert.key = ec2(world.service.public_key())
    assert cert.verify_signature()
    cnf = cbor2.loads(cert.payload)[8][1]
    point = bytes((3 if cnf[-3] else 2,)) + cnf[-2]
    device = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    assert device.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint) == point
    outer.key = ec2(device)
    assert outer.verify_signature()


def test_qr_image_of_a_device_code_decodes_back_to_the_same_code(world: World) -> None:
    import io

    import zxingcpp
    from PIL import Image

    code = world.code()
    image = Image.open(io.BytesIO(qr.png(code).content))
    found = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    assert [result.text for result in found] == [code]
    assert reason(world, found[0].text) == "ok"


def test_non_shortest_length_in_the_code_is_malformed_even_when_signed(world: World) -> None:
    raw = unwrap(world.code())
    cert, t, nonce = cbor2.loads(cbor2.loads(raw)[2])
    payload = b"\x83" + cbor2.dumps(cert) + b"\x1b" + t.to_bytes(8, "big") + cbor2.dumps(nonce)  # t in 9 bytes
    resigned = sign1(world.device, b"\xa1\x01\x26", payload)
    assert reason(world, DEVICE_PREFIX + base45.encode(resigned)) == "malformed"


def test_unexpected_unprotected_member_is_malformed(world: World) -> None:
    outer = cbor2.loads(unwrap(world.code()))
    outer[1] = {4: b"kid"}
    assert reason(world, DEVICE_PREFIX + base45.encode(cbor2.dumps(outer))) == "malformed"


def test_base45_fast_decoder_agrees_with_the_rfc_arithmetic_on_any_text() -> None:
    from hypothesis import given, settings, strategies as st

    @settings(max_examples=3000, deadline=None)
    @given(st.text(alphabet=base45.ALPHABET + "a\u00e9", max_size=14))
    def agree(text: str) -> None:
        outcomes = []
        for decoder in (base45.decode, base45.decode_slow):
            try:
                outcomes.append(decoder(text))
            except ValueError:
                outcomes.append(None)
        assert outcomes[0] == outcomes[1]

    agree()
