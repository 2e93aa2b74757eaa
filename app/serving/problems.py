"""gunicorn's own error answers as RFC 9457 problem documents, like the application's: a malformed
request line or header, a request line over the limit, too many or too large headers, a body not
received in time (408) ... (issue #9). Shared by every worker class in ``app.serving``."""
from __future__ import annotations

import json
import logging
import ssl
from typing import Any

from gunicorn.http import errors as http_errors

log = logging.getLogger("citycode.serve")

PROBLEM_MIME = "application/problem+json"
# Status, title and problem slug for the errors gunicorn raises before the application runs.
# Checked in order: the response-header errors subclass the request-header ones.
_PARSE_ERRORS: tuple[tuple[type[BaseException], int, str, str], ...] = (
    (http_errors.InvalidResponseHeader, 500, "Internal Server Error", "internal-error"),
    (http_errors.InvalidResponseHeaderName, 500, "Internal Server Error", "internal-error"),
    (http_errors.LimitRequestLine, 414, "URI Too Long", "uri-too-long"),
    (http_errors.LimitRequestHeaders, 431, "Request Header Fields Too Large", "header-fields-too-large"),
    (http_errors.ExpectationFailed, 417, "Expectation Failed", "expectation-failed"),
    (http_errors.UnsupportedTransferCoding, 501, "Not Implemented", "not-implemented"),
    (http_errors.ForbiddenProxyRequest, 403, "Forbidden", "forbidden"),
    (http_errors.ConfigurationProblem, 500, "Internal Server Error", "internal-error"),
    (http_errors.ParseException, 400, "Bad Request", "bad-request"),
)
_DETAIL = {
    400: "The request is not well-formed HTTP/1.1.",
    403: "The request is not allowed.",
    408: "The request was not received in time.",
    414: "The request line is longer than the service accepts.",
    417: "The Expect header names an expectation the service cannot meet.",
    431: "The request has more or larger header fields than the service accepts.",
    500: "The service could not complete the request.",
    501: "The request uses a transfer coding the service does not implement.",
}


class BodyTimeout(Exception):
    """The request body did not arrive within the body timeout."""


def problem_response(status: int, title: str, slug: str) -> bytes:
    """A complete HTTP/1.1 response carrying an RFC 9457 problem document; the connection closes."""
    body = json.dumps({"type": f"urn:citycode:problem:{slug}", "title": title, "status": status,
                       "detail": _DETAIL.get(status, title)}).encode()
    head = (f"HTTP/1.1 {status} {title}\r\nContent-Type: {PROBLEM_MIME}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\nCache-Control: no-store\r\n\r\n")
    return head.encode("latin-1") + body


def classify(exc: BaseException) -> tuple[int, str, str, bool]:
    """Status, title, slug, and whether it is the client's fault, for an error before or around
    the application."""
    if isinstance(exc, BodyTimeout):
        return 408, "Request Timeout", "request-timeout", True
    if isinstance(exc, ssl.SSLError):
        return 403, "Forbidden", "forbidden", True
    for kind, status, title, slug in _PARSE_ERRORS:
        if isinstance(exc, kind):
            return status, title, slug, status < 500
    return 500, "Internal Server Error", "internal-error", False


def log_problem(exc: BaseException) -> bytes:
    """Log an error before or around the application (no request content: a request line may
    carry a code or a name) and return the problem response that answers it."""
    status, title, slug, client_fault = classify(exc)
    if client_fault:
        log.warning("invalid request", extra={"status": status, "error": type(exc).__name__})
    else:
        log.error("error handling request", exc_info=exc, extra={"error": type(exc).__name__})
    return problem_response(status, title, slug)


class ProblemErrors:
    """gunicorn's ``handle_error`` answering problem+json."""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        answer = log_problem(exc)
        try:
            client.sendall(answer)
        except OSError:
            pass
