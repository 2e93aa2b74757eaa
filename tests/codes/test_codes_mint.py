"""Minting: exact header and claims, compact JSON, entitlement letters, random jti, size budget and
QR version."""
from __future__ import annotations

import base64
import json
import secrets
from typing import Callable

import pytest
import qrcode
import zxingcpp

from app.codes import qr
from app.codes.mint import CODE_TYPE, MintedCode, code_length, mint
from app.codes.verify import Verifier
from app.codes.wire import QR_MAX_CHARS
from app.signing.keyring import KeyRing

from codes_support import ENT_WIRE, ISSUER, SUBJECT, T0, TTL, FrozenClock


def segments(code: str) -> tuple[bytes, bytes, bytes]:
    def raw(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    header, payload, signature = code.split(".")
    return raw(header), raw(payload), raw(signature)


def qr_version(code: str) -> int:
    """The version an independent encoder (``qrcode``, byte mode) needs at error correction M."""
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    qr.add_data(code, optimize=0)
    qr.make(fit=True)
    return int(qr.version)


def test_header_has_exactly_alg_kid_typ(genuine: MintedCode, ring: KeyRing) -> None:
    header = json.loads(segments(genuine.code)[0])
    assert header == {"alg": "ES256", "kid": ring.current_kid, "typ": CODE_TYPE}
    assert list(header) == ["alg", "kid", "typ"]


def test_claims_are_exactly_iss_sub_iat_exp_jti_ent(genuine: MintedCode) -> None:
    claims = json.loads(segments(genuine.code)[1])
    assert claims == {"iss": ISSUER, "sub": SUBJECT, "iat": T0, "exp": T0 + TTL,
                      "jti": genuine.jti, "ent": ENT_WIRE}
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


@pytest.mark.parametrize("entitlements,ent", [
    ((), ""), (("sen", "hg"), "eg"), (("hg", "sen"), "eg"), (["sen", "hg", "sen"], "eg"),
    (("sen", "dis", "sap", "hg"), "degp"), (("hr",), "r"), (iter(["hy", "stu"]), "sy"),
    (("stu", "sen", "dis", "sap", "hg", "hy", "hr"), "degprsy"),
])
def test_ent_is_one_string_of_sorted_letters_without_duplicates(
        issue: Callable[..., MintedCode], entitlements: object, ent: str) -> None:
    payload = segments(issue(entitlements=entitlements).code)[1]
    assert json.loads(payload)["ent"] == ent
    assert b'"ent":"' + ent.encode() + b'"}' in payload  # one JSON string, the last member


@pytest.mark.parametrize("bad", [
    {"issuer": ""}, {"subject": ""}, {"subject": "s" * 65},
    {"entitlements": "stu"}, {"entitlements": "eg"}, {"entitlements": b"eg"},
    {"entitlements": ["student"]}, {"entitlements": ["senior", "hg"]}, {"entitlements": ["e"]},
    {"entitlements": ["STU"]}, {"entitlements": ["stu "]}, {"entitlements": [""]},
    {"entitlements": [1]}, {"entitlements": [None]}, {"entitlements": [["stu"]]},
    {"ttl_seconds": 0}, {"ttl_seconds": 1.5},
])
def test_mint_refuses_inputs_the_verifier_would_reject(issue: Callable[..., MintedCode],
                                                       bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        issue(**bad)


@pytest.mark.parametrize("subject,entitlements", [
    ("p_0123456789", []), ("p_7Hq2LmX9vKc4Rt", ["stu", "sen", "dis", "sap"]),
    ("p_7Hq2LmX9vKc4Rt", ["hg"]), ("Ab3_-xYz9Q0", ["sen", "dis", "sap", "hg"]),
    ("x" * 64, ["stu", "sen", "dis", "sap", "hg", "hy", "hr"]), ("p_1", ["sen", "sen", "hg", "hg"]),
])
def test_code_length_predicts_the_minted_length(issue: Callable[..., MintedCode], subject: str,
                                                entitlements: list[str]) -> None:
    minted = issue(subject=subject, entitlements=entitlements)
    assert len(minted.code) == code_length(issuer=ISSUER, subject=subject, entitlements=entitlements)


def test_code_length_refuses_an_unknown_entitlement() -> None:
    with pytest.raises(ValueError):
        code_length(issuer=ISSUER, subject=SUBJECT, entitlements=["student"])


def test_fixed_costs_leave_105_json_bytes_for_the_payload() -> None:
    # header 58 + signature 86 + two dots = 146; 287 - 146 = 141 base64url chars hold 105 bytes,
    # of which 83 are fixed (member names, two 10-digit times, 12-char jti, the quotes of ent):
    # 22 bytes remain for iss + sub + one byte per entitlement letter.
    assert code_length(issuer="cc", subject="s" * 20, entitlements=[]) == QR_MAX_CHARS - 1
    assert code_length(issuer="cc", subject="s" * 21, entitlements=[]) == QR_MAX_CHARS + 1
    assert code_length(issuer="cc", subject="s" * 11, entitlements=["sen"]) == \
        code_length(issuer="cc", subject="s" * 12, entitlements=[])  # a letter costs a sub char


REALISTIC_WORST = ("sen", "dis", "sap", "hg")
"""Senior + disabled + scenic pass + health green: the most a real citizen usually holds."""
ABSOLUTE_WORST = ("stu", "sen", "dis", "sap", "hg")
"""Every letter a code can carry at once: health is only one of g / y / r."""


def service_code(issue: Callable[..., MintedCode], ring: KeyRing,
                 entitlements: tuple[str, ...]) -> MintedCode:
    """As the service mints: issuer "cc", an 11-character pseudonym (``secrets.token_urlsafe(8)``,
    as ``app.registry.citizens`` makes them), an 8-character kid, 10-digit times."""
    subject = secrets.token_urlsafe(8)
    assert len(subject) == 11 and len(ring.current_kid) == 8 and len(str(T0)) == 10
    return issue(issuer="cc", subject=subject, entitlements=entitlements)


def test_realistic_worst_case_fits_qr_version_12(issue: Callable[..., MintedCode],
                                                 ring: KeyRing) -> None:
    """280 characters (7 to spare): QR version 12 at EC M. It was 304 (version 13) with a list."""
    minted = service_code(issue, ring, REALISTIC_WORST)
    assert len(minted.code) == 280 <= QR_MAX_CHARS
    assert qr_version(minted.code) == 12 <= qr.MAX_VERSION


def test_absolute_worst_case_fits_qr_version_12(issue: Callable[..., MintedCode],
                                                ring: KeyRing) -> None:
    """281 characters: still version 12 (so is a code holding all seven letters, 284)."""
    minted = service_code(issue, ring, ABSOLUTE_WORST)
    assert len(minted.code) == 281 <= QR_MAX_CHARS
    assert qr_version(minted.code) == 12 <= qr.MAX_VERSION
    every = ("stu", "sen", "dis", "sap", "hg", "hy", "hr")
    assert code_length(issuer="cc", subject="s" * 11, entitlements=every) == 284


def test_code_survives_a_real_qr_round_trip(issue: Callable[..., MintedCode], ring: KeyRing,
                                            verifier: Verifier) -> None:
    minted = service_code(issue, ring, REALISTIC_WORST)
    qr_code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    qr_code.add_data(minted.code)
    qr_code.make(fit=True)
    image = qr_code.make_image().get_image().convert("L")
    decoded = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    assert [result.text for result in decoded] == [minted.code]
    decision = verifier.verify(decoded[0].text)
    assert decision.decision == "accept" and decision.claims is not None
    assert decision.claims.ent == ("dis", "hg", "sap", "sen")


def test_mint_signs_with_the_current_key(ring: KeyRing, clock: FrozenClock) -> None:
    minted = mint(ring, issuer=ISSUER, subject=SUBJECT, entitlements=[], ttl_seconds=TTL,
                  now=clock.now)
    assert json.loads(segments(minted.code)[0])["kid"] == ring.current_kid
