"""Bearer-token checks for views: 401 for a missing or unknown token, 403 for the wrong role."""
from __future__ import annotations

from copy import deepcopy
from functools import wraps
from typing import Any, Callable, Sequence, TypeVar

from flask import g, request

from app.api.blueprint import Blueprint
from app.api.problems import problem
from app.auth import Principal, Role, announce, authenticate, forget_last_used
from app.runtime import runtime

F = TypeVar("F", bound=Callable[..., Any])

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="citycode"'}


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _principal(token: str) -> Principal | None:
    """The token's principal: cached while no revocation was announced since (no Redis command
    while the worker's revocation listener is subscribed), else from the database (``app.auth``)."""
    rt = runtime()

    def load() -> Principal | None:
        with rt.db.session() as session:
            return authenticate(session, token, rt.settings.admin_token)

    return rt.principals.resolve(token, load)


def revoked(token_ids: Sequence[str]) -> None:
    """Call after committing the revocation of ``token_ids``: returns once every worker has
    dropped its cached principals, so they are refused from the next request on
    (``app.auth.announce``, at most ``ACK_WAIT_SECONDS``)."""
    if token_ids:
        rt = runtime()
        announce(rt.redis)
        forget_last_used(rt.redis, token_ids)


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
            principal = _principal(token)
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
