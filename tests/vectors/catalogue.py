"""The vector catalogue being built by one generator run: the keys, the fixed clock, the trust
feed, the "already used" pairs and the cases, plus the small vocabulary the case modules use."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from app.codes.mint import MintedCode
from tests.vectors import craft
from tests.vectors.craft import KeyPair

FORMAT = "citycode-vectors/1"
NOW = 4_102_444_800
"""2100-01-01T00:00:00Z. Far in the future on purpose: a replay store that expires its records
in real time (the server's Redis ``EXAT``) still keeps every record these vectors make."""
ISSUER = "cc"
TTL = 60
MAX_TTL = 60
LEEWAY = 5
MAX_CODE_CHARS = 1024
ALGORITHMS = ("ES256", "EdDSA")

# Pseudonyms (11 base64url characters, like real ones), one per trust situation.
RIDER = "vecRider001"
SUSPENDED = "vecSuspend1"
RESTORED = "vecRestore1"
STUDENT = "vecStudent1"
REGRANTED = "vecRegrant1"
STRIPPED = "vecNoEnts01"


@dataclass
class Keys:
    """The published keys (two ES256, one EdDSA), one real but unpublished key, and an attacker's."""

    es: KeyPair = field(default_factory=lambda: KeyPair.generate("ES256"))
    es_next: KeyPair = field(default_factory=lambda: KeyPair.generate("ES256"))
    ed: KeyPair = field(default_factory=lambda: KeyPair.generate("EdDSA"))
    unpublished: KeyPair = field(default_factory=lambda: KeyPair.generate("ES256"))
    attacker_es: KeyPair = field(default_factory=lambda: KeyPair.generate("ES256"))
    attacker_ed: KeyPair = field(default_factory=lambda: KeyPair.generate("EdDSA"))

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.es.jwk(), self.es_next.jwk(), self.ed.jwk()]}


def accept(*ent: str) -> dict[str, Any]:
    """Expected accept; ``ent`` are the entitlement names left after revocations."""
    return {"decision": "accept", "reason": "ok", "ent": sorted(ent)}


def deny(reason: str) -> dict[str, Any]:
    return {"decision": "deny", "reason": reason}


@dataclass
class Catalogue:
    keys: Keys = field(default_factory=Keys)
    cases: list[dict[str, Any]] = field(default_factory=list)
    feed: list[dict[str, Any]] = field(default_factory=list)
    used: list[dict[str, str]] = field(default_factory=list)

    # -- what the case modules call ------------------------------------------------------------
    def add(self, case_id: str, description: str, code: str, expected: dict[str, Any], *,
            signature: bool | None, prior: Iterable[str] = ()) -> None:
        """One case. ``signature``: True/False when a plain JOSE library, given only the JWKS,
        must find the signature valid/invalid; None when that is not a signature question."""
        if any(case["id"] == case_id for case in self.cases):
            raise ValueError(f"duplicate case id {case_id}")
        case: dict[str, Any] = {"id": case_id, "description": description, "code": code}
        if prior:
            case["prior"] = list(prior)
        case["expected"] = expected
        case["signature_level"] = signature is not None
        if signature is not None:
            case["signature_valid"] = signature
        self.cases.append(case)

    def mint(self, key: KeyPair | None = None, *, sub: str = RIDER, ent: tuple[str, ...] = (),
             at: int = NOW - 10, iss: str = ISSUER) -> MintedCode:
        """A genuine code from the production minter, issued at ``at``."""
        return craft.minted(key or self.keys.es, issuer=iss, subject=sub, entitlements=ent,
                            ttl=TTL, now=at)

    def claims(self, **changes: Any) -> dict[str, Any]:
        """Production-shaped claims issued ten seconds before ``NOW`` with a fresh jti; ``changes``
        replace members (``craft.DROP`` removes one); ``ttl`` sets exp relative to iat."""
        ttl = changes.pop("ttl", TTL)
        iat = changes.get("iat")
        iat = iat if type(iat) is int else NOW - 10
        base: dict[str, Any] = {"iss": ISSUER, "sub": RIDER, "iat": iat, "exp": iat + ttl,
                                "jti": craft.new_jti(), "ent": ""}
        base.update(changes)
        return {name: value for name, value in base.items() if value is not craft.DROP}

    def signed(self, head: Any = None, payload: Any = None, key: KeyPair | None = None) -> str:
        """Signed by a published key (default: the first ES256 key) over ``head``/``payload``
        (default: the production header and claims), so only the content can be at fault."""
        key = key or self.keys.es
        return craft.sign(craft.header(key) if head is None else head,
                          self.claims() if payload is None else payload, key.private, key.algorithm)

    def header(self, key: KeyPair | None = None, **changes: Any) -> dict[str, Any]:
        return craft.header(key or self.keys.es, **changes)

    def trust(self, kind: str, ident: str, at: int) -> None:
        """Append a revocation-feed entry (versions count from 1, as a fresh server's do)."""
        self.feed.append({"version": len(self.feed) + 1, "kind": kind, "id": ident, "at": at})

    def mark_used(self, iss: str, jti: str) -> None:
        self.used.append({"iss": iss, "jti": jti})

    # -- output --------------------------------------------------------------------------------
    def documents(self) -> dict[str, Any]:
        """``{file name: JSON document}`` for the vector folder."""
        cases = {"format": FORMAT, "now": NOW, "issuer": ISSUER, "max_ttl": MAX_TTL,
                 "leeway": LEEWAY, "max_code_chars": MAX_CODE_CHARS, "algorithms": list(ALGORITHMS),
                 "jwks": "jwks.json", "trust": "trust.json", "used": self.used, "cases": self.cases}
        trust = {"version": len(self.feed), "entries": self.feed, "full": True, "more": False}
        return {"cases.json": cases, "jwks.json": self.keys.jwks(), "trust.json": trust}
