"""The HTTP layer: flask-smorest ``Api``, OpenAPI at /openapi.json, docs UI at /docs (local assets)."""
from __future__ import annotations

import http

from flask import Blueprint, Flask
from flask_smorest import Api
from flask_smorest.utils import prepare_response

from app.api import problems
from app.api.schemas import ProblemOut

API_SETTINGS = {
    "API_TITLE": "CityCode API",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.1.0",
    "OPENAPI_URL_PREFIX": "/",
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": "docs",
    "OPENAPI_SWAGGER_UI_URL": "/docs/assets/",
    "OPENAPI_SWAGGER_UI_CONFIG": {"validatorUrl": None},
}


class CityCodeApi(Api):
    """flask-smorest's Api, with our single problem+json handler instead of its error payload,
    and a document that says so: every error response (the shared ``default``, ``422`` from
    ``@blp.arguments``, ``401``/``403`` from ``require``) is ``ProblemOut`` as problem+json."""

    ERROR_SCHEMA = ProblemOut

    def handle_http_exception(self, error):  # type: ignore[no-untyped-def, override]
        return problems.handle_http_exception(error)

    def _register_responses(self) -> None:
        # flask-smorest's own version documents its error payload as application/json.
        for status in http.HTTPStatus:
            response: dict[str, object] = {"description": status.phrase}
            content_type = self.DEFAULT_RESPONSE_CONTENT_TYPE
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
                content_type = problems.PROBLEM_MIME
            prepare_response(response, self.spec, content_type)
            self.spec.components.response(status.name, response, lazy=True)
        default = {"description": "An error (RFC 9457 problem document)", "schema": self.ERROR_SCHEMA}
        prepare_response(default, self.spec, problems.PROBLEM_MIME)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, default, lazy=True)


def _docs_assets() -> Blueprint:
    """Serve Swagger UI's files from the installed swagger-ui-bundle package: no CDN."""
    import swagger_ui_bundle

    return Blueprint("docs_assets", __name__, static_folder=swagger_ui_bundle.swagger_ui_path,
                     static_url_path="/docs/assets")


def init_app(app: Flask) -> None:
    app.config.update(API_SETTINGS)
    api = CityCodeApi(app, spec_kwargs={"info": {
        "description": "One QR code for a whole city. See API.md for the contract."}})
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    problems.init_app(app)
    app.register_blueprint(_docs_assets())
    from app.api import (admin_citizens, admin_keys, admin_registry, disclosures, halls, history,
                         issuer, me, network, platform, scenic, terminals_self, trust, verify)
    from app.api import anomalies, taps
    from app.api import audit
    from app.api import devices

    for module in (platform, admin_keys, admin_registry, admin_citizens, issuer, me, devices, trust, verify,
                   scenic, network, halls, disclosures, history, terminals_self, taps,
                   anomalies, audit):
        api.register_blueprint(module.blp)
    app.extensions["citycode.api"] = api
