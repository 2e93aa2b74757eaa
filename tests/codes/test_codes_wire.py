"""The wire format: one canonical base64url spelling, strict JSON, exact DER conversion, and the
one-letter entitlement codes."""
from __future__ import annotations

import itertools
import string

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from app.codes.errors import Malformed
from app.codes.verify import _der_signature
from app.codes.wire import (ENTITLEMENT_LETTERS, ENTITLEMENT_NAMES, MAX_ENTITLEMENTS, b64url_decode,
                            b64url_encode, compact_json, entitlement_letters, entitlement_names,
                            json_object)
from app.registry import entitlements

PROPERTY = settings(database=None, max_examples=500, deadline=None)


@PROPERTY
@given(raw=st.binary(max_size=200))
def test_base64url_round_trips(raw: bytes) -> None:
    assert b64url_decode(b64url_encode(raw)) == raw


@PROPERTY
@given(text=st.text(alphabet=string.ascii_letters + string.digits + "-_=+/ \n.", max_size=40))
def test_only_the_canonical_spelling_decodes(text: str) -> None:
    segment = text.encode()
    try:
        raw = b64url_decode(segment)
    except Malformed:
        return
    assert b64url_encode(raw) == segment


@pytest.mark.parametrize("segment", [b"A", b"AB=", b"AB==", b"AB C", b"AB\n", b"A+B/", b"AB.C", b"AF",
                                     b"AAB", b"\xc3\xa9AA"])
def test_non_canonical_base64url_is_malformed(segment: bytes) -> None:
    with pytest.raises(Malformed):
        b64url_decode(segment)


@pytest.mark.parametrize("raw", [b'{"a":1,"a":1}', b'{"a":NaN}', b'{"a":Infinity}', b'{"a":-Infinity}',
                                 b"[]", b" {}", b"{} ", b"\xef\xbb\xbf{}", b'{"a":"\xff"}', b"{", b""])
def test_strict_json_refuses(raw: bytes) -> None:
    with pytest.raises(Malformed):
        json_object(raw)


def test_strict_json_accepts_a_plain_object() -> None:
    assert json_object(b'{"a":[1,"x",{"b":null}],"c":true}') == {"a": [1, "x", {"b": None}], "c": True}


def test_compact_json_has_no_spaces_and_escapes_non_ascii() -> None:
    assert compact_json({"a": [1, 2], "b": "\u00e9"}) == b'{"a":[1,2],"b":"\\u00e9"}'


@PROPERTY
@given(r=st.binary(min_size=32, max_size=32), s=st.binary(min_size=32, max_size=32),
       r_lead=st.sampled_from([None, 0x00, 0x01, 0x7F, 0x80, 0xFF]),
       s_lead=st.sampled_from([None, 0x00, 0x01, 0x7F, 0x80, 0xFF]))
def test_der_conversion_matches_the_library(r: bytes, s: bytes, r_lead: int | None,
                                            s_lead: int | None) -> None:
    if r_lead is not None:
        r = bytes((r_lead,)) + r[1:]
    if s_lead is not None:
        s = bytes((s_lead,)) + s[1:]
    expected = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
    assert _der_signature(r + s) == expected


# -- entitlement letters -----------------------------------------------------------------------
def test_every_entitlement_the_service_uses_has_a_letter_and_letters_are_unique() -> None:
    assert set(ENTITLEMENT_LETTERS) == set(entitlements.ALL)  # no name without a letter, no stray one
    letters = list(ENTITLEMENT_LETTERS.values())
    assert len(set(letters)) == len(letters)
    assert all(len(letter) == 1 and letter in string.ascii_lowercase for letter in letters)
    assert dict(ENTITLEMENT_NAMES) == {letter: name for name, letter in ENTITLEMENT_LETTERS.items()}


def test_the_letters_are_the_documented_ones() -> None:
    """Letters are forever (codes in flight, offline readers): changing one is a format change."""
    assert dict(ENTITLEMENT_LETTERS) == {
        entitlements.STUDENT: "s", entitlements.SENIOR: "e", entitlements.DISABLED: "d",
        entitlements.SCENIC_PASS: "p", entitlements.HEALTH_GREEN: "g",
        entitlements.HEALTH_YELLOW: "y", entitlements.HEALTH_RED: "r",
        entitlements.RESERVE_LAOSHAN: "l", entitlements.RESERVE_ZHANSHAN_TEMPLE: "z",
        entitlements.RESERVE_JIMO_OLD_TOWN: "j"}


def test_every_reservation_entitlement_has_its_own_letter() -> None:
    assert entitlements.RESERVATIONS <= set(ENTITLEMENT_LETTERS)
    assert entitlements.RESERVATIONS.isdisjoint({ENTITLEMENT_NAMES[letter] for letter in "sedpgyr"})
    assert entitlement_names("jlz") == ("rjm", "rla", "rzt")


_SUBSETS = [names for k in range(len(ENTITLEMENT_LETTERS) + 1)
            for names in itertools.combinations(sorted(ENTITLEMENT_LETTERS), k)]


@pytest.mark.parametrize("names", _SUBSETS, ids="-".join)
def test_every_set_of_entitlements_round_trips_in_any_order(names: tuple[str, ...]) -> None:
    ent = entitlement_letters(names)
    assert ent == "".join(sorted(ent)) and len(ent) == len(names)
    assert entitlement_names(ent) == names  # names come back sorted
    for shuffled in itertools.islice(itertools.permutations(ent), 24):
        assert entitlement_names("".join(shuffled)) == names


def test_letters_are_sorted_and_deduplicated() -> None:
    assert entitlement_letters(["sen", "hg"]) == entitlement_letters(["hg", "sen", "hg"]) == "eg"
    assert entitlement_letters([]) == ""


@pytest.mark.parametrize("names", ["stu", b"stu", ["student"], ["s"], ["Stu"], [""], [None], [3],
                                   [("stu",)], [["stu"]]])
def test_unknown_names_are_refused(names: object) -> None:
    with pytest.raises(ValueError):
        entitlement_letters(names)  # type: ignore[arg-type]


@pytest.mark.parametrize("ent", [["s"], [], ("s",), 0, 1, None, True, 1.0, {"s": 1}, b"s", "x", "S", "sx",
                                 "ss", "sedps", "stu", " ", "s ", "s\x00", "\u00e9", "\uff53",
                                 "s" * (MAX_ENTITLEMENTS + 1), "e" * 10_000])
def test_anything_but_a_string_of_distinct_known_letters_is_malformed(ent: object) -> None:
    with pytest.raises(Malformed):
        entitlement_names(ent)
