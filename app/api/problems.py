"""The one place that turns errors into RFC 9457 ``application/problem+json`` responses."""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, json, request
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge

from app import errors

log = logging.getLogger(__name__)

PROBLEM_MIME = "application/problem+json"

_STATUS_FOR: dict[type[errors.DomainError], int] = {
    errors.InvalidInput: 422,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.PermissionDenied: 403,
    errors.Gone: 410,
    errors.Unavailable: 503,
}

_SLUG_FOR_STATUS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    410: "gone",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    429: "too-many-requests",
    500: "internal-error",
    503: "unavailable",
}


def problem(status: int, title: str, detail: str, *, errors_: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> Response:
    """Build a problem document response."""
    body: dict[str, Any] = {
        "type": f"urn:citycode:problem:{_SLUG_FOR_STATUS.get(status, 'error')}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors_:
        body["errors"] = errors_
    request_id = g.get("request_id")
    if request_id:
        body["request_id"] = request_id
    response = Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=PROBLEM_MIME)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _validation_errors(data: dict[str, Any]) -> dict[str, Any]:
    """Flatten webargs' ``{location: {field: [...]}}`` into ``{field: [...]}``."""
    messages = data.get("errors") or data.get("messages") or {}
    flat: dict[str, Any] = {}
    for location, fields in messages.items():
        if isinstance(fields, dict):
            flat.update(fields)
        else:
            flat[location] = fields
    return flat


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    if status >= 500:
        # Never leak internals; the log has the request id to find the cause.
        return problem(status, error.name, "The service could not complete the request.")
    data = getattr(error, "data", None) or {}
    detail = data.get("message") or error.description or error.name
    if status == 422 or (status == 400 and data.get("messages")):
        flat = _validation_errors(data)
        detail = data.get("message") or "The request body or parameters are not valid."
        return problem(status, error.name, detail, errors_=flat, headers=data.get("headers"))
    headers = dict(data.get("headers") or {})
    if status == 405 and hasattr(error, "valid_methods") and error.valid_methods:
        headers["Allow"] = ", ".join(error.valid_methods)
    return problem(status, error.name, str(detail), headers=headers)


def handle_domain_error(error: errors.DomainError) -> Response:
    status = next((code for cls, code in _STATUS_FOR.items() if isinstance(error, cls)), 400)
    errors_ = error.errors if isinstance(error, errors.InvalidInput) else None
    retry_after = error.extra.get("retry_after")
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return problem(status, error.title, error.detail, errors_=errors_, headers=headers)


def handle_unexpected(error: Exception) -> Response:
    log.exception("unhandled error", extra={"request_id": g.get("request_id")})
    return handle_http_exception(InternalServerError())


def refuse_oversized_body() -> Response | None:
    """413 before any view runs, whether or not the view would read the body. The request's limit
    is ``MAX_CONTENT_LENGTH`` unless a route set its own first (a blueprint's
    ``url_value_preprocessor``, e.g. tap uploads).

    A body without ``Content-Length`` (``Transfer-Encoding: chunked``; the server has decoded it and
    says so with ``wsgi.input_terminated``) is read here, up to the limit: Werkzeug's capped stream
    stops *at* the limit without a word, so the view would see a cut-off body (a 400 "Invalid JSON
    body") or, reading none, act on it. One more byte past the limit means too large. Requests with
    a ``Content-Length`` (all of the hot path) pay nothing more than before."""
    limit = request.max_content_length
    if limit is None:
        return None
    length = request.content_length
    if length is not None:
        return handle_http_exception(RequestEntityTooLarge()) if length > limit else None
    environ = request.environ
    if environ.get("wsgi.input_terminated") and "HTTP_TRANSFER_ENCODING" in environ:
        if len(request.get_data(cache=True)) >= limit and environ["wsgi.input"].read(1):
            return handle_http_exception(RequestEntityTooLarge())
    return None


def init_app(app: Flask) -> None:
    app.before_request(refuse_oversized_body)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(errors.DomainError, handle_domain_error)
    app.register_error_handler(Exception, handle_unexpected)
