"""Bearer tokens: stored as hashes only, constant-time checks, a short-lived principal cache."""
from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from app.auth import Principal, PrincipalCache, Role, authenticate, issue_token, token_hash
from app.db.models import ApiToken


def test_tokens_are_stored_only_as_hashes(app: Flask) -> None:
    db = app.extensions["citycode"].db
    with db.session() as session:
        token = issue_token(session, Role.TERMINAL, "trm_1")
    with db.session() as session:
        rows = session.scalars(select(ApiToken)).all()
        assert [r.token_hash for r in rows] == [token_hash(token)]
        assert all(token.encode() not in r.token_hash for r in rows)
        assert authenticate(session, token, None) == Principal(Role.TERMINAL, "trm_1")
        assert authenticate(session, token + "x", None) is None


def test_environment_admin_token_replaces_a_generated_one(app: Flask) -> None:
    db = app.extensions["citycode"].db
    with db.session() as session:
        generated = issue_token(session, Role.ADMIN, "admin")
        assert authenticate(session, generated, None) == Principal(Role.ADMIN, "admin")
        assert authenticate(session, generated, "cca_from_the_environment") is None
        assert authenticate(session, "cca_from_the_environment", "cca_from_the_environment") == Principal(Role.ADMIN, "admin")


def test_principal_cache_forgets_after_its_ttl(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    now = [1000.0]
    monkeypatch.setattr("app.auth.time.monotonic", lambda: now[0])
    cache = PrincipalCache(ttl=10)
    cache.put("cct_abc", Principal(Role.TERMINAL, "trm_1"))
    assert cache.get("cct_abc") == Principal(Role.TERMINAL, "trm_1")
    assert cache.get("cct_other") is None
    now[0] += 10.5
    assert cache.get("cct_abc") is None
