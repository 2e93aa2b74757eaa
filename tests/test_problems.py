"""Every failure is an RFC 9457 problem document, and a failed request changes nothing."""
from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.db.models import Issuer, Terminal

PROBLEM_KEYS = {"type", "title", "status", "detail"}


def _problem(response, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert PROBLEM_KEYS <= set(body) and body["status"] == status
    assert "Traceback" not in response.get_data(as_text=True)
    return body  # type: ignore[no-any-return]


def _count(app: Flask, model: type) -> int:
    with app.extensions["citycode"].db.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _terminal_token(client: FlaskClient, admin_headers: dict[str, str]) -> str:
    response = client.post("/v1/admin/terminals", headers=admin_headers,
                           json={"kind": "metro", "site": {"station": "五四广场"}})
    assert response.status_code == 201
    return response.get_json()["terminal_token"]  # type: ignore[no-any-return]


def test_missing_token_is_401_with_bearer_challenge(client: FlaskClient) -> None:
    response = client.post("/v1/admin/keys/rotate")
    _problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_unknown_or_malformed_token_is_401(client: FlaskClient) -> None:
    for header in ("Bearer cca_not-a-real-token", "Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer " + "x" * 5000):
        _problem(client.post("/v1/admin/keys/rotate", headers={"Authorization": header}), 401)


def test_token_of_the_wrong_role_is_403(client: FlaskClient, admin_headers: dict[str, str]) -> None:
    token = _terminal_token(client, admin_headers)
    body = _problem(client.post("/v1/admin/keys/rotate", headers={"Authorization": f"Bearer {token}"}), 403)
    assert "admin" in body["detail"]


def test_admin_can_register_issuer_and_terminal(client: FlaskClient, admin_headers: dict[str, str]) -> None:
    issuer = client.post("/v1/admin/issuers", headers=admin_headers,
                         json={"name": "青岛市公安局", "credential_types": ["id_card"]})
    assert issuer.status_code == 201
    assert issuer.get_json()["issuer_token"].startswith("cci_")
    terminal = client.post("/v1/admin/terminals", headers=admin_headers,
                           json={"kind": "bus", "site": {"line": "321", "vehicle": "鲁B-12345"}})
    assert terminal.status_code == 201
    assert terminal.get_json()["kind"] == "bus"
    assert terminal.get_json()["site"] == {"line": "321", "vehicle": "鲁B-12345"}


def test_validation_failure_is_422_with_per_field_errors_and_stores_nothing(
        app: Flask, client: FlaskClient, admin_headers: dict[str, str]) -> None:
    cases = [
        ({"name": "x"}, "credential_types"),
        ({"name": 5, "credential_types": ["id_card"]}, "name"),
        ({"name": "x", "credential_types": ["id_card"], "extra": 1}, "extra"),
        ({"name": "x", "credential_types": ["no_such_type"]}, "credential_types"),
    ]
    for body, field in cases:
        problem = _problem(client.post("/v1/admin/issuers", headers=admin_headers, json=body), 422)
        assert field in problem["errors"], problem
    assert _count(app, Issuer) == 0


def test_terminal_site_must_match_its_kind(app: Flask, client: FlaskClient, admin_headers: dict[str, str]) -> None:
    for body in ({"kind": "bus", "site": {"station": "x"}}, {"kind": "tram", "site": {"line": "1"}},
                 {"kind": "hall", "site": {"hall": "市民中心", "room": "2"}}):
        problem = _problem(client.post("/v1/admin/terminals", headers=admin_headers, json=body), 422)
        assert set(problem["errors"]) & {"site", "kind"}
    assert _count(app, Terminal) == 0


def test_malformed_json_is_400_problem(client: FlaskClient, admin_headers: dict[str, str]) -> None:
    response = client.post("/v1/admin/issuers", headers=admin_headers, data=b'{"name": ',
                           content_type="application/json")
    _problem(response, 400)


@pytest.mark.parametrize("body", [
    # well-formed JSON that json.loads still refuses: deeper than the recursion limit, and an
    # integer longer than the interpreter's digit limit (both were 500s)
    b'{"name": "x", "credential_types": ["id_card"], "n": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
    b'{"name": "x", "credential_types": ["id_card"], "n": 1' + b"0" * 5000 + b"}",
], ids=["too-deep", "too-many-digits"])
def test_json_the_decoder_refuses_is_400_problem_and_stores_nothing(
        app: Flask, client: FlaskClient, admin_headers: dict[str, str], body: bytes) -> None:
    response = client.post("/v1/admin/issuers", headers=admin_headers, data=body,
                           content_type="application/json")
    assert _problem(response, 400)["errors"] == {"json": ["Invalid JSON body."]}
    assert _count(app, Issuer) == 0


def test_json_text_with_an_unpaired_surrogate_is_400_problem_and_stores_nothing(
        app: Flask, client: FlaskClient, admin_headers: dict[str, str]) -> None:
    # Valid JSON syntax, but "\ud800" decodes to a str that cannot be stored (was a 500).
    for path, body in (
            ("/v1/admin/issuers", b'{"name": "\\ud800", "credential_types": ["id_card"]}'),
            ("/v1/admin/issuers", b'{"name": "x", "credential_types": ["id_card"], "\\udfff": 1}'),
            ("/v1/admin/terminals", b'{"kind": "bus", "site": {"line": "\\ud800", "vehicle": "x"}}'),
            ("/v1/admin/citizens", b'{"name": "\\ud800", "id_number": "11010519491231002X"}')):
        response = client.post(path, headers=admin_headers, data=body, content_type="application/json")
        assert "surrogate" in _problem(response, 400)["errors"]["json"][0], path
    assert _count(app, Issuer) == 0 and _count(app, Terminal) == 0
    paired = client.post("/v1/admin/issuers", headers=admin_headers, content_type="application/json",
                         data=b'{"name": "\\ud83d\\ude8c", "credential_types": ["id_card"]}')  # a bus emoji
    assert paired.status_code == 201


def test_oversized_body_is_413_and_stores_nothing(app: Flask, client: FlaskClient,
                                                  admin_headers: dict[str, str]) -> None:
    limit = app.config["MAX_CONTENT_LENGTH"]
    big = {"name": "x" * (limit + 10), "credential_types": ["id_card"]}
    _problem(client.post("/v1/admin/issuers", headers=admin_headers, json=big), 413)
    assert _count(app, Issuer) == 0


def test_unknown_path_and_wrong_method_are_problems(client: FlaskClient) -> None:
    _problem(client.get("/v1/nothing-here"), 404)
    response = client.get("/v1/admin/keys/rotate")
    _problem(response, 405)
    assert "POST" in response.headers["Allow"]


def test_unexpected_error_is_500_problem_without_internals(app: Flask) -> None:
    def explode() -> None:
        raise RuntimeError("secret internal detail")

    app.add_url_rule("/boom", "boom", explode)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = app.test_client().get("/boom")
    body = _problem(response, 500)
    assert "secret internal detail" not in response.get_data(as_text=True)
    assert body["detail"] == "The service could not complete the request."


def test_terminal_must_stand_at_a_place_the_city_has(app: Flask, client: FlaskClient,
                                                      admin_headers: dict[str, str]) -> None:
    for body in ({"kind": "metro", "site": {"station": "火星站"}},
                 {"kind": "scenic", "site": {"spot": "great_wall"}},
                 {"kind": "hall", "site": {"hall": "nowhere"}},
                 {"kind": "hall", "site": {"hall": "city", "counter": "999"}}):
        problem = _problem(client.post("/v1/admin/terminals", headers=admin_headers, json=body), 422)
        assert "unknown" in " ".join(problem["errors"]["site"])
    assert _count(app, Terminal) == 0


def test_json_text_with_a_nul_character_is_400_problem_and_stores_nothing(
        app: Flask, client: FlaskClient, admin_headers: dict[str, str]) -> None:
    for body in (b'{"name": "bad\\u0000name", "credential_types": ["id_card"]}',
                 b'{"name\\u0000": "x", "credential_types": ["id_card"]}'):
        problem = _problem(client.post("/v1/admin/issuers", headers=admin_headers, data=body,
                                       content_type="application/json"), 400)
        assert "U+0000" in str(problem["errors"])
    assert _count(app, Issuer) == 0
