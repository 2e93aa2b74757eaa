"""What verification answers: an accept or a deny with a reason, a message and the verified claims.

A deny is a normal answer, not an error. ``claims`` is set only when the code was authentic
(signature checked), so journals can record *whose* code was denied without ever trusting
unverified input.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, Literal, Mapping

from app.codes.errors import CodeError
from app.codes.messages import Message, message_for

Verdict = Literal["accept", "deny"]
_EMPTY: Mapping[str, Any] = MappingProxyType({})
_OK = message_for("ok")


@dataclass(frozen=True, slots=True)
class CodeClaims:
    """The verified contents of a code. ``ent`` is after removal of revoked entitlements."""

    iss: str
    sub: str
    iat: int
    exp: int
    jti: str
    ent: tuple[str, ...]
    kid: str

    def to_dict(self) -> dict[str, Any]:
        return {"iss": self.iss, "sub": self.sub, "iat": self.iat, "exp": self.exp,
                "jti": self.jti, "ent": list(self.ent), "kid": self.kid}


@dataclass(frozen=True, slots=True)
class Decision:
    """One scan's answer. ``data`` holds what a scene adds to an accept (fare, trip, admission)."""

    decision: Verdict
    reason: str
    message: Message
    claims: CodeClaims | None = None
    detail: str = ""
    data: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    @classmethod
    def accept(cls, claims: CodeClaims, data: Mapping[str, Any] | None = None) -> Decision:
        """An accept for verified ``claims``, with optional scene fields."""
        if data is None and cls is Decision:
            return _new_accept(claims)
        return cls("accept", "ok", _OK, claims, "",
                   _EMPTY if data is None else MappingProxyType(dict(data)))

    @classmethod
    def deny(cls, reason: str, claims: CodeClaims | None = None, *, detail: str = "") -> Decision:
        """A deny for ``reason`` (must be in the vocabulary; ``ok`` is not a deny reason)."""
        if reason == "ok":
            raise ValueError("a deny needs a reason other than 'ok'")
        return cls("deny", reason, message_for(reason), claims, detail, _EMPTY)

    @classmethod
    def from_error(cls, error: CodeError, claims: CodeClaims | None = None) -> Decision:
        """The deny an exception stands for; ``claims`` only if the code was authentic."""
        return cls.deny(error.reason, claims, detail=error.detail)

    @property
    def accepted(self) -> bool:
        return self.decision == "accept"

    def with_data(self, **data: Any) -> Decision:
        """The same decision with scene fields added (e.g. ``fare=…``)."""
        return replace(self, data=MappingProxyType({**self.data, **data}))

    def to_dict(self, *, include_claims: bool = False) -> dict[str, Any]:
        """The API body: ``decision``, ``reason``, ``message`` and any scene fields.

        Claims (pseudonym, jti) are left out unless asked for: terminals get them only where the
        contract says so.
        """
        body: dict[str, Any] = {"decision": self.decision, "reason": self.reason,
                                "message": dict(self.message), **self.data}
        if include_claims and self.claims is not None:
            body["claims"] = self.claims.to_dict()
        return body


# -- hot-path constructors -------------------------------------------------------------------
# A frozen dataclass's generated __init__ stores every field through object.__setattr__ (to get
# past the frozen __setattr__). The verifier builds one CodeClaims and one Decision per scan, so
# these two store through the slot descriptors directly: same objects, about half the cost.
# tests/codes/test_codes_decisions.py checks they stay equal to the dataclass constructors.
_new = object.__new__
_CLAIM_SLOTS = tuple(getattr(CodeClaims, f.name).__set__ for f in fields(CodeClaims))
_DECISION_SLOTS = tuple(getattr(Decision, f.name).__set__ for f in fields(Decision))


def new_claims(iss: str, sub: str, iat: int, exp: int, jti: str, ent: tuple[str, ...],
               kid: str) -> CodeClaims:
    """``CodeClaims(iss, sub, iat, exp, jti, ent, kid)``, for the verifier's hot path."""
    claims = _new(CodeClaims)
    s_iss, s_sub, s_iat, s_exp, s_jti, s_ent, s_kid = _CLAIM_SLOTS
    s_iss(claims, iss)
    s_sub(claims, sub)
    s_iat(claims, iat)
    s_exp(claims, exp)
    s_jti(claims, jti)
    s_ent(claims, ent)
    s_kid(claims, kid)
    return claims


def _new_accept(claims: CodeClaims) -> Decision:
    decision = _new(Decision)
    s_decision, s_reason, s_message, s_claims, s_detail, s_data = _DECISION_SLOTS
    s_decision(decision, "accept")
    s_reason(decision, "ok")
    s_message(decision, _OK)
    s_claims(decision, claims)
    s_detail(decision, "")
    s_data(decision, _EMPTY)
    return decision
