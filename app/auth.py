"""Bearer tokens for the four roles: random, stored only as hashes, compared in constant time."""
from __future__ import annotations

import enum
import hashlib
import hmac
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import ApiToken

MAX_TOKEN_LENGTH = 128


class Role(str, enum.Enum):
    ADMIN = "admin"
    ISSUER = "issuer"
    CITIZEN = "citizen"
    TERMINAL = "terminal"


_PREFIX = {Role.ADMIN: "cca_", Role.ISSUER: "cci_", Role.CITIZEN: "ccc_", Role.TERMINAL: "cct_"}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a role and the id of the admin, issuer, citizen or terminal."""

    role: Role
    principal_id: str


def token_hash(token: str) -> bytes:
    """SHA-256 is enough: tokens carry 256 random bits, so there is nothing to brute-force."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def new_token(role: Role) -> str:
    return _PREFIX[role] + secrets.token_urlsafe(32)


def issue_token(session: Session, role: Role, principal_id: str) -> str:
    """Create and store (as a hash) a new token; the plain token is returned once, never stored."""
    token = new_token(role)
    session.add(ApiToken(id=uuid.uuid4().hex, role=role.value, principal_id=principal_id,
                         token_hash=token_hash(token), created_at=datetime.now(timezone.utc)))
    return token


def authenticate(session: Session, token: str, env_admin_token: str | None) -> Principal | None:
    """Return the principal a presented token belongs to, or None."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    presented = token_hash(token)
    if env_admin_token is not None and hmac.compare_digest(presented, token_hash(env_admin_token)):
        return Principal(Role.ADMIN, "admin")
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == presented)).first()
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.token_hash, presented):
        return None
    if row.role == Role.ADMIN.value and env_admin_token is not None:
        return None  # the environment's admin token replaces any generated one
    return Principal(Role(row.role), row.principal_id)


class PrincipalCache:
    """Remembers recently authenticated tokens (by hash) for ``ttl`` seconds, so a gate's
    every scan does not cost a database query. A revoked token keeps working for at most ``ttl``."""

    def __init__(self, ttl: float = 10.0, max_entries: int = 50_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[bytes, tuple[float, Principal]] = {}

    def get(self, token: str) -> Principal | None:
        hit = self._entries.get(token_hash(token))
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, token: str, principal: Principal) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[token_hash(token)] = (time.monotonic() + self.ttl, principal)


def ensure_admin_token(session: Session, token_file: Path) -> str | None:
    """On first run with no ``CITYCODE_ADMIN_TOKEN``, create an admin token and write it to a 0600 file.

    Returns the path's text when a new token was written, else None.
    """
    exists = session.scalars(select(ApiToken.id).where(
        ApiToken.role == Role.ADMIN.value, ApiToken.revoked_at.is_(None))).first()
    if exists is not None:
        return None
    token = issue_token(session, Role.ADMIN, "admin")
    token_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    os.chmod(token_file, 0o600)
    return str(token_file)
