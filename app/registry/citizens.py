"""Enrolment, status and the citizen's own (masked) view."""
from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit import log as audit
from app.auth import Role, issue_token
from app.db.models import Citizen
from app.errors import Conflict, InvalidInput, NotFound
from app.registry import resident_id, revocations
from app.registry.pii import PiiVault

ACTIVE, SUSPENDED = "active", "suspended"


@dataclass(frozen=True)
class Enrolment:
    citizen_id: str
    app_token: str


def _context(citizen_id: str, column: str) -> str:
    return f"citizens/{citizen_id}/{column}"


def enrol(session: Session, vault: PiiVault, name: str, id_number: str, phone: str | None, *,
          admin_id: str) -> Enrolment:
    """Enrol a real-name-verified citizen, audited as ``admin_id``'s act (by pseudonym and id,
    never the personal data); 409 when the ID number is already enrolled."""
    id_number = resident_id.normalise(id_number)
    problems = resident_id.problems(id_number)
    if problems:
        raise InvalidInput("Not a valid resident ID number.", {"id_number": problems})
    id_hash = vault.lookup_hash(id_number, "id_number")
    if session.scalar(select(Citizen.id).where(Citizen.id_number_hash == id_hash)) is not None:
        raise Conflict("This ID number is already enrolled.")
    citizen_id = "cit_" + uuid.uuid4().hex[:20]
    citizen = Citizen(
        id=citizen_id,
        pseudonym=secrets.token_urlsafe(8),  # 64 random bits; the only identifier a code carries
        name_enc=vault.encrypt(name, _context(citizen_id, "name")),
        id_number_enc=vault.encrypt(id_number, _context(citizen_id, "id_number")),
        phone_enc=vault.encrypt(phone, _context(citizen_id, "phone")) if phone else None,
        id_number_hash=id_hash,
        status=ACTIVE,
        created_at=datetime.now(timezone.utc),
    )
    session.add(citizen)
    try:
        session.flush()
    except IntegrityError:  # a concurrent enrolment of the same number won the race
        raise Conflict("This ID number is already enrolled.") from None
    audit.append(session, actor_kind="admin", actor_id=admin_id, action="citizen_enrolled",
                 subject=citizen.pseudonym, details={"citizen_id": citizen_id})
    return Enrolment(citizen_id, issue_token(session, Role.CITIZEN, citizen_id))


def get(session: Session, citizen_id: str) -> Citizen:
    citizen = session.get(Citizen, citizen_id)
    if citizen is None:
        raise NotFound("No such citizen.")
    return citizen


def set_status(session: Session, citizen_id: str, status: str, reason: str | None, *,
               admin_id: str) -> Citizen:
    """Suspend or restore; a change enters the revocation feed, so readers follow it, and the
    audit log as ``admin_id``'s act (the free-text reason stays in the citizens table)."""
    citizen = get(session, citizen_id)
    if citizen.status != status:
        citizen.status = status
        citizen.status_reason = reason
        kind = "citizen_suspended" if status == SUSPENDED else "citizen_restored"
        revocations.record(session, kind, citizen.pseudonym)
        audit.append(session, actor_kind="admin", actor_id=admin_id, action=kind,
                     subject=citizen.pseudonym, details={"citizen_id": citizen_id})
    return citizen


def mask_name(name: str) -> str:
    """张三丰 → 张**; one-character names stay masked too."""
    return name[:1] + "*" * max(1, len(name) - 1) if name else ""


def masked_profile(vault: PiiVault, citizen: Citizen) -> dict[str, str]:
    return {
        "name_masked": mask_name(vault.decrypt(citizen.name_enc, _context(citizen.id, "name"))),
        "id_number_masked": resident_id.mask(vault.decrypt(citizen.id_number_enc,
                                                           _context(citizen.id, "id_number"))),
    }


def personal_data(vault: PiiVault, citizen: Citizen) -> dict[str, str | None]:
    """Clear personal data, for an approved and audited disclosure only."""
    return {
        "name": vault.decrypt(citizen.name_enc, _context(citizen.id, "name")),
        "id_number": vault.decrypt(citizen.id_number_enc, _context(citizen.id, "id_number")),
        "phone": vault.decrypt(citizen.phone_enc, _context(citizen.id, "phone")) if citizen.phone_enc else None,
    }
