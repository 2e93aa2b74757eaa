"""The credential types the city knows (issuers are registered with a subset of these) and the
fields a disclosure of them may release."""
from __future__ import annotations

from typing import Sequence

CREDENTIAL_TYPES: frozenset[str] = frozenset({
    "id_card",
    "social_security_card",
    "health_code",
    "senior_card",
    "student_card",
    "disability_card",
    "scenic_reservation",
    "scenic_annual_pass",
    "business_licence",
    "driving_licence",
    "residence_permit",
    "household_register",
    "marriage_certificate",
    "degree_certificate",
})


# -- what a disclosure may release --------------------------------------------------------------
# A disclosure names its fields as "<credential type>.<field>", e.g. "id_card.holder.name". Every
# type has the same fields: the credential's own data, and the holder's identity (their real name
# and resident ID number, from the citizen's record), which leaves only when asked for: by name, or
# by asking for an identity type (below) without naming fields.
CREDENTIAL_FIELDS: tuple[str, ...] = ("number", "issuer", "valid_until", "attributes")
HOLDER_FIELDS: tuple[str, ...] = ("holder.name", "holder.id_number")
FIELDS: tuple[str, ...] = CREDENTIAL_FIELDS + HOLDER_FIELDS  # the order fields are listed in
# Types that are the holder's identity: asking for one by type alone asks for the holder's name and
# ID number too (what the card shows). Any other type alone releases no holder identity.
IDENTITY_TYPES: frozenset[str] = frozenset({"id_card"})


def default_fields(credential_type: str) -> tuple[str, ...]:
    """The fields a request naming only ``credential_type`` asks for (qualified names)."""
    names = FIELDS if credential_type in IDENTITY_TYPES else CREDENTIAL_FIELDS
    return tuple(f"{credential_type}.{name}" for name in names)


def split_field(qualified: str) -> tuple[str, str] | None:
    """``"id_card.holder.name"`` → ``("id_card", "holder.name")``; None when it is no field of a
    known type."""
    credential_type, _, name = qualified.partition(".")
    if credential_type not in CREDENTIAL_TYPES or name not in FIELDS:
        return None
    return credential_type, name


def check_fields(credential_types: Sequence[str], fields: Sequence[str] | None
                 ) -> tuple[tuple[str, ...], list[str]]:
    """The fields a request asks for, in type order then ``FIELDS`` order, duplicates dropped, and
    what is wrong with them. ``fields`` None: each type's ``default_fields``. Otherwise every field
    must be a known field of one of ``credential_types``, and every type must have one."""
    if fields is None:
        return tuple(f for t in credential_types for f in default_fields(t)), []
    problems: list[str] = []
    wanted: dict[str, set[str]] = {t: set() for t in credential_types}
    for qualified in dict.fromkeys(fields):
        split = split_field(qualified)
        if split is None:
            problems.append(f"unknown field: {qualified}")
        elif split[0] not in wanted:
            problems.append(f"{qualified}: {split[0]} is not among the requested credential_types")
        else:
            wanted[split[0]].add(split[1])
    problems += [f"name at least one field of {t}" for t, names in wanted.items() if not names]
    ordered = tuple(f"{t}.{name}" for t, names in wanted.items() for name in FIELDS if name in names)
    return ordered, problems


def by_type(fields: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Qualified field names grouped by credential type, in order."""
    grouped: dict[str, list[str]] = {}
    for qualified in fields:
        split = split_field(qualified)
        if split is not None:
            grouped.setdefault(split[0], []).append(split[1])
    return {t: tuple(names) for t, names in grouped.items()}
