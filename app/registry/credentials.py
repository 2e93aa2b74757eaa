"""Credentials issued by bureaus: linking, revoking, listing, and the citizen's entitlements.

Entitlements are a function of a moment: the credentials valid then, and for a scenic reservation
the city day (Asia/Shanghai) it falls on (``app.registry.entitlements``). Revoking compares the
entitlements before and after at ONE moment, so only what the revocation itself takes away enters
the feed as ``entitlement_revoked``: a reservation for another day, or one that starts or ends
with the date or its validity window, takes nothing away today and records nothing (codes carry
only their minting day's reservations and live a minute, so there is nothing to strip).
"""
from __future__ import annotations

import uuid
from datetime import date, datetime, timezone
from typing import Any, Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import log as audit
from app.city import CITY_TZ
from app.db.models import Citizen, Credential, Issuer
from app.errors import InvalidInput, NotFound, PermissionDenied
from app.registry import citizens, entitlements, revocations
from app.registry.credential_types import CREDENTIAL_TYPES, HOLDER_FIELDS, by_type
from app.registry.pii import PiiVault

ACTIVE, REVOKED = "active", "revoked"
HEALTH_STATUSES = ("green", "yellow", "red")


def _context(credential_id: str) -> str:
    return f"credentials/{credential_id}/number"


def mask_number(number: str) -> str:
    if len(number) <= 4:
        return "*" * len(number)
    keep = 2 if len(number) < 10 else 4
    return number[:keep] + "*" * (len(number) - 2 * keep) + number[-keep:]


def check_attributes(credential_type: str, attributes: Mapping[str, Any]) -> dict[str, str]:
    """Type-specific attribute rules; values are short strings."""
    errors: list[str] = []
    if credential_type == "health_code" and attributes.get("status") not in HEALTH_STATUSES:
        errors.append(f"status must be one of {', '.join(HEALTH_STATUSES)}")
    if credential_type == "scenic_reservation":
        if not attributes.get("spot"):
            errors.append("spot is required")
        try:
            date.fromisoformat(str(attributes.get("date", "")))
        except ValueError:
            errors.append("date must be YYYY-MM-DD")
    if errors:
        raise InvalidInput("Attributes do not fit the credential type.", {"attributes": errors})
    return {str(k): str(v) for k, v in attributes.items()}


def issue(session: Session, vault: PiiVault, issuer_id: str, *, citizen_id: str, credential_type: str,
          number: str, attributes: Mapping[str, Any], valid_from: datetime | None,
          valid_until: datetime | None) -> Credential:
    """Link a credential to a citizen, audited as the issuer's act; only types the issuer is
    registered for."""
    issuer = session.get(Issuer, issuer_id)
    if issuer is None:
        raise PermissionDenied("Unknown issuer.")
    if credential_type not in CREDENTIAL_TYPES:
        raise InvalidInput("Unknown credential type.", {"type": [f"unknown type: {credential_type}"]})
    if credential_type not in issuer.credential_types:
        raise PermissionDenied(f"This issuer may not issue {credential_type}.")
    citizen = session.get(Citizen, citizen_id)
    if citizen is None:
        raise InvalidInput("No such citizen.", {"citizen_id": ["no citizen with this id"]})
    valid_from, valid_until = _utc("valid_from", valid_from), _utc("valid_until", valid_until)
    if valid_from and valid_until and valid_until <= valid_from:
        raise InvalidInput("Validity window is empty.", {"valid_until": ["must be after valid_from"]})
    credential_id = "crd_" + uuid.uuid4().hex[:20]
    credential = Credential(
        id=credential_id, citizen_id=citizen_id, issuer_id=issuer_id, type=credential_type,
        number_enc=vault.encrypt(number, _context(credential_id)), number_masked=mask_number(number),
        attributes=check_attributes(credential_type, attributes), valid_from=valid_from,
        valid_until=valid_until, status=ACTIVE, created_at=datetime.now(timezone.utc))
    session.add(credential)
    _audit(session, "credential_issued", credential, citizen)
    return credential


def _utc(field: str, moment: datetime | None) -> datetime | None:
    """In UTC, as every time is stored: SQLite keeps a datetime's wall time and drops its offset,
    so 08:00+08:00 would come back as 08:00 UTC. Times UTC cannot represent are refused."""
    if moment is None:
        return None
    try:
        return audit.utc(moment)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00 is in year 0 in UTC
        raise InvalidInput("The time is out of range.", {field: ["not representable in UTC"]}) from None


def revoke(session: Session, issuer_id: str, credential_id: str, reason: str | None,
           now: datetime | None = None) -> Credential:
    """Revoke, audited as the issuer's act; if that takes an entitlement away at ``now`` (default:
    the current time), it enters the feed at once."""
    credential = session.get(Credential, credential_id)
    if credential is None or credential.issuer_id != issuer_id:
        raise NotFound("No such credential for this issuer.")  # no hint that another issuer has it
    if credential.status == REVOKED:
        return credential
    citizen = session.get(Citizen, credential.citizen_id)
    assert citizen is not None
    moment = datetime.now(timezone.utc) if now is None else audit.utc(now)  # stored as UTC
    before = set(current_entitlements(session, citizen.id, moment))
    credential.status = REVOKED
    credential.revoked_at = moment
    credential.revoke_reason = reason
    session.flush()
    # The same moment on both sides: a clock ticking past midnight (or past a validity bound)
    # between the two reads would otherwise look like a revocation.
    for lost in sorted(before - set(current_entitlements(session, citizen.id, moment))):
        revocations.record(session, "entitlement_revoked", f"{citizen.pseudonym}/{lost}",
                           int(moment.timestamp()))
    _audit(session, "credential_revoked", credential, citizen)
    return credential


def _audit(session: Session, action: str, credential: Credential, citizen: Citizen) -> None:
    """By credential id and type only: never the number or the free-text reason."""
    audit.append(session, actor_kind="issuer", actor_id=credential.issuer_id, action=action,
                 subject=citizen.pseudonym,
                 details={"credential_id": credential.id, "credential_types": [credential.type]})


def _is_valid(credential: Credential, now: datetime) -> bool:
    def aware(moment: datetime) -> datetime:  # SQLite hands back naive datetimes
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)

    return (credential.status == ACTIVE
            and (credential.valid_from is None or aware(credential.valid_from) <= now)
            and (credential.valid_until is None or now < aware(credential.valid_until)))


def valid_credentials(session: Session, citizen_id: str, now: datetime | None = None) -> list[Credential]:
    now = now or datetime.now(timezone.utc)
    rows = session.scalars(select(Credential).where(Credential.citizen_id == citizen_id,
                                                    Credential.status == ACTIVE)).all()
    return [c for c in rows if _is_valid(c, now)]


def current_entitlements(session: Session, citizen_id: str, now: datetime | None = None) -> tuple[str, ...]:
    """The entitlements the citizen holds at ``now`` (default: the current time; naive is UTC): from
    credentials valid then, reservations only for the city day ``now`` falls on."""
    now = datetime.now(timezone.utc) if now is None else audit.utc(now)
    held = ((c.type, c.attributes) for c in valid_credentials(session, citizen_id, now))
    return entitlements.derive(held, day=now.astimezone(CITY_TZ).date())


def for_citizen(session: Session, citizen_id: str) -> list[tuple[Credential, str]]:
    """All of a citizen's credentials with the issuing bureau's name, newest first."""
    rows = session.execute(select(Credential, Issuer.name).join(Issuer, Issuer.id == Credential.issuer_id)
                           .where(Credential.citizen_id == citizen_id)
                           .order_by(Credential.created_at.desc())).all()
    return [(credential, name) for credential, name in rows]


def reveal_number(vault: PiiVault, credential: Credential) -> str:
    return vault.decrypt(credential.number_enc, _context(credential.id))


def disclose(session: Session, vault: PiiVault, pseudonym: str, fields: Sequence[str],
             now: datetime) -> list[dict[str, Any]] | None:
    """In clear, for an approved and audited disclosure only: the citizen's credentials of the
    types ``fields`` name (qualified, ``"id_card.number"``; in their order) still valid at ``now``,
    each with its id, its type and exactly the fields named for its type; the holder's name and ID
    number only when named (``holder.name``, ``holder.id_number``). None when the citizen is not
    active (suspended): nothing may leave."""
    citizen = session.scalars(select(Citizen).where(Citizen.pseudonym == pseudonym)).one_or_none()
    if citizen is None or citizen.status != citizens.ACTIVE:
        return None
    wanted = by_type(fields)
    valid = {c.id for c in valid_credentials(session, citizen.id, now)}
    rows = [(c, issuer) for c, issuer in for_citizen(session, citizen.id)
            if c.id in valid and c.type in wanted]
    holder: dict[str, Any] = {}
    if any(name in HOLDER_FIELDS for names in wanted.values() for name in names) and rows:
        personal = citizens.personal_data(vault, citizen)
        holder = {"holder.name": personal["name"], "holder.id_number": personal["id_number"]}
    released: list[dict[str, Any]] = []
    for credential_type, names in wanted.items():
        for credential, issuer in rows:
            if credential.type == credential_type:
                released.append(_released(vault, credential, issuer, names, holder))
    return released


def _released(vault: PiiVault, credential: Credential, issuer: str, names: Sequence[str],
              holder: Mapping[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {"credential_id": credential.id, "type": credential.type}
    for name in names:
        if name == "number":
            item["number"] = reveal_number(vault, credential)
        elif name == "issuer":
            item["issuer"] = issuer
        elif name == "valid_until":
            item["valid_until"] = audit.utc(credential.valid_until) if credential.valid_until else None
        elif name == "attributes":
            item["attributes"] = dict(credential.attributes)
        elif name in holder:
            item.setdefault("holder", {})[name.partition(".")[2]] = holder[name]
    return item


def get(session: Session, credential_id: str) -> Credential:
    credential = session.get(Credential, credential_id)
    if credential is None:
        raise NotFound("No such credential.")
    return credential
