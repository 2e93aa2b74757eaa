"""Role checks on every endpoint: anything not explicitly public answers 401 without a token."""
from __future__ import annotations

import re

from flask import Flask

PUBLIC = {
    ("GET", "/healthz/live"), ("GET", "/healthz/ready"), ("GET", "/metrics"),
    ("GET", "/.well-known/jwks.json"), ("GET", "/openapi.json"), ("GET", "/docs"),
    ("GET", "/docs/assets/<path:filename>"), ("GET", "/v1/network/metro"),
    ("GET", "/v1/scenic/spots"), ("GET", "/v1/halls"), ("GET", "/v1/halls/<hall>/board"),
    ("GET", "/v1/audit/tree-head"), ("GET", "/v1/audit/keys"), ("GET", "/v1/audit/consistency"),
    # The web pages (app/web): HTML for anyone; the citizen page signs in from the browser.
    ("GET", "/"), ("GET", "/app"), ("GET", "/app/manifest.webmanifest"), ("GET", "/app/sw.js"),
    ("GET", "/halls/<hall>/board"), ("GET", "/halls/board"), ("GET", "/web/static/<path:filename>"),
}


def _routes(app: Flask) -> list[tuple[str, str]]:
    return sorted((method, rule.rule) for rule in app.url_map.iter_rules()
                  for method in rule.methods - {"HEAD", "OPTIONS"} if rule.endpoint != "static")


def test_every_endpoint_but_the_public_ones_demands_a_token(app: Flask) -> None:
    client = app.test_client()
    unprotected = []
    for method, rule in _routes(app):
        if (method, rule) in PUBLIC:
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"x-\1", re.sub(r"<int:[^>]+>", "1", rule))
        response = client.open(path, method=method, json={})
        if response.status_code != 401 or response.mimetype != "application/problem+json":
            unprotected.append((method, rule, response.status_code))
    assert unprotected == []


def test_the_public_list_names_only_routes_that_exist(app: Flask) -> None:
    assert PUBLIC <= set(_routes(app))


def _path(rule: str) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"x-\1", re.sub(r"<int:[^>]+>", "1", rule))


def test_admin_routes_refuse_every_other_role_and_citizen_routes_every_other_role(app: Flask) -> None:
    from tests.helpers import ADMIN, enrol, issuer, terminal

    client = app.test_client()
    tokens = {"admin": ADMIN["Authorization"], "citizen": "Bearer " + enrol(client)["app_token"],
              "issuer": "Bearer " + issuer(client, "student_card"),
              "terminal": "Bearer " + terminal(client)}
    allowed_prefixes = {"admin": "/v1/admin/", "citizen": "/v1/me/"}
    wrong, checked = [], set()
    for method, rule in _routes(app):
        for role, prefix in allowed_prefixes.items():
            if not (rule + "/").startswith(prefix):
                continue
            checked.add((method, rule))
            for other, header in tokens.items():
                if other == role:
                    continue
                response = client.open(_path(rule), method=method, json={}, headers={"Authorization": header})
                if response.status_code != 403 or response.mimetype != "application/problem+json":
                    wrong.append((method, rule, other, response.status_code))
    assert wrong == []
    assert {("POST", "/v1/admin/terminals/<terminal_id>/revoke"), ("POST", "/v1/admin/issuers/<issuer_id>/token"),
            ("POST", "/v1/admin/citizens/<citizen_id>/app-tokens"), ("GET", "/v1/me/tokens"),
            ("DELETE", "/v1/me/tokens/<token_id>")} <= checked
