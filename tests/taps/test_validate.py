"""The fast check of tap uploads (``app.taps.validate``) against the marshmallow schema it stands
in for: it may refuse what the schema takes (the schema then decides), never take what the schema
refuses, and what it takes becomes the same records (same digest)."""
from __future__ import annotations

import copy
from typing import Any

import marshmallow as ma
import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.api.taps import TapsIn
from app.taps import TapRecord
from app.taps.validate import records_if_valid
from tests.taps.support import T0, bus, record, upload

GOOD: dict[str, Any] = {
    "seq": 7, "jti": "jti-1", "sub": "sub-1", "iss": "cc", "scanned_at": T0, "decision": "accept",
    "reason": "ok", "mode": "offline", "ent": ["stu"], "trust_version": 3, "trust_age_s": 12.5,
    "clock_offset_s": -0.25, "location": {"lat": 36.0671, "lon": 120.3826}, "stale": False,
    "request_id": "r-1:a.b_c", "result": {"fare": {"amount_cents": 100, "category": "student"}}}

# (field, value): each makes GOOD invalid for the schema
WRONG: list[tuple[str, Any]] = [
    ("seq", 0), ("seq", -1), ("seq", 2**63), ("seq", 1.5), ("seq", "7"), ("seq", True), ("seq", None),
    ("jti", ""), ("jti", "x" * 129), ("jti", 5), ("jti", ["a"]),
    ("sub", ""), ("sub", "x" * 65), ("sub", 5), ("sub", {"a": 1}),
    ("iss", ""), ("iss", "x" * 65), ("iss", None), ("iss", 1),
    ("scanned_at", "2026-12-01T08:30:00"), ("scanned_at", "yesterday"), ("scanned_at", True),
    ("scanned_at", None), ("scanned_at", 1.0), ("scanned_at", 5e9), ("scanned_at", float("nan")),
    ("scanned_at", [T0]), ("scanned_at", "2026-02-30T08:30:00Z"),
    ("decision", "maybe"), ("decision", None), ("decision", 1), ("decision", "deny"),
    ("reason", "no_such_reason"), ("reason", None), ("reason", 3), ("reason", "expired"),
    ("direction", "up"), ("direction", 1), ("direction", ""),
    ("mode", "sideways"), ("mode", None), ("mode", 0),
    ("ent", "stu"), ("ent", [""]), ("ent", ["x" * 33]), ("ent", ["a"] * 33), ("ent", [1]),
    ("ent", {"stu": True}), ("ent", [None]),
    ("trust_version", -1), ("trust_version", 2**63), ("trust_version", 1.5), ("trust_version", "3"),
    ("trust_version", False),
    ("trust_age_s", -0.001), ("trust_age_s", 100 * 366 * 86400 + 1), ("trust_age_s", "1"),
    ("trust_age_s", True), ("trust_age_s", float("inf")), ("trust_age_s", float("nan")),
    ("trust_age_s", 10**400),
    ("clock_offset_s", 366 * 86400 + 0.5), ("clock_offset_s", -366 * 86400 - 1),
    ("clock_offset_s", "0"), ("clock_offset_s", False), ("clock_offset_s", float("-inf")),
    ("location", {"lat": 91, "lon": 0}), ("location", {"lat": 0, "lon": -180.5}),
    ("location", {"lat": 0}), ("location", {"lat": 0, "lon": 0, "alt": 3}), ("location", [0, 0]),
    ("location", {"lat": "0", "lon": 0}), ("location", {"lat": True, "lon": 0}), ("location", {}),
    ("stale", "yes"), ("stale", 2), ("stale", "true"), ("stale", []),
    ("request_id", ""), ("request_id", "x" * 65), ("request_id", "has space"), ("request_id", 5),
    ("request_id", "ünïcode"),
    ("result", "fare"), ("result", ["fare"]), ("result", {"big": "x" * 4096}), ("result", 1),
    ("unknown_field", 1),
]
# (field, value): the schema takes these; the fast check may leave them to it
ODD_BUT_VALID: list[tuple[str, Any]] = [
    ("seq", 7.0), ("seq", 2**63 - 1), ("trust_version", 3.0), ("trust_version", 0),
    ("trust_version", None), ("stale", 1), ("stale", 0), ("stale", None), ("stale", True),
    ("trust_age_s", 0), ("trust_age_s", 12), ("trust_age_s", 2**31), ("clock_offset_s", 3),
    ("location", {"lat": 90, "lon": -180}), ("location", None), ("ent", []), ("ent", None),
    ("result", {}), ("result", None), ("request_id", None), ("request_id", "abc\n"),
    ("scanned_at", "2026-12-01T08:30:00.123456789+08:00"), ("scanned_at", "2026-12-01 08:30:00z"),
    ("scanned_at", int(T0)), ("mode", "online"), ("iss", "x" * 64), ("jti", "j" * 128),
    ("sub", "s" * 64),
]
MISSING_OK = ["iss", "mode", "ent", "trust_version", "trust_age_s", "clock_offset_s", "location",
              "stale", "request_id", "result", "direction"]


def _schema(body: Any) -> list[TapRecord]:
    """What the marshmallow schema alone makes of a body (raises ``ValidationError``)."""
    loaded = ma.Schema.load(TapsIn(), body, unknown=ma.RAISE)
    return [TapRecord.from_body(item) for item in loaded["records"]]


def _assert_agrees(body: Any) -> None:
    fast = records_if_valid(copy.deepcopy(body))
    try:
        slow = _schema(copy.deepcopy(body))
    except ma.ValidationError:
        assert fast is None, f"the fast check took what the schema refuses: {body!r}"
        return
    if fast is not None:
        assert fast == slow
        assert [r.digest for r in fast] == [r.digest for r in slow]
        assert [type(r.trust_age_s) for r in fast] == [type(r.trust_age_s) for r in slow]


def _with(field: str, value: Any) -> dict[str, Any]:
    return {"records": [{**GOOD, field: value}]}


def test_a_well_formed_batch_is_taken_by_the_fast_check_as_the_schema_takes_it() -> None:
    body = {"records": [{**GOOD, "seq": seq} for seq in range(1, 501)]}
    assert records_if_valid(body) == _schema(body)


@pytest.mark.parametrize(("field", "value"), WRONG)
def test_a_wrong_value_is_never_taken_by_the_fast_check(field: str, value: Any) -> None:
    assert records_if_valid(_with(field, value)) is None
    with pytest.raises(ma.ValidationError):
        _schema(_with(field, value))


@pytest.mark.parametrize(("field", "value"), ODD_BUT_VALID)
def test_odd_but_valid_values_become_the_records_the_schema_makes(field: str, value: Any) -> None:
    _assert_agrees(_with(field, value))
    _schema(_with(field, value))  # still valid


@pytest.mark.parametrize("field", ["seq", "jti", "sub", "scanned_at", "decision", "reason"])
def test_a_missing_required_field_is_left_to_the_schema(field: str) -> None:
    body = {"records": [{k: v for k, v in GOOD.items() if k != field}]}
    assert records_if_valid(body) is None
    with pytest.raises(ma.ValidationError):
        _schema(body)


@pytest.mark.parametrize("field", MISSING_OK)
def test_a_missing_optional_field_gets_the_schema_default(field: str) -> None:
    body = {"records": [{k: v for k, v in GOOD.items() if k != field}]}
    assert records_if_valid(body) is not None
    _assert_agrees(body)


@pytest.mark.parametrize("body", [
    None, [], "records", {}, {"records": []}, {"records": None}, {"records": {"0": GOOD}},
    {"records": [GOOD], "extra": 1}, {"records": [GOOD] * 1001}, {"records": [GOOD, None]},
    {"records": [{**GOOD, "decision": "deny"}]},  # a deny with reason ok
    {"records": [{**GOOD, "jti": None}]}, {"records": [{**GOOD, "sub": None}]},  # offline accept
])
def test_bodies_the_schema_refuses_are_never_taken(body: Any) -> None:
    _assert_agrees(body)
    assert records_if_valid(body) is None


def test_online_accepts_may_lack_jti_and_sub_and_denies_name_a_reason() -> None:
    for changes in ({"mode": "online", "jti": None, "sub": None},
                    {"decision": "deny", "reason": "expired", "jti": None, "sub": None}):
        body = {"records": [{**GOOD, **changes}]}
        assert records_if_valid(body) is not None
        _assert_agrees(body)


def test_an_int_and_a_float_of_the_same_value_give_the_same_digest() -> None:
    as_int = records_if_valid(_with("trust_age_s", 12))
    as_float = records_if_valid(_with("trust_age_s", 12.0))
    assert as_int is not None and as_float is not None
    assert as_int[0].digest == as_float[0].digest == _schema(_with("trust_age_s", 12))[0].digest


@pytest.mark.parametrize(("field", "value"), [w for w in WRONG if w[0] not in ("unknown_field", "direction")])
def test_a_wrong_value_is_a_422_naming_the_record_and_the_field(
        app: Flask, client: FlaskClient, field: str, value: Any) -> None:
    response = upload(client, bus(client), [record(1, "sub-ok", T0), {**GOOD, "seq": 2, field: value}])
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    errors = response.get_json()["errors"]
    assert list(errors) == ["records"] and list(errors["records"]) == ["1"]
    # a deny with reason ok, an accept with another reason: the schema names "reason"
    named = "reason" if (field, value) in (("decision", "deny"), ("reason", "expired")) else field
    assert list(errors["records"]["1"]) == [named], errors


def test_an_unknown_field_is_a_422_as_before(app: Flask, client: FlaskClient) -> None:
    response = upload(client, bus(client), [{**record(1, "sub-ok", T0), "colour": "red"}])
    assert response.status_code == 422
    assert response.get_json()["errors"]["records"]["0"] == {"colour": ["Unknown field."]}
