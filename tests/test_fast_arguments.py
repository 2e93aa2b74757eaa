"""The hot routes' fast body parsers accept only what the schema accepts, with the same result;
everything else falls through to webargs and the schema, which answer the 4xx."""
from __future__ import annotations

from typing import Any

import marshmallow as ma
import pytest
from flask.testing import FlaskClient

from app.api.verify import VerifyIn, fast_verify_in
from tests.helpers import bearer, code, enrol, terminal

BODIES: list[Any] = [
    {"code": "abc"},
    {"code": ""},
    {"code": "abc", "direction": "entry"},
    {"code": "abc", "direction": "exit", "request_id": "r-1:2.3_x"},
    {"code": "abc", "direction": None, "request_id": None},
    {"code": "abc", "direction": "sideways"},
    {"code": "abc", "direction": ["entry"]},
    {"code": "abc", "request_id": ""},
    {"code": "abc", "request_id": "x" * 65},
    {"code": "abc", "request_id": "has space"},
    {"code": "abc", "request_id": 7},
    {"code": 7},
    {"code": None},
    {"code": ["abc"]},
    {"code": "abc", "extra": 1},
    {"direction": "entry"},
    {},
    [],
    "abc",
    None,
    7,
]


@pytest.mark.parametrize("body", BODIES, ids=[repr(b)[:40] for b in BODIES])
def test_fast_verify_body_accepts_only_what_the_schema_loads_and_loads_the_same(body: Any) -> None:
    fast = fast_verify_in(body)
    try:
        loaded = VerifyIn().load(body)
    except ma.ValidationError:
        assert fast is None
    else:
        assert fast is None or fast == loaded


def test_fast_verify_body_takes_the_usual_bodies() -> None:
    assert fast_verify_in({"code": "abc"}) == {"code": "abc", "direction": None, "request_id": None}
    assert fast_verify_in({"code": "abc", "direction": "exit", "request_id": "r1"}) is not None


@pytest.mark.parametrize("body, status", [
    (b'{"code": "abc", "extra": 1}', 422),
    (b'{"code": 7}', 422),
    (b'{"code": "a\\u0000b"}', 400),
    (b'{"code": "abc"', 400),
    (b'[]', 422),
])
def test_verify_bodies_the_fast_path_declines_get_the_schemas_answer(client: FlaskClient, body: bytes,
                                                                     status: int) -> None:
    answer = client.post("/v1/verify", data=body, headers={**bearer(terminal(client)),
                                                            "Content-Type": "application/json"})
    assert answer.status_code == status
    assert answer.mimetype == "application/problem+json"


def test_verify_answer_through_the_fast_path_is_the_documented_body(client: FlaskClient) -> None:
    headers = bearer(terminal(client))
    scanned = code(client, enrol(client)["app_token"])
    first = client.post("/v1/verify", headers=headers, json={"code": scanned})
    again = client.post("/v1/verify", headers=headers, json={"code": scanned, "request_id": None})
    assert first.status_code == again.status_code == 200
    assert first.mimetype == "application/json"
    assert first.get_json()["decision"] == "accept"
    assert again.get_json()["reason"] == "replayed"
    assert set(first.get_json()) == {"decision", "reason", "message"}
