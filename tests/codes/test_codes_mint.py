"""Minting: exact header and claims, compact JSON, random jti, size budget and QR version."""
from __future__ import annotations

import base64
import json
from typing import Callable

import pytest
import qrcode
import zxingcpp

from app.codes.mint import CODE_TYPE, MintedCode, code_length, mint
from app.codes.verify import Verifier
from app.codes.wire import QR_MAX_CHARS
from app.signing.keyring import KeyRing

from codes_support import ISSUER, SUBJECT, T0, TTL, FrozenClock


def segments(code: str) -> tuple[bytes, bytes, bytes]:
    def raw(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    header, payload, signature = code.split(".")
    return raw(header), raw(payload), raw(signature)


def qr_version(code: str) -> int:
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    qr.add_data(code)
    qr.make(fit=True)
    return qr.version


def test_header_has_exactly_alg_kid_typ(genuine: MintedCode, ring: KeyRing) -> None:
    header = json.loads(segments(genuine.code)[0])
    assert header == {"alg": "ES256", "kid": ring.current_kid, "typ": CODE_TYPE}
    assert list(header) == ["alg", "kid", "typ"]


def test_claims_are_exactly_iss_sub_iat_exp_jti_ent(genuine: MintedCode) -> None:
    claims = json.loads(segments(genuine.code)[1])
    assert claims == {"iss": ISSUER, "sub": SUBJECT, "iat": T0, "exp": T0 + TTL,
                      "jti": genuine.jti, "ent": ["student", "senior", "scenic_pass"]}
    assert (genuine.issued_at, genuine.expires_at) == (T0, T0 + TTL)


def test_json_is_compact(genuine: MintedCode) -> None:
    header, payload, _ = segments(genuine.code)
    for raw in (header, payload):
        assert b" " not in raw
        assert raw == json.dumps(json.loads(raw), separators=(",", ":")).encode()


def test_fractional_now_is_floored_to_whole_seconds(issue: Callable[..., MintedCode]) -> None:
    minted = issue(now=T0 + 0.999)
    assert minted.issued_at == T0
    assert json.loads(segments(minted.code)[1])["iat"] == T0


def test_jti_has_72_random_bits_and_never_repeats(issue: Callable[..., MintedCode]) -> None:
    jtis = {issue().jti for _ in range(2000)}
    assert len(jtis) == 2000
    for jti in jtis:
        assert len(jti) == 12 and len(base64.urlsafe_b64decode(jti)) == 9


def test_es256_signature_is_raw_r_and_s(genuine: MintedCode) -> None:
    assert len(segments(genuine.code)[2]) == 64


def test_eddsa_ring_mints_eddsa_codes(issue: Callable[..., MintedCode], ed_ring: KeyRing) -> None:
    minted = issue(ed_ring)
    header, _, signature = segments(minted.code)
    assert json.loads(header)["alg"] == "EdDSA" and len(signature) == 64


@pytest.mark.parametrize("bad", [
    {"issuer": ""}, {"subject": ""}, {"subject": "s" * 65}, {"entitlements": ["e"] * 17},
    {"entitlements": "student"}, {"entitlements": [""]}, {"entitlements": [1]},
    {"ttl_seconds": 0}, {"ttl_seconds": 1.5},
])
def test_mint_refuses_inputs_the_verifier_would_reject(issue: Callable[..., MintedCode],
                                                       bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        issue(**bad)


@pytest.mark.parametrize("subject,entitlements", [
    ("p_0123456789", []), ("p_7Hq2LmX9vKc4Rt", ["student", "senior", "disabled", "scenic_pass"]),
    ("p_7Hq2LmX9vKc4Rt", ["health_green"]), ("x" * 64, ["e" * 32] * 16),
])
def test_code_length_predicts_the_minted_length(issue: Callable[..., MintedCode], subject: str,
                                                entitlements: list[str]) -> None:
    minted = issue(subject=subject, entitlements=entitlements)
    assert len(minted.code) == code_length(issuer=ISSUER, subject=subject, entitlements=entitlements)


def test_fixed_costs_leave_105_json_bytes_for_the_payload() -> None:
    # header 58 + signature 86 + two dots = 146; 287 - 146 = 141 base64url chars hold 105 bytes,
    # of which 83 are fixed (member names, two 10-digit times, 12-char jti): 22 bytes remain for
    # iss + sub + the entitlement list's contents.
    assert code_length(issuer="cc", subject="s" * 20, entitlements=[]) == QR_MAX_CHARS - 1
    assert code_length(issuer="cc", subject="s" * 21, entitlements=[]) == QR_MAX_CHARS + 1


def test_code_within_the_budget_renders_at_qr_version_12(issue: Callable[..., MintedCode]) -> None:
    minted = issue(subject="p_012345678", entitlements=["st", "sr"])  # 11-char sub, 2 short codes
    assert len(minted.code) <= QR_MAX_CHARS
    assert qr_version(minted.code) <= 12


REALISTIC_WORST = dict(subject="p_7Hq2LmX9vKc4Rt",
                       entitlements=["student", "senior", "disabled", "scenic_pass"])


def test_realistic_worst_case_size_is_pinned(issue: Callable[..., MintedCode]) -> None:
    """16-char pseudonym, 4 entitlements by full name: 338 chars, QR version 14 at EC M.
    Pinned so growth is noticed; see the xfail below for the design target."""
    minted = issue(**REALISTIC_WORST)
    assert len(minted.code) == 338
    assert qr_version(minted.code) == 14


@pytest.mark.xfail(strict=True, reason=(
    "design target QR version <= 12 at EC M (287 chars) is out of reach for 3-4 entitlements: "
    "fixed parts take 229 of 287 chars; even 3 one-letter wire codes with an 11-char sub make 289"))
def test_realistic_worst_case_fits_qr_version_12(issue: Callable[..., MintedCode]) -> None:
    minted = issue(**REALISTIC_WORST)
    assert len(minted.code) <= QR_MAX_CHARS
    assert qr_version(minted.code) <= 12


def test_code_survives_a_real_qr_round_trip(issue: Callable[..., MintedCode],
                                            verifier: Verifier) -> None:
    minted = issue(**REALISTIC_WORST)
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    qr.add_data(minted.code)
    qr.make(fit=True)
    image = qr.make_image().get_image().convert("L")
    decoded = zxingcpp.read_barcodes(image)
    assert [result.text for result in decoded] == [minted.code]
    assert verifier.verify(decoded[0].text).decision == "accept"


def test_mint_signs_with_the_current_key(ring: KeyRing, clock: FrozenClock) -> None:
    minted = mint(ring, issuer=ISSUER, subject=SUBJECT, entitlements=[], ttl_seconds=TTL,
                  now=clock.now)
    assert json.loads(segments(minted.code)[0])["kid"] == ring.current_kid
