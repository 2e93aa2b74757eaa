"""The code's wire format, shared by mint and verify: type, limits, strict base64url, strict JSON.

Strict means one spelling per value: base64url without padding, whitespace or non-canonical
trailing bits; UTF-8 JSON objects without duplicate members, NaN or Infinity.
"""
from __future__ import annotations

import binascii
import json
from typing import Any, NoReturn

from app.codes.errors import Malformed

CODE_TYPE = "cc"
"""The header ``typ`` of a CityCode code: short on purpose, every byte grows the QR code."""

SUPPORTED_ALGORITHMS = ("ES256", "EdDSA")
B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

MAX_SUB_CHARS = 64
MIN_JTI_CHARS, MAX_JTI_CHARS = 12, 64
MAX_ENTITLEMENTS = 16
MAX_ENTITLEMENT_CHARS = 32
MAX_NUMERIC_DATE = 2**53 - 1  # JSON-safe integer; anything bigger is not a time we issue
JTI_BYTES = 9  # 72 random bits → 12 base64url characters

QR_MAX_CHARS = 287
"""Byte-mode capacity of QR version 12 at error correction M (the design's size ceiling)."""

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
