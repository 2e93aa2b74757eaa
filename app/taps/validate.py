"""The tap record contract's limits, and a fast check that a decoded upload body keeps them.

``records_if_valid`` is the hot path of ``POST /v1/taps``: plain type and range checks over the
decoded JSON, about ten times cheaper than loading 500 records through marshmallow. It only
*proves* a body valid: for anything it does not take (a wrong type, a missing field, an unknown
field, a value out of range, but also forms it simply does not handle, such as ``12.0`` for an
integer or ``1`` for ``stale``), it answers ``None`` and the caller loads the body through the
marshmallow schema (``app.api.taps.TapsIn``), which stays the one authority for what is
accepted and for the per-record 422 errors. So this function may be stricter than the schema,
never looser; ``tests/taps/test_validate.py`` holds it to that.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

from app.codes.messages import REASONS
from app.taps.record import BadTime, TapRecord, parse_scanned_at

MAX_RECORDS = 1000  # per upload
MAX_RESULT_CHARS = 4096  # json.dumps(result)
YEAR = 366 * 86400
MAX_INT = 2**63 - 1
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

_REQUIRED = frozenset({"seq", "jti", "sub", "scanned_at", "decision", "reason"})
_FIELDS = _REQUIRED | {"iss", "direction", "mode", "ent", "trust_version", "trust_age_s",
                       "clock_offset_s", "location", "stale", "request_id", "result"}
_REASONS = frozenset(REASONS)
_dumps = json.JSONEncoder().encode  # json.dumps(value) with its defaults, as ``result_json``
_EXACT_FLOAT = 2**53  # ints beyond this are left to the schema (float() may round or overflow)


def records_if_valid(body: Any) -> list[TapRecord] | None:
    """The records of ``{"records": [...]}`` if every one is certainly valid, else ``None``
    (then load the body through the schema, which accepts it or says what is wrong)."""
    if type(body) is not dict or len(body) != 1:
        return None
    items = body.get("records")
    if type(items) is not list or not 1 <= len(items) <= MAX_RECORDS:
        return None
    out: list[TapRecord] = []
    for item in items:
        record = _record(item)
        if record is None:
            return None
        out.append(record)
    return out


def _text(value: Any, longest: int) -> bool:
    return type(value) is str and 1 <= len(value) <= longest


def _number(value: Any, low: float, high: float) -> float | None:
    """A finite JSON number within [low, high] as float, or None."""
    if type(value) is int and -_EXACT_FLOAT <= value <= _EXACT_FLOAT:
        value = float(value)
    elif type(value) is not float or not math.isfinite(value):
        return None
    return value if low <= value <= high else None


def _record(item: Any) -> TapRecord | None:
    if type(item) is not dict or not _REQUIRED <= item.keys() or not item.keys() <= _FIELDS:
        return None
    seq, jti, sub = item["seq"], item["jti"], item["sub"]
    decision, reason = item["decision"], item["reason"]
    iss = item.get("iss", "cc")
    mode = item.get("mode", "offline")
    direction = item.get("direction")
    if type(seq) is not int or not 1 <= seq <= MAX_INT \
            or not (jti is None or _text(jti, 128)) or not (sub is None or _text(sub, 64)) \
            or not _text(iss, 64) or decision not in ("accept", "deny") \
            or type(reason) is not str or reason not in _REASONS \
            or direction not in (None, "entry", "exit") or mode not in ("offline", "online"):
        return None
    # the schema's cross-field rules (``TapRecordIn._consistent``)
    if (reason == "ok") != (decision == "accept"):
        return None
    if decision == "accept" and mode == "offline" and (jti is None or sub is None):
        return None
    try:
        scanned_at = parse_scanned_at(item["scanned_at"])
    except BadTime:
        return None
    ent = item.get("ent")
    if ent is not None:
        if type(ent) is not list or len(ent) > 32 or not all(_text(name, 32) for name in ent):
            return None
        ent = tuple(ent)
    trust_version = item.get("trust_version")
    if trust_version is not None and (type(trust_version) is not int
                                      or not 0 <= trust_version <= MAX_INT):
        return None
    trust_age_s = item.get("trust_age_s")
    if trust_age_s is not None:
        trust_age_s = _number(trust_age_s, 0, 100 * YEAR)
        if trust_age_s is None:
            return None
    clock_offset_s = item.get("clock_offset_s")
    if clock_offset_s is not None:
        clock_offset_s = _number(clock_offset_s, -YEAR, YEAR)
        if clock_offset_s is None:
            return None
    location = item.get("location")
    if location is not None:
        if type(location) is not dict or location.keys() != {"lat", "lon"}:
            return None
        lat, lon = _number(location["lat"], -90, 90), _number(location["lon"], -180, 180)
        if lat is None or lon is None:
            return None
        location = (lat, lon)
    stale = item.get("stale")
    if stale is not None and stale is not True and stale is not False:
        return None
    request_id = item.get("request_id")
    if request_id is not None and (type(request_id) is not str or REQUEST_ID.match(request_id) is None):
        return None
    result = item.get("result")
    if result is not None and type(result) is not dict:
        return None
    if result is None:
        return TapRecord.of((seq, jti, sub, iss, scanned_at, decision, reason, direction, mode, ent,
                             trust_version, trust_age_s, clock_offset_s, location, stale, request_id,
                             None), result_json="null")
    result_json = _dumps(result)
    if len(result_json) > MAX_RESULT_CHARS:
        return None
    return TapRecord.of((seq, jti, sub, iss, scanned_at, decision, reason, direction, mode, ent,
                         trust_version, trust_age_s, clock_offset_s, location, stale, request_id,
                         result), result_json=result_json)
