"""One exception tree for code decisions: each class names exactly one reason code of API.md.

Verification raises these internally and turns them into a ``deny`` decision; scenes may raise
the scene classes (``NotEntitled``, ``Passback`` …) the same way. Exceptions carry data, so a log
line or a journal record can say *why* without parsing the message.
"""
from __future__ import annotations

from typing import Any


class CodeError(Exception):
    """Base of every code decision error; ``reason`` is the API.md reason code."""

    reason: str = "malformed"

    def __init__(self, detail: str = "", **data: Any) -> None:
        super().__init__(detail or self.reason)
        self.detail = detail or self.reason
        self.data = data


# -- verification (codes/verify.py) ------------------------------------------------------------
class Malformed(CodeError):
    """Not a well-formed code: size, encoding, JSON, header or claim types."""

    reason = "malformed"


class BadSignature(CodeError):
    """The signature does not verify, or the header asks for an algorithm we do not accept."""

    reason = "bad_signature"


class UnknownKey(CodeError):
    """The header names a ``kid`` that is not in the published key set."""

    reason = "unknown_key"

    def __init__(self, kid: str) -> None:
        super().__init__("unknown key id", kid=kid)
        self.kid = kid


class WrongType(CodeError):
    """Not one of our codes: the header ``typ`` is not the CityCode type (some other JWS), or an
    authentic code names another issuer."""

    reason = "wrong_type"

    def __init__(self, typ: object = None, *, iss: object = None) -> None:
        super().__init__("unexpected issuer" if iss is not None else "unexpected typ", typ=typ, iss=iss)
        self.typ = typ
        self.iss = iss


class Expired(CodeError):
    """The code's ``exp`` (plus leeway) has passed."""

    reason = "expired"

    def __init__(self, exp: int, now: float) -> None:
        super().__init__("code expired", exp=exp, now=now)
        self.exp = exp
        self.now = now


class NotYetValid(CodeError):
    """The code's ``iat`` (or ``nbf``) lies in the future beyond the leeway."""

    reason = "not_yet_valid"

    def __init__(self, valid_from: int, now: float) -> None:
        super().__init__("code not yet valid", valid_from=valid_from, now=now)
        self.valid_from = valid_from
        self.now = now


class Replayed(CodeError):
    """This ``(iss, jti)`` was already used."""

    reason = "replayed"

    def __init__(self, iss: str, jti: str) -> None:
        super().__init__("code already used", iss=iss, jti=jti)
        self.iss = iss
        self.jti = jti


class Revoked(CodeError):
    """This individual code was revoked."""

    reason = "revoked"

    def __init__(self, iss: str, jti: str) -> None:
        super().__init__("code revoked", iss=iss, jti=jti)
        self.iss = iss
        self.jti = jti


class Suspended(CodeError):
    """The citizen behind the pseudonym is suspended."""

    reason = "suspended"

    def __init__(self, sub: str) -> None:
        super().__init__("citizen suspended", sub=sub)
        self.sub = sub


class Degraded(CodeError):
    """A dependency (replay/state store, trust material) is unavailable: fail closed, say so."""

    reason = "degraded"


class ReplayUnavailable(Degraded):
    """The replay store cannot be reached; authenticity was checked but first use cannot be."""


# -- scenes (bus, metro, scenic, hall) ---------------------------------------------------------
class NotEntitled(CodeError):
    """The code carries no entitlement the scene needs."""

    reason = "not_entitled"


class DuplicateTap(CodeError):
    """Same citizen, same vehicle, within the no-double-charge window."""

    reason = "duplicate_tap"


class Passback(CodeError):
    """A second metro entry without an exit."""

    reason = "passback"


class NoEntry(CodeError):
    """A metro exit without an entry."""

    reason = "no_entry"


class CapacityFull(CodeError):
    """The scenic spot's capacity for the day or slot is used up."""

    reason = "capacity_full"


class NoReservation(CodeError):
    """No reservation or pass admits this citizen to this spot today."""

    reason = "no_reservation"


class AlreadyAdmitted(CodeError):
    """This citizen was already admitted to this spot today."""

    reason = "already_admitted"


class Closed(CodeError):
    """The spot, hall or service is closed now."""

    reason = "closed"


ERROR_BY_REASON: dict[str, type[CodeError]] = {
    cls.reason: cls for cls in (
        Malformed, BadSignature, UnknownKey, WrongType, Expired, NotYetValid, Replayed, Revoked,
        Suspended, Degraded, NotEntitled, DuplicateTap, Passback, NoEntry, CapacityFull,
        NoReservation, AlreadyAdmitted, Closed)
}
"""reason code → the one exception class that stands for it (``ok`` has none)."""
