"""Bearer-token checks for views: 401 for a missing or unknown token, 403 for the wrong role."""
from __future__ import annotations

from copy import deepcopy
from functools import wraps
from typing import Any, Callable, TypeVar

from flask import g, request

from app.api.blueprint import Blueprint
from app.api.problems import problem
from app.auth import Principal, Role, authenticate
from app.runtime import runtime

F = TypeVar("F", bound=Callable[..., Any])

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="citycode"'}


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def current_principal() -> Principal:
    return g.principal  # type: ignore[no-any-return]


def require(*roles: Role) -> Callable[[F], F]:
    """Allow the view only to callers holding a token of one of ``roles``."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = _bearer_token()
            if token is None:
                return problem(401, "Unauthorized", "A bearer token is required.", headers=_CHALLENGE)
            rt = runtime()
            principal = rt.principals.get(token)
            if principal is None:
                with rt.db.session() as session:
                    principal = authenticate(session, token, rt.settings.admin_token)
                if principal is not None:
                    rt.principals.put(token, principal)
            if principal is None:
                return problem(401, "Unauthorized", "The bearer token is not valid.", headers=_CHALLENGE)
            g.principal = principal
            if principal.role not in roles:
                allowed = ", ".join(r.value for r in roles)
                return problem(403, "Forbidden", f"This endpoint is for the role(s): {allowed}.")
            return view(*args, **kwargs)

        _document_auth_failures(wrapper)
        return Blueprint.doc(security=[{"bearerAuth": []}])(wrapper)  # type: ignore[no-any-return]

    return decorator


def _document_auth_failures(view: Any) -> None:
    """Add 401 and 403 (problem+json) to the view's OpenAPI responses, as ``alt_response`` would;
    a 403 the view documents itself (with a more telling description) is kept."""
    view._apidoc = deepcopy(getattr(view, "_apidoc", {}))  # not the wrapped view's dict
    responses = view._apidoc.setdefault("response", {}).setdefault("responses", {})
    for status, name in ((401, "UNAUTHORIZED"), (403, "FORBIDDEN")):
        if status not in responses and str(status) not in responses:
            responses[status] = [name]
