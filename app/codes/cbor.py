"""Strict CBOR (RFC 8949) for device-bound codes: a small decoder for the one subset they use.

Accepted: unsigned and negative integers (to 64 bits), byte strings, UTF-8 text strings, arrays,
maps with integer or text keys, ``true``/``false``; every length definite, in the shortest form
(RFC 8949 §4.2.1 "preferred serialization"). Refused with ``Malformed``: tags (major type 6, so no
bignums, dates or COSE tags), floats, ``null``/``undefined``/other simple values, indefinite
lengths, duplicate map keys, nesting deeper than ``MAX_DEPTH``, and any byte after the item.
So one value has one encoding here, and a reader never meets a type it did not ask for.

Encoding is ``cbor2.dumps`` (canonical), used by the minting side only.
"""
from __future__ import annotations

from typing import Any

import cbor2

from app.codes.errors import Malformed

MAX_DEPTH = 4
_MIN_FOR_INFO = {24: 24, 25: 0x100, 26: 0x10000, 27: 0x100000000}
_from_bytes = int.from_bytes


def dumps(value: Any) -> bytes:
    """Deterministic CBOR of ``value`` (ints, bytes, str, lists, dicts, bools)."""
    return cbor2.dumps(value, canonical=True)


def loads(data: bytes) -> Any:
    """The one item ``data`` holds, decoded strictly (see the module docstring)."""
    value, end = _item(data, 0, 0)
    if end != len(data):
        raise Malformed("bytes after the CBOR item")
    return value


def _head(data: bytes, pos: int) -> tuple[int, int, int]:
    """(major type, argument, position after the head)."""
    try:
        initial = data[pos]
    except IndexError:
        raise Malformed("CBOR ends early") from None
    major, info = initial >> 5, initial & 0x1F
    if info < 24:
        return major, info, pos + 1
    if info > 27:
        raise Malformed("indefinite or reserved CBOR length")
    size = 1 << (info - 24)
    end = pos + 1 + size
    if end > len(data):
        raise Malformed("CBOR ends early")
    value = _from_bytes(data[pos + 1:end], "big")
    if value < _MIN_FOR_INFO[info]:
        raise Malformed("CBOR length not in its shortest form")
    return major, value, end


def _item(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    major, arg, pos = _head(data, pos)
    if major == 0:
        return arg, pos
    if major == 1:
        return -1 - arg, pos
    if major == 2 or major == 3:
        end = pos + arg
        if end > len(data):
            raise Malformed("CBOR string runs past the end")
        raw = data[pos:end]
        if major == 2:
            return raw, end
        try:
            return raw.decode("utf-8"), end
        except UnicodeDecodeError:
            raise Malformed("CBOR text is not UTF-8") from None
    if depth >= MAX_DEPTH:
        raise Malformed("CBOR nested too deeply")
    if major == 4:
        items = []
        for _ in range(arg):
            value, pos = _item(data, pos, depth + 1)
            items.append(value)
        return items, pos
    if major == 5:
        mapping: dict[Any, Any] = {}
        for _ in range(arg):
            key, pos = _item(data, pos, depth + 1)
            if type(key) is not int and type(key) is not str:
                raise Malformed("CBOR map keys must be integers or text")
            if key in mapping:
                raise Malformed("duplicate CBOR map key")
            mapping[key], pos = _item(data, pos, depth + 1)
        return mapping, pos
    if major == 7 and arg in (20, 21) and data[pos - 1] in (0xF4, 0xF5):
        return arg == 21, pos
    if major == 6:
        raise Malformed("CBOR tags are not accepted")
    raise Malformed("CBOR simple value or float not accepted")
