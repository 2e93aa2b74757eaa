"""Token lifecycle: deregister a terminal, rotate a terminal's or an issuer's token, revoke an
issuer's tokens, give a citizen a new app token (lost phone), revoke one app token.

Every function runs inside the caller's transaction and appends its audit entry there; after the
commit the caller must ``app.auth.announce`` so every worker drops its cached principals. Revoked
rows stay revoked (``revoked_at`` is never cleared): suspending and restoring a citizen changes
only the citizen's status, so it cannot revive a revoked token.

Each mutation first locks its owner's row (PostgreSQL: ``FOR UPDATE``) and then revokes with one
``UPDATE`` (SQLite: the first write takes the database lock and reads the newest rows), so two
concurrent rotations cannot leave two live tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.audit import log as audit
from app.audit.scans import where
from app.auth import IssuedToken, Role, mint_token
from app.db.models import ApiToken, Citizen, Issuer, Terminal
from app.errors import Conflict, NotFound


@dataclass(frozen=True)
class Revoked:
    """What a revocation did: the ids of the tokens it revoked (empty when none were live)."""

    token_ids: tuple[str, ...]


@dataclass(frozen=True)
class Replaced:
    """A new token (plain text shown once) and the ids of the tokens it replaced."""

    issued: IssuedToken
    revoked: tuple[str, ...]


def _revoke(session: Session, role: Role, principal_id: str, reason: str | None, *,
            only: str | None = None, keep: str | None = None) -> tuple[str, ...]:
    """Revoke the live tokens of ``(role, principal_id)`` (just ``only``, or all but ``keep``)."""
    table = ApiToken.__table__
    statement = (update(ApiToken)
                 .where(table.c.role == role.value, table.c.principal_id == principal_id,
                        table.c.revoked_at.is_(None))
                 .values(revoked_at=datetime.now(timezone.utc), revoke_reason=reason)
                 .returning(table.c.id))
    if only is not None:
        statement = statement.where(table.c.id == only)
    if keep is not None:
        statement = statement.where(table.c.id != keep)
    return tuple(sorted(session.scalars(statement, execution_options={"synchronize_session": False})))


def _terminal(session: Session, terminal_id: str) -> Terminal:
    row = session.get(Terminal, terminal_id, with_for_update=True)
    if row is None:
        raise NotFound("No such terminal.")
    return row


def _issuer(session: Session, issuer_id: str) -> Issuer:
    row = session.get(Issuer, issuer_id, with_for_update=True)
    if row is None:
        raise NotFound("No such issuer.")
    return row


def _citizen(session: Session, citizen_id: str) -> Citizen:
    row = session.get(Citizen, citizen_id, with_for_update=True)
    if row is None:
        raise NotFound("No such citizen.")
    return row


def deregister_terminal(session: Session, terminal_id: str, reason: str | None, *,
                        admin_id: str) -> Revoked:
    """Deregister a terminal (stolen, broken, retired): its tokens are revoked and it gets no new
    one. Again on a deregistered terminal: nothing changes, nothing is audited."""
    terminal = _terminal(session, terminal_id)
    revoked = _revoke(session, Role.TERMINAL, terminal.id, reason)
    if terminal.revoked_at is not None and not revoked:
        return Revoked(())
    terminal.revoked_at = terminal.revoked_at or datetime.now(timezone.utc)
    audit.append(session, actor_kind="admin", actor_id=admin_id, action="terminal_deregistered",
                 site=where(terminal.kind, terminal.site),
                 details={"terminal_id": terminal.id, "revoked_tokens": list(revoked)})
    return Revoked(revoked)


def rotate_terminal_token(session: Session, terminal_id: str, *, admin_id: str) -> Replaced:
    """A new token for a registered terminal; its other tokens are revoked. 409 once deregistered."""
    terminal = _terminal(session, terminal_id)
    if terminal.revoked_at is not None:
        raise Conflict("This terminal is deregistered; register a new one.")
    revoked = _revoke(session, Role.TERMINAL, terminal.id, "rotated")
    issued = mint_token(session, Role.TERMINAL, terminal.id)
    audit.append(session, actor_kind="admin", actor_id=admin_id, action="terminal_token_rotated",
                 site=where(terminal.kind, terminal.site),
                 details={"terminal_id": terminal.id, "token_id": issued.token_id,
                          "revoked_tokens": list(revoked)})
    return Replaced(issued, revoked)


def rotate_issuer_token(session: Session, issuer_id: str, *, admin_id: str) -> Replaced:
    """A new token for an issuer (after a leak, or routinely); its other tokens are revoked."""
    issuer = _issuer(session, issuer_id)
    revoked = _revoke(session, Role.ISSUER, issuer.id, "rotated")
    issued = mint_token(session, Role.ISSUER, issuer.id)
    audit.append(session, actor_kind="admin", actor_id=admin_id, action="issuer_token_rotated",
                 details={"issuer_id": issuer.id, "token_id": issued.token_id,
                          "revoked_tokens": list(revoked)})
    return Replaced(issued, revoked)


def revoke_issuer_tokens(session: Session, issuer_id: str, reason: str | None, *,
                         admin_id: str) -> Revoked:
    """Revoke every token of an issuer: it can issue nothing until it is given a new one.
    Credentials it issued stay as they are."""
    issuer = _issuer(session, issuer_id)
    revoked = _revoke(session, Role.ISSUER, issuer.id, reason)
    if revoked:
        audit.append(session, actor_kind="admin", actor_id=admin_id, action="issuer_tokens_revoked",
                     details={"issuer_id": issuer.id, "revoked_tokens": list(revoked)})
    return Revoked(revoked)


def new_app_token(session: Session, citizen_id: str, label: str | None, *, revoke_others: bool,
                  admin_id: str) -> Replaced:
    """A new app token for a citizen (a new or replacement phone), with the others revoked
    unless ``revoke_others`` is false. A suspended citizen may get one; it mints no code until
    the citizen is restored."""
    citizen = _citizen(session, citizen_id)
    revoked = _revoke(session, Role.CITIZEN, citizen.id, "replaced") if revoke_others else ()
    issued = mint_token(session, Role.CITIZEN, citizen.id, label)
    audit.append(session, actor_kind="admin", actor_id=admin_id, action="app_token_issued",
                 subject=citizen.pseudonym,
                 details={"citizen_id": citizen.id, "token_id": issued.token_id,
                          "revoked_tokens": list(revoked)})
    return Replaced(issued, revoked)


def revoke_app_token(session: Session, citizen_id: str, token_id: str, reason: str | None, *,
                     actor_kind: str, actor_id: str) -> Revoked:
    """Revoke one live app token of a citizen, by the admin or the citizen (a lost or sold
    device); 404 when the citizen has no such live token."""
    citizen = _citizen(session, citizen_id)
    revoked = _revoke(session, Role.CITIZEN, citizen.id, reason, only=token_id)
    if not revoked:
        raise NotFound("No such live app token of this citizen.")
    audit.append(session, actor_kind=actor_kind, actor_id=actor_id, action="app_token_revoked",
                 subject=citizen.pseudonym, details={"citizen_id": citizen.id, "token_id": token_id})
    return Revoked(revoked)


def tokens_of(session: Session, role: Role, principal_id: str, *,
              include_revoked: bool = False) -> Sequence[ApiToken]:
    """The tokens of ``(role, principal_id)``, oldest first; live ones only unless asked."""
    query = select(ApiToken).where(ApiToken.role == role.value, ApiToken.principal_id == principal_id)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    return session.scalars(query.order_by(ApiToken.created_at, ApiToken.id)).all()


def app_tokens(session: Session, citizen_id: str, *, include_revoked: bool = False) -> Sequence[ApiToken]:
    """A citizen's app tokens (404 for an unknown citizen)."""
    if session.get(Citizen, citizen_id) is None:
        raise NotFound("No such citizen.")
    return tokens_of(session, Role.CITIZEN, citizen_id, include_revoked=include_revoked)


def describe(row: ApiToken, last_used: datetime | None) -> dict[str, Any]:
    """A token as the API lists it: never its hash or any part of the token itself."""
    return {"token_id": row.id, "label": row.label, "created_at": audit.utc(row.created_at),
            "last_used_at": last_used,
            "revoked_at": audit.utc(row.revoked_at) if row.revoked_at else None}
