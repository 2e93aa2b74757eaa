"""Reading and checking a vector folder (``cases.json`` + ``jwks.json`` + ``trust.json``).

``load`` returns a ``VectorSet`` only when every rule of README.md's format holds; ``problems``
lists the broken rules, so a test can show all of them at once.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.codes.jwks import PRIVATE_MEMBERS, JWKSError, keys_from_jwks
from app.codes.trust import FEED_KINDS

FORMAT = "citycode-vectors/1"
FILES = ("cases.json", "jwks.json", "trust.json")
CORE_REASONS = frozenset({"ok", "malformed", "bad_signature", "unknown_key", "wrong_type", "expired",
                          "not_yet_valid", "revoked", "suspended", "replayed"})
"""Every answer the core can give from vectors (``degraded`` needs a broken store, not a code)."""
SIGNATURE_REASONS = frozenset({"bad_signature", "unknown_key"})
_TOP = {"format", "now", "issuer", "max_ttl", "leeway", "max_code_chars", "algorithms", "jwks",
        "trust", "used", "cases"}
_CASE = {"id", "description", "code", "prior", "expected", "signature_level", "signature_valid"}
_ID = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


class VectorFormatError(ValueError):
    """The folder does not follow the vector format."""


@dataclass(frozen=True)
class VectorSet:
    now: int
    issuer: str
    max_ttl: int
    leeway: int
    max_code_chars: int
    algorithms: tuple[str, ...]
    jwks: dict[str, Any]
    trust: dict[str, Any]
    used: list[dict[str, str]]
    cases: list[dict[str, Any]]

    def case(self, case_id: str) -> dict[str, Any]:
        return next(case for case in self.cases if case["id"] == case_id)


def read(folder: Path) -> dict[str, Any]:
    """The three documents, by file name."""
    return {name: json.loads((folder / name).read_text(encoding="utf-8")) for name in FILES}


def load(folder: Path) -> VectorSet:
    docs = read(folder)
    found = problems(docs)
    if found:
        raise VectorFormatError(f"{folder}: " + "; ".join(found))
    top = docs["cases.json"]
    return VectorSet(top["now"], top["issuer"], top["max_ttl"], top["leeway"], top["max_code_chars"],
                     tuple(top["algorithms"]), docs["jwks.json"], docs["trust.json"], top["used"],
                     top["cases"])


def problems(docs: dict[str, Any]) -> list[str]:
    """Every broken rule of the format, as short sentences (empty: the folder is valid)."""
    top, found = docs["cases.json"], []
    if not isinstance(top, dict) or set(top) != _TOP:
        return [f"cases.json must hold exactly the members {sorted(_TOP)}"]
    if top["format"] != FORMAT:
        found.append(f"format must be {FORMAT!r}")
    for name in ("now", "max_ttl", "leeway", "max_code_chars"):
        if type(top[name]) is not int or top[name] < 0:
            found.append(f"{name} must be a non-negative integer")
    if top["issuer"] != "cc" or top["algorithms"] != ["ES256", "EdDSA"]:
        found.append('issuer must be "cc" and algorithms ["ES256", "EdDSA"]')
    if (top["jwks"], top["trust"]) != ("jwks.json", "trust.json"):
        found.append('jwks and trust must name "jwks.json" and "trust.json"')
    found += _jwks_problems(docs["jwks.json"]) + _trust_problems(docs["trust.json"])
    used = top["used"]
    if not isinstance(used, list) or any(not isinstance(u, dict) or set(u) != {"iss", "jti"}
                                         or not all(isinstance(v, str) for v in u.values()) for u in used):
        found.append("used must be a list of {iss, jti} string pairs")
    cases = top["cases"]
    if not isinstance(cases, list) or not cases:
        return found + ["cases must be a non-empty list"]
    for index, case in enumerate(cases):
        found += [f"case {case.get('id', index) if isinstance(case, dict) else index}: {p}"
                  for p in _case_problems(case)]
    if found:
        return found
    ids = [case["id"] for case in cases]
    if len(set(ids)) != len(ids):
        found.append("case ids must be unique")
    missing = CORE_REASONS - {case["expected"]["reason"] for case in cases}
    if missing:
        found.append(f"no case covers the reasons {sorted(missing)}")
    return found + _independence_problems(cases)


def _jwks_problems(doc: Any) -> list[str]:
    try:
        keys = keys_from_jwks(doc)
    except JWKSError as exc:
        return [f"jwks.json: {exc}"]
    if any(PRIVATE_MEMBERS & jwk.keys() for jwk in doc["keys"]):
        return ["jwks.json must hold public keys only"]
    if sorted(alg for alg, _ in keys.values()) != ["ES256", "ES256", "EdDSA"]:
        return ["jwks.json must publish two ES256 keys and one EdDSA key"]
    return []


def _trust_problems(doc: Any) -> list[str]:
    if not isinstance(doc, dict) or set(doc) != {"version", "entries", "full", "more"}:
        return ["trust.json must be a full /v1/trust/revocations answer {version, entries, full, more}"]
    entries = doc["entries"]
    if doc["full"] is not True or doc["more"] is not False or not isinstance(entries, list):
        return ["trust.json must be one full page (full: true, more: false)"]
    for number, entry in enumerate(entries, start=1):
        if (not isinstance(entry, dict) or set(entry) != {"version", "kind", "id", "at"}
                or entry["version"] != number or entry["kind"] not in FEED_KINDS
                or not isinstance(entry["id"], str) or type(entry["at"]) is not int):
            return [f"trust.json entry {number} must be {{version: {number}, kind, id, at: int}}"]
    if doc["version"] != len(entries):
        return ["trust.json version must be the last entry's version"]
    return []


def _case_problems(case: Any) -> list[str]:
    if not isinstance(case, dict) or not {"id", "description", "code", "expected", "signature_level"} <= set(case) \
            or set(case) - _CASE:
        return [f"a case holds {sorted(_CASE)} (prior and signature_valid optional), nothing else"]
    found = []
    if not isinstance(case["id"], str) or not _ID.fullmatch(case["id"]):
        found.append("id must be kebab-case")
    if not isinstance(case["description"], str) or not case["description"]:
        found.append("description must be a non-empty string")
    if not isinstance(case["code"], str):
        found.append("code must be a string")
    if "prior" in case and (not isinstance(case["prior"], list) or not case["prior"]
                            or not all(isinstance(c, str) for c in case["prior"])):
        found.append("prior, when present, is a non-empty list of codes")
    expected = case["expected"]
    accepted = {"decision": "accept", "reason": "ok"}
    if not isinstance(expected, dict) or expected.get("reason") not in CORE_REASONS:
        return found + [f"expected.reason must be one of {sorted(CORE_REASONS)}"]
    if expected.get("decision") == "accept":
        ent = expected.get("ent")
        if set(expected) != {"decision", "reason", "ent"} or expected["reason"] != "ok" \
                or not isinstance(ent, list) or ent != sorted(set(ent)):
            found.append(f"an accept is {accepted} plus ent: the sorted entitlement names")
    elif expected != {"decision": "deny", "reason": expected["reason"]} or expected["reason"] == "ok":
        found.append("a deny is exactly {decision: deny, reason} with a reason other than ok")
    level = case["signature_level"]
    if type(level) is not bool or ("signature_valid" in case) != level:
        found.append("signature_level is a bool; signature_valid is present exactly when it is true")
    elif level and case["signature_valid"] is not (expected["reason"] not in SIGNATURE_REASONS):
        found.append("signature_valid must be false exactly when the reason is bad_signature or unknown_key")
    return found


def signed_pair(code: str) -> tuple[str, str] | None:
    """``(iss, jti)`` from a code's payload, read leniently without checking anything (None when
    there is no such pair to read)."""
    segments = code.split(".")
    if len(segments) < 2:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(segments[1] + "=" * (-len(segments[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    if isinstance(payload, dict) and isinstance(payload.get("iss"), str) and isinstance(payload.get("jti"), str):
        return payload["iss"], payload["jti"]
    return None


def _independence_problems(cases: list[dict[str, Any]]) -> list[str]:
    """Cases must not interfere when one reader decides them all, in any order: a code a case may
    record as used (its prior codes, its code when accepted) shares its (iss, jti) with no other case."""
    seen: dict[tuple[str, str], set[str]] = {}
    for case in cases:
        for code in [case["code"], *case.get("prior", [])]:
            pair = signed_pair(code)
            if pair is not None:
                seen.setdefault(pair, set()).add(case["id"])
    found = []
    for case in cases:
        recorded = list(case.get("prior", []))
        if case["expected"]["decision"] == "accept":
            recorded.append(case["code"])
        for code in recorded:
            pair = signed_pair(code)
            if pair is not None and seen[pair] != {case["id"]}:
                found.append(f"{case['id']} shares (iss, jti) {pair} with {sorted(seen[pair] - {case['id']})}")
    return found
