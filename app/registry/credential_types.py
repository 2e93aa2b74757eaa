"""The credential types the city knows. Issuers are registered with a subset of these."""
from __future__ import annotations

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
