"""Bearer-token checks for views: 401 for a missing or unknown token, 403 for the wrong role."""
from __future__ import annotations

from functools import wraps
from typing import Any, Callable, TypeVar

from flask import g, request
from flask_smorest import Blueprint

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

        return Blueprint.doc(security=[{"bearerAuth": []}])(wrapper)  # type: ignore[no-any-return]

    return decorator
