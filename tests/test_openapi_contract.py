"""The OpenAPI document tells the truth about what the service answers (what schemathesis checks
against a running server): errors are problem+json with the documented fields, every protected
operation documents 401 and 403, and the 404/409/410 views raise are declared."""
from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from app.registry.credential_types import CREDENTIAL_TYPES
from tests.conftest import ADMIN_TOKEN
from tests.helpers import ADMIN, bearer, enrol, issuer, terminal

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemOut"}}}
METHODS = ("get", "put", "post", "delete", "patch")


def _spec(client: FlaskClient) -> dict[str, Any]:
    return client.get("/openapi.json").get_json()  # type: ignore[no-any-return]


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in spec["paths"].items()
            for method, op in ops.items() if method in METHODS]


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        section, name = node["$ref"].split("/")[-2:]
        node = spec["components"][section][name]
    return node


def _conforms(spec: dict[str, Any], schema: dict[str, Any], value: Any, where: str = "$") -> list[str]:
    """The few JSON Schema rules apispec emits: type, properties, required, additionalProperties,
    items, enum."""
    schema = _resolve(spec, schema)
    kinds = schema.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else kinds
    python = {"object": dict, "array": list, "string": str, "integer": int, "number": (int, float),
              "boolean": bool, "null": type(None)}
    if kinds and not any(isinstance(value, python[k]) and not (k in ("integer", "number") and isinstance(value, bool))
                         for k in kinds):
        return [f"{where}: {value!r} is not {kinds}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} not in {schema['enum']}"]
    found: list[str] = []
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        found += [f"{where}: missing {k}" for k in schema.get("required", []) if k not in value]
        if schema.get("additionalProperties") is False:
            found += [f"{where}: undocumented {k}" for k in value if k not in properties]
        for key, item in value.items():
            if key in properties:
                found += _conforms(spec, properties[key], item, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += _conforms(spec, schema["items"], item, f"{where}[{i}]")
    return found


def _documented(spec: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    responses = spec["paths"][path][method]["responses"]
    return _resolve(spec, responses.get(str(status)) or responses["default"])


def _assert_as_documented(spec: dict[str, Any], path: str, method: str, response: Any) -> None:
    documented = _documented(spec, path, method, response.status_code)
    assert response.mimetype in documented.get("content", {}), (path, response.status_code, documented)
    schema = documented["content"][response.mimetype].get("schema")
    if schema is not None:
        assert _conforms(spec, schema, response.get_json(force=True)) == [], (path, response.status_code)


def test_every_error_response_is_documented_as_a_problem_document(client: FlaskClient) -> None:
    spec = _spec(client)
    for method, path, op in _operations(spec):
        for status, response in op["responses"].items():
            if (path, status) == ("/healthz/ready", "503"):
                continue  # a health report naming what is down, not an error document
            if status == "default" or int(status) >= 400:
                assert _resolve(spec, response)["content"] == PROBLEM, (method, path, status)
    assert "Error" not in spec["components"]["schemas"]  # flask-smorest's {code, status, message}
    problem = spec["components"]["schemas"]["ProblemOut"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert problem["properties"]["status"]["type"] == "integer"


def test_every_protected_operation_documents_401_and_403(client: FlaskClient) -> None:
    spec = _spec(client)
    protected = [(m, p, op) for m, p, op in _operations(spec) if op.get("security")]
    assert len(protected) > 20
    for method, path, op in protected:
        assert {"401", "403"} <= set(op["responses"]), (method, path)


@pytest.mark.parametrize(("method", "path", "statuses"), [
    ("post", "/v1/admin/citizens", {"409"}),
    ("post", "/v1/admin/citizens/{citizen_id}/suspend", {"404"}),
    ("post", "/v1/admin/citizens/{citizen_id}/restore", {"404"}),
    ("post", "/v1/issuer/credentials/{credential_id}/revoke", {"404"}),
    ("put", "/v1/admin/scenic/{spot}", {"404"}),
    ("post", "/v1/halls/{hall}/tickets", {"403", "404"}),
    ("post", "/v1/halls/{hall}/call", {"403", "404"}),
    ("post", "/v1/halls/{hall}/skip", {"403", "404"}),
    ("post", "/v1/halls/{hall}/recall", {"403", "404"}),
    ("get", "/v1/halls/{hall}/board", {"404"}),
    ("get", "/v1/disclosures/{disclosure_id}", {"404", "410"}),
    ("post", "/v1/me/disclosures/{disclosure_id}/approve", {"404", "409"}),
    ("post", "/v1/me/disclosures/{disclosure_id}/deny", {"404", "409"}),
])
def test_not_found_conflict_and_gone_answers_are_documented(
        client: FlaskClient, method: str, path: str, statuses: set[str]) -> None:
    assert statuses <= set(_spec(client)["paths"][path][method]["responses"])


def test_real_error_answers_match_the_documented_problem(client: FlaskClient) -> None:
    spec = _spec(client)
    citizen = enrol(client)
    hall = bearer(terminal(client, "hall", hall="city", counter="1"))
    answers = [
        ("/v1/admin/keys/rotate", "post", client.post("/v1/admin/keys/rotate")),  # 401
        ("/v1/me", "get", client.get("/v1/me", headers=ADMIN)),  # 403
        ("/v1/admin/citizens", "post", client.post("/v1/admin/citizens", headers=ADMIN, json={})),  # 422
        ("/v1/admin/citizens/{citizen_id}/suspend", "post",
         client.post("/v1/admin/citizens/cit_nobody/suspend", headers=ADMIN, json={})),  # 404
        ("/v1/halls/{hall}/board", "get", client.get("/v1/halls/nowhere/board")),  # 404
        ("/v1/halls/{hall}/call", "post",
         client.post("/v1/halls/city/call", headers=hall, json={"counter": "1"})),  # 404: nobody waits
        ("/v1/me/disclosures/{disclosure_id}/approve", "post",
         client.post("/v1/me/disclosures/nothing/approve", headers=bearer(citizen["app_token"]))),  # 404
        ("/v1/admin/issuers", "post", client.post("/v1/admin/issuers", headers=ADMIN, data=b"{",
                                                  content_type="application/json")),  # 400 (default)
    ]
    for path, method, response in answers:
        assert response.status_code >= 400
        _assert_as_documented(spec, path, method, response)


def test_platform_answers_match_their_documented_bodies(client: FlaskClient) -> None:
    spec = _spec(client)
    for path in ("/healthz/live", "/healthz/ready", "/.well-known/jwks.json"):
        response = client.get(path)
        assert response.status_code == 200
        assert "200" in spec["paths"][path]["get"]["responses"]
        _assert_as_documented(spec, path, "get", response)
    assert "503" in spec["paths"]["/healthz/ready"]["get"]["responses"]
    assert "text/plain" in spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]


def test_documented_credential_types_are_the_registry_s(client: FlaskClient) -> None:
    schemas = _spec(client)["components"]["schemas"]
    for enum in (schemas["IssuerIn"]["properties"]["credential_types"]["items"]["enum"],
                 schemas["CredentialIn"]["properties"]["type"]["enum"],
                 schemas["DisclosureIn"]["properties"]["credential_types"]["items"]["enum"]):
        assert enum == sorted(CREDENTIAL_TYPES)



def test_successful_answers_along_the_main_journeys_match_the_document(client: FlaskClient) -> None:
    """Schemathesis cannot mint codes, so it never sees an accept: walk the journeys here."""
    spec = _spec(client)
    seen: list[tuple[str, str, int]] = []

    def call(method: str, template: str, path: str | None = None, token: str | None = None,
             body: Any = None, query: dict[str, Any] | None = None) -> Any:
        headers = bearer(token) if token else None
        response = client.open(path or template, method=method.upper(), headers=headers, json=body,
                               query_string=query)
        _assert_as_documented(spec, template, method, response)
        seen.append((method, template, response.status_code))
        return response.get_json(silent=True)

    bureau = issuer(client, "senior_card", "scenic_annual_pass", "id_card")
    citizen = enrol(client)
    app_token = citizen["app_token"]
    for ctype in ("senior_card", "scenic_annual_pass", "id_card"):
        call("post", "/v1/issuer/credentials", token=bureau, body={
            "citizen_id": citizen["citizen_id"], "type": ctype, "number": "N0001",
            "valid_until": "2099-01-01T00:00:00+08:00"})
    call("get", "/v1/me", token=app_token)
    call("get", "/v1/me/credentials", token=app_token)

    def fresh() -> str:
        return call("post", "/v1/me/code", token=app_token)["code"]  # type: ignore[no-any-return]

    bus = terminal(client, "bus")
    assert call("post", "/v1/verify", token=bus, body={"code": fresh()})["decision"] == "accept"
    stations = call("get", "/v1/network/metro")["lines"][0]["stations"]
    entry = terminal(client, "metro", station=stations[0])
    leave = terminal(client, "metro", station=stations[-1])
    assert call("post", "/v1/verify", token=entry, body={"code": fresh(), "direction": "entry"})["trip"]
    call("post", "/v1/verify", token=leave, body={"code": fresh(), "direction": "exit"})
    scenic = terminal(client, "scenic")
    assert call("post", "/v1/verify", token=scenic, body={"code": fresh()})["admission"]
    call("get", "/v1/trust/revocations", token=bus)

    service = call("get", "/v1/halls")[0]["services"][0]["service"]
    hall = call("get", "/v1/halls")[0]["hall"]
    kiosk = terminal(client, "hall", hall=hall)
    ticket = call("post", "/v1/halls/{hall}/tickets", f"/v1/halls/{hall}/tickets", kiosk,
                  {"code": fresh(), "service": service})
    assert ticket["decision"] == "accept"
    counter, window = f"/v1/halls/{hall}", terminal(client, "hall", hall=hall, counter="1")
    call("post", "/v1/halls/{hall}/call", f"{counter}/call", window, {"counter": "1"})
    call("post", "/v1/halls/{hall}/recall", f"{counter}/recall", window, {"counter": "1"})
    call("post", "/v1/halls/{hall}/skip", f"{counter}/skip", window, {"counter": "1"})
    call("get", "/v1/halls/{hall}/board", f"{counter}/board")

    asked = call("post", "/v1/disclosures", token=kiosk, body={
        "code": fresh(), "credential_types": ["id_card"], "purpose": "办理居住证"})
    disclosure = f"/v1/disclosures/{asked['disclosure_id']}"
    call("get", "/v1/disclosures/{disclosure_id}", disclosure, kiosk)
    call("get", "/v1/me/disclosures", token=app_token)
    call("post", "/v1/me/disclosures/{disclosure_id}/approve",
         f"/v1/me/disclosures/{asked['disclosure_id']}/approve", app_token)
    assert call("get", "/v1/disclosures/{disclosure_id}", disclosure, kiosk)["credentials"]
    call("get", "/v1/disclosures/{disclosure_id}", disclosure, kiosk)  # 410 now
    call("get", "/v1/me/history", token=app_token)

    call("get", "/v1/scenic/spots")
    call("put", "/v1/admin/scenic/{spot}", "/v1/admin/scenic/laoshan", ADMIN_TOKEN, {"daily_capacity": 5})
    call("post", "/v1/admin/citizens/{citizen_id}/suspend",
         f"/v1/admin/citizens/{citizen['citizen_id']}/suspend", ADMIN_TOKEN, {})
    assert call("post", "/v1/verify", token=bus, body={"code": "x"})["decision"] == "deny"
    call("post", "/v1/admin/citizens/{citizen_id}/restore",
         f"/v1/admin/citizens/{citizen['citizen_id']}/restore", ADMIN_TOKEN, {})
    call("post", "/v1/admin/keys/rotate", token=ADMIN_TOKEN)
    assert ("get", "/v1/disclosures/{disclosure_id}", 410) in seen


def test_a_body_of_optional_fields_is_documented_as_optional_and_may_be_left_out(
        client: FlaskClient) -> None:
    # flask-smorest documents every JSON body as required unless told; webargs takes no body as {}.
    spec = _spec(client)
    citizen = enrol(client)
    bureau = issuer(client, "student_card")
    card = client.post("/v1/issuer/credentials", headers=bearer(bureau), json={
        "citizen_id": citizen["citizen_id"], "type": "student_card", "number": "S1"}).get_json()
    citizen_path = f"/v1/admin/citizens/{citizen['citizen_id']}"
    for template, path, token in (
            ("/v1/admin/citizens/{citizen_id}/suspend", f"{citizen_path}/suspend", ADMIN_TOKEN),
            ("/v1/admin/citizens/{citizen_id}/restore", f"{citizen_path}/restore", ADMIN_TOKEN),
            ("/v1/issuer/credentials/{credential_id}/revoke",
             f"/v1/issuer/credentials/{card['credential_id']}/revoke", bureau)):
        assert spec["paths"][template]["post"]["requestBody"]["required"] is False
        response = client.post(path, headers=bearer(token))  # no body, no content type
        assert response.status_code == 200, response.get_json()
        _assert_as_documented(spec, template, "post", response)
