"""The domain's error tree. Domain code raises these; ``app.api.problems`` turns them into HTTP.

Code *verification* failures are not errors here: a bad code is a normal deny decision, with its
own exception tree in ``app.codes.errors``.
"""
from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    title = "Request failed"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InvalidInput(DomainError):
    """Input passed the schema but breaks a domain rule (field -> messages in ``errors``)."""

    title = "Validation failed"

    def __init__(self, detail: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(detail)
        self.errors = errors or {}


class NotFound(DomainError):
    title = "Not found"


class Conflict(DomainError):
    title = "Conflict"


class PermissionDenied(DomainError):
    title = "Forbidden"


class Gone(DomainError):
    title = "Gone"


class Unavailable(DomainError):
    """A dependency (database, Redis, keys) cannot serve the request right now."""

    title = "Service unavailable"
