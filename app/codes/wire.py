"""The code's wire format, shared by mint and verify: type, limits, strict base64url, strict JSON,
and the one-letter entitlement codes of the ``ent`` claim.

Strict means one spelling per value: base64url without padding, whitespace or non-canonical
trailing bits; UTF-8 JSON objects without duplicate members, NaN or Infinity.
"""
from __future__ import annotations

import binascii
import json
from itertools import combinations
from types import MappingProxyType
from typing import Any, Iterable, Mapping, NoReturn

from app.codes.errors import Malformed

CODE_TYPE = "cc"
"""The header ``typ`` of a CityCode code: short on purpose, every byte grows the QR code."""

SUPPORTED_ALGORITHMS = ("ES256", "EdDSA")
B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

MAX_SUB_CHARS = 64
MIN_JTI_CHARS, MAX_JTI_CHARS = 12, 64
MAX_ENTITLEMENTS = 16
"""Most letters an ``ent`` string may hold (a cheap cap before looking at them)."""
MAX_NUMERIC_DATE = 2**53 - 1  # JSON-safe integer; anything bigger is not a time we issue
JTI_BYTES = 9  # 72 random bits → 12 base64url characters

QR_MAX_CHARS = 287
"""Byte-mode capacity of QR version 12 at error correction M (the design's size ceiling)."""

ENTITLEMENT_LETTERS: Mapping[str, str] = MappingProxyType({
    "stu": "s", "sen": "e", "dis": "d", "sap": "p", "hg": "g", "hy": "y", "hr": "r",
    # Today's scenic reservation, one per spot (the spot is named in scenic.json).
    "rla": "l", "rzt": "z", "rjm": "j"})
"""Entitlement name (``app.registry.entitlements``) → its one letter in the ``ent`` claim.

The only place the mapping lives. On the wire ``ent`` is ONE JSON string of letters, sorted, no
duplicates (``"ent":"edpg"`` for sen + dis + sap + hg): a list of names cost 3 bytes of JSON
framing per entitlement plus the name, which pushed a realistic code past QR version 12.
Letters are forever: never reuse or reassign one; a new entitlement takes a new letter.

Budget: every letter costs one byte of payload. The most a citizen can hold at once — stu, sen,
dis, sap, one health letter and a reservation for each of the three spots, 8 letters — makes a
285-character code (QR version 12 holds 287); a ninth letter (a fourth spot) still fits at 286,
a tenth does not (``tests/codes/test_reservation_budget.py`` holds the shipped data to this)."""

ENTITLEMENT_NAMES: Mapping[str, str] = MappingProxyType(
    {letter: name for name, letter in ENTITLEMENT_LETTERS.items()})
"""Letter → entitlement name (the inverse of ``ENTITLEMENT_LETTERS``)."""

_ALPHABET_BYTES = B64URL_ALPHABET.encode("ascii")
_TO_STD = bytes.maketrans(b"-_", b"+/")
_TO_URL = bytes.maketrans(b"+/", b"-_")
_PADDING = (b"", b"", b"==", b"=")  # indexed by len % 4 (1 is never valid)
# The last character of a canonical encoding leaves its unused low bits zero: 4 of them when
# len % 4 == 2 (one byte in the last group), 2 when len % 4 == 3 (two bytes).
_CANONICAL_LAST = (None, None,
                   frozenset(c for i, c in enumerate(_ALPHABET_BYTES) if i & 0b1111 == 0),
                   frozenset(c for i, c in enumerate(_ALPHABET_BYTES) if i & 0b11 == 0))
_a2b = binascii.a2b_base64
_b2a = binascii.b2a_base64


def b64url_encode(raw: bytes) -> bytes:
    """Unpadded base64url."""
    return _b2a(raw, newline=False).translate(_TO_URL).rstrip(b"=")


def b64url_decode(segment: bytes) -> bytes:
    """Decode canonical unpadded base64url; anything else (padding, whitespace, other characters,
    non-zero trailing bits, an impossible length) raises ``Malformed``."""
    rest = len(segment) % 4
    if rest == 1 or segment.translate(None, _ALPHABET_BYTES):
        raise Malformed("not canonical base64url")
    last = _CANONICAL_LAST[rest]
    if last is not None and segment[-1] not in last:
        raise Malformed("non-canonical base64url trailing bits")
    return _a2b(segment.translate(_TO_STD) + _PADDING[rest])


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise Malformed("duplicate JSON member")
    return obj


def _reject_constant(name: str) -> NoReturn:
    raise Malformed(f"JSON constant {name} is not allowed")


_scan_once = json.JSONDecoder(object_pairs_hook=_reject_duplicates,
                              parse_constant=_reject_constant).scan_once


def json_object(raw: bytes) -> dict[str, Any]:
    """Parse a UTF-8 JSON object strictly: no duplicate members, NaN, Infinity, BOM, or anything
    (even whitespace) around the object — we mint compact JSON, so nothing else is ours."""
    try:
        text = raw.decode("utf-8")
        value, end = _scan_once(text, 0)  # the C scanner, without json.loads' Python wrappers
    except (UnicodeDecodeError, StopIteration, ValueError, RecursionError):
        raise Malformed("bad JSON") from None
    if end != len(text) or type(value) is not dict:
        raise Malformed("JSON is not exactly one object")
    return value


def compact_json(value: Any) -> bytes:
    """The compact ASCII JSON used on the wire (no spaces)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


# Every canonical ``ent`` string (letters sorted, at most one of each: 2**10 of them) → the names,
# sorted; the verifier's common case is one dictionary lookup.
_CANONICAL_ENT: dict[str, tuple[str, ...]] = {
    "".join(sorted(ENTITLEMENT_LETTERS[n] for n in names)): names
    for k in range(len(ENTITLEMENT_LETTERS) + 1)
    for names in combinations(sorted(ENTITLEMENT_LETTERS), k)}


def entitlement_letters(names: Iterable[str]) -> str:
    """The ``ent`` claim for these entitlement names: their letters, sorted, without duplicates.
    An unknown name (or a non-string) raises ``ValueError``."""
    if isinstance(names, (str, bytes)):
        raise ValueError("entitlements must be a collection of names, not one string")
    letters: set[str] = set()
    for name in names:
        letter = ENTITLEMENT_LETTERS.get(name) if type(name) is str else None
        if letter is None:
            raise ValueError(f"unknown entitlement {name!r}; known: {', '.join(sorted(ENTITLEMENT_LETTERS))}")
        letters.add(letter)
    return "".join(sorted(letters))


def entitlement_names(ent: Any) -> tuple[str, ...]:
    """The sorted entitlement names of an ``ent`` claim value: a string of at most
    ``MAX_ENTITLEMENTS`` known letters, none twice (any order). Anything else raises ``Malformed``."""
    if type(ent) is not str:
        raise Malformed("claim ent must be a string of entitlement letters")
    names = _CANONICAL_ENT.get(ent)
    if names is not None:
        return names
    if len(ent) > MAX_ENTITLEMENTS:
        raise Malformed("claim ent is too long")
    found: set[str] = set()
    for letter in ent:
        name = ENTITLEMENT_NAMES.get(letter)
        if name is None:
            raise Malformed("claim ent holds an unknown entitlement letter")
        if name in found:
            raise Malformed("claim ent holds a letter twice")
        found.add(name)
    return tuple(sorted(found))
