"""Cases about authentic codes: accepted ones, and the denies decided after the signature —
time, trust (suspension, revocation, revoked entitlements), replay, and which reason wins when
several apply."""
from __future__ import annotations

import json

from tests.vectors import craft
from tests.vectors.catalogue import (ISSUER, LEEWAY, NOW, REGRANTED, RESTORED, STRIPPED, STUDENT,
                                     SUSPENDED, TTL, Catalogue, accept, deny)


def add_accepts(cat: Catalogue) -> None:
    keys = cat.keys
    cat.add("accept-es256-no-entitlements", "A fresh ES256 code from the production minter, no entitlements.",
            cat.mint().code, accept(), signature=True)
    cat.add("accept-es256-entitlements", "A fresh ES256 code carrying sen, dis, sap and hg "
            '(on the wire "ent":"degp"); ent comes back as names, sorted.',
            cat.mint(ent=("sen", "dis", "sap", "hg")).code, accept("dis", "hg", "sap", "sen"), signature=True)
    cat.add("accept-eddsa-entitlements", "A fresh EdDSA (Ed25519) code carrying stu and hr.",
            cat.mint(keys.ed, ent=("stu", "hr")).code, accept("hr", "stu"), signature=True)
    cat.add("accept-es256-second-key", "Signed by the second ES256 key of the set (a published next key).",
            cat.mint(keys.es_next, ent=("sen",)).code, accept("sen"), signature=True)
    low, _ = craft.s_forms(cat.mint().code)
    cat.add("accept-es256-low-s", "The low-S form (s <= n/2) of an ES256 signature.", low, accept(),
            signature=True)
    _, high = craft.s_forms(cat.mint().code)
    cat.add("accept-es256-high-s", "The high-S form (n - s) of an ES256 signature: ECDSA accepts it "
            "(JWS does not require low-S), so a reader must too.", high, accept(), signature=True)
    cat.add("accept-exp-within-leeway", f"exp is {LEEWAY} s before now: still inside the leeway.",
            cat.signed(payload=cat.claims(iat=NOW - TTL - LEEWAY)), accept(), signature=True)
    cat.add("accept-iat-within-leeway", f"iat is {LEEWAY} s after now (phone clock ahead): inside the leeway.",
            cat.signed(payload=cat.claims(iat=NOW + LEEWAY)), accept(), signature=True)
    cat.add("accept-nbf-past", "An optional nbf claim in the past.",
            cat.signed(payload=cat.claims(nbf=NOW - 10)), accept(), signature=True)
    cat.add("accept-nbf-within-leeway", f"nbf {LEEWAY} s after now: inside the leeway.",
            cat.signed(payload=cat.claims(nbf=NOW + LEEWAY)), accept(), signature=True)
    cat.add("accept-ent-letters-unsorted", 'ent "pe" (letters out of order) is sap + sen.',
            cat.signed(payload=cat.claims(ent="pe")), accept("sap", "sen"), signature=True)
    cat.add("accept-unknown-claim-ignored", "An extra claim the reader does not know is ignored.",
            cat.signed(payload=cat.claims(x=1)), accept(), signature=True)
    cat.add("accept-key-headers-ignored", "jku, x5u and jwk headers point at an attacker; they are "
            "never fetched or used, the published key signed it.",
            cat.signed(cat.header(jku="http://127.0.0.1:9/jwks.json", x5u="http://127.0.0.1:9/x5u",
                                  jwk=keys.attacker_es.jwk())), accept(), signature=True)


def add_time(cat: Catalogue) -> None:
    cat.add("expired-long-ago", "Minted 200 s before now with a 60 s lifetime.",
            cat.mint(at=NOW - 200).code, deny("expired"), signature=True)
    cat.add("expired-just-beyond-leeway", f"exp is {LEEWAY + 1} s before now: one second past the leeway.",
            cat.signed(payload=cat.claims(iat=NOW - TTL - LEEWAY - 1)), deny("expired"), signature=True)
    cat.add("not-yet-valid-iat-future", f"iat is {LEEWAY + 1} s after now: one second past the leeway.",
            cat.signed(payload=cat.claims(iat=NOW + LEEWAY + 1)), deny("not_yet_valid"), signature=True)
    cat.add("not-yet-valid-minted-in-future", "Minted two minutes after now (phone clock far ahead).",
            cat.mint(at=NOW + 120).code, deny("not_yet_valid"), signature=True)
    cat.add("not-yet-valid-nbf-future", "nbf 30 s after now, iat and exp current.",
            cat.signed(payload=cat.claims(nbf=NOW + 30)), deny("not_yet_valid"), signature=True)


def add_trust(cat: Catalogue) -> None:
    cat.trust("citizen_suspended", SUSPENDED, NOW - 300)
    cat.trust("citizen_suspended", RESTORED, NOW - 300)
    cat.trust("citizen_restored", RESTORED, NOW - 200)
    cat.trust("entitlement_revoked", f"{REGRANTED}/stu", NOW - 100)
    cat.trust("entitlement_revoked", f"{STUDENT}/stu", NOW - 5)
    cat.trust("entitlement_revoked", f"{STRIPPED}/sen", NOW - 5)
    cat.trust("entitlement_revoked", f"{STRIPPED}/dis", NOW - 5)
    cat.add("suspended-citizen", f"The feed suspends {SUSPENDED}; its valid code is denied.",
            cat.mint(sub=SUSPENDED, ent=("sen",)).code, deny("suspended"), signature=True)
    cat.add("accept-restored-citizen", f"The feed suspends {RESTORED}, then restores it: entries apply in order.",
            cat.mint(sub=RESTORED).code, accept(), signature=True)
    revoked = cat.mint()
    cat.trust("code_revoked", f"{ISSUER}/{revoked.jti}", NOW - 60)
    cat.add("revoked-code", "The feed revokes this code's (iss, jti).", revoked.code, deny("revoked"),
            signature=True)
    other = cat.mint()
    cat.trust("code_revoked", f"qd/{other.jti}", NOW - 60)
    cat.add("accept-revocation-of-same-jti-other-issuer", 'The feed revokes ("qd", jti) of this "cc" '
            "code: revocation is keyed on (iss, jti).", other.code, accept(), signature=True)
    cat.add("accept-entitlement-stripped", f"The feed revokes stu of {STUDENT} after this code was issued: "
            "accept, ent without stu.", cat.mint(sub=STUDENT, ent=("stu", "sap")).code, accept("sap"),
            signature=True)
    cat.add("accept-all-entitlements-stripped", f"The feed revokes sen and dis of {STRIPPED}: accept with no "
            "entitlements (the code itself stays valid).", cat.mint(sub=STRIPPED, ent=("sen", "dis")).code,
            accept(), signature=True)
    cat.add("accept-entitlement-revoked-before-issue", f"stu of {REGRANTED} was revoked 90 s before this code "
            "was issued (granted again since): the revocation does not strip it.",
            cat.mint(sub=REGRANTED, ent=("stu",)).code, accept("stu"), signature=True)


def add_replay(cat: Catalogue) -> None:
    listed = cat.mint()
    cat.mark_used(ISSUER, listed.jti)
    cat.add("replayed-listed-as-used", "This code's (iss, jti) is in the vectors' used list.",
            listed.code, deny("replayed"), signature=True)
    other = cat.mint()
    cat.mark_used("qd", other.jti)
    cat.add("accept-used-pair-other-issuer", 'The used list holds ("qd", jti) for this "cc" code: replay '
            "is keyed on (iss, jti).", other.code, accept(), signature=True)
    again = cat.mint(cat.keys.es, ent=("sen",)).code
    cat.add("replayed-second-scan", "The same code scanned a second time.", again, deny("replayed"),
            signature=True, prior=[again])
    again_ed = cat.mint(cat.keys.ed).code
    cat.add("replayed-second-scan-eddsa", "The same EdDSA code scanned a second time.", again_ed,
            deny("replayed"), signature=True, prior=[again_ed])
    low, high = craft.s_forms(cat.mint().code)
    cat.add("replayed-high-s-after-low-s", "The high-S twin of a code already used in its low-S form: "
            "a different string, the same signed claims, so the same code.", high, deny("replayed"),
            signature=True, prior=[low])
    low, high = craft.s_forms(cat.mint().code)
    cat.add("replayed-low-s-after-high-s", "The low-S twin of a code already used in its high-S form.",
            low, deny("replayed"), signature=True, prior=[high])


def add_precedence(cat: Catalogue) -> None:
    """When several reasons apply, one wins: time before trust, suspension before revocation,
    revocation before replay (a denied code is never recorded as used)."""
    cat.add("precedence-expired-over-suspended", "Expired and its citizen suspended: expired.",
            cat.mint(sub=SUSPENDED, at=NOW - 200).code, deny("expired"), signature=True)
    both = cat.mint(sub=SUSPENDED)
    cat.trust("code_revoked", f"{ISSUER}/{both.jti}", NOW - 60)
    cat.add("precedence-suspended-over-revoked", "Citizen suspended and code revoked: suspended.",
            both.code, deny("suspended"), signature=True)
    revoked_used = cat.mint()
    cat.trust("code_revoked", f"{ISSUER}/{revoked_used.jti}", NOW - 60)
    cat.mark_used(ISSUER, revoked_used.jti)
    cat.add("precedence-revoked-over-replayed", "Code revoked and already used: revoked.",
            revoked_used.code, deny("revoked"), signature=True)
    expired = cat.mint(at=NOW - 200).code
    tampered = craft.replace_payload(expired, {**_payload(expired), "sub": "vecSomeone1"})
    cat.add("precedence-bad-signature-over-expired", "An expired code with its payload tampered: "
            "nothing in an unauthenticated payload is believed, so bad_signature.", tampered,
            deny("bad_signature"), signature=False)
    cat.add("precedence-typ-before-signature", 'typ "JWT" under a forged signature: the header is '
            "checked first, so wrong_type (not bad_signature).",
            craft.sign(cat.header(typ="JWT"), cat.claims(), cat.keys.attacker_es.private),
            deny("wrong_type"), signature=None)


def _payload(code: str) -> dict[str, object]:
    return json.loads(craft.decode_segment(craft.parts(code)[1]))


def add_all(cat: Catalogue) -> None:
    add_accepts(cat)
    add_time(cat)
    add_trust(cat)
    add_replay(cat)
    add_precedence(cat)
