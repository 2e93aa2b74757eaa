"""Registering issuers and terminals; each gets a bearer token returned exactly once."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Mapping, Sequence

from sqlalchemy.orm import Session

from app.audit import log as audit
from app.audit.scans import where
from app.auth import Role, issue_token
from app.db.models import Issuer, Terminal
from app.errors import InvalidInput
from app.registry.credential_types import CREDENTIAL_TYPES

TERMINAL_SITE_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # kind: (required site fields, optional site fields)
    "bus": (("line", "vehicle"), ()),
    "metro": (("station",), ()),
    "scenic": (("spot",), ()),
    "hall": (("hall",), ("counter",)),
}


@dataclass(frozen=True)
class Enrolled:
    id: str
    token: str


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:20]


def register_issuer(session: Session, name: str, credential_types: Sequence[str], *,
                    admin_id: str) -> Enrolled:
    """A new issuer of ``credential_types``, audited as ``admin_id``'s act."""
    unknown = sorted(set(credential_types) - CREDENTIAL_TYPES)
    if unknown:
        raise InvalidInput("Unknown credential types.",
                           {"credential_types": [f"unknown type: {t}" for t in unknown]})
    issuer = Issuer(id=_new_id("iss_"), name=name, credential_types=sorted(set(credential_types)),
                    created_at=datetime.now(timezone.utc))
    session.add(issuer)
    audit.append(session, actor_kind="admin", actor_id=admin_id, action="issuer_registered",
                 details={"issuer_id": issuer.id, "credential_types": issuer.credential_types})
    return Enrolled(issuer.id, issue_token(session, Role.ISSUER, issuer.id))


SiteCheck = Callable[[str, Mapping[str, str]], list[str]]


def check_site(kind: str, site: dict[str, str], places: SiteCheck | None = None) -> dict[str, str]:
    """The site fields a terminal of ``kind`` must (and may) have, naming a place that exists
    (``places`` says which do); anything else is refused."""
    required, optional = TERMINAL_SITE_FIELDS[kind]
    problems = [f"missing field: {f}" for f in required if not site.get(f)]
    problems += [f"unknown field: {f}" for f in sorted(set(site) - set(required) - set(optional))]
    if not problems and places is not None:
        problems = places(kind, site)
    if problems:
        raise InvalidInput(f"Not a valid site for a {kind} terminal.", {"site": problems})
    return site


def register_terminal(session: Session, kind: str, site: dict[str, str],
                      places: SiteCheck | None = None, *, admin_id: str) -> Enrolled:
    """A new terminal at a checked site, audited as ``admin_id``'s act."""
    terminal = Terminal(id=_new_id("trm_"), kind=kind, site=check_site(kind, site, places),
                        created_at=datetime.now(timezone.utc))
    session.add(terminal)
    audit.append(session, actor_kind="admin", actor_id=admin_id, action="terminal_registered",
                 site=where(kind, terminal.site), details={"terminal_id": terminal.id, "kind": kind})
    return Enrolled(terminal.id, issue_token(session, Role.TERMINAL, terminal.id))
