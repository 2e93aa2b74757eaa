"""Cases decided before anything in the code is believed: malformed input, signatures that do
not verify, keys that are not published, and codes that are not CityCode codes."""
from __future__ import annotations

import json
from typing import Callable

from cryptography.hazmat.primitives import serialization

from tests.vectors import craft
from tests.vectors.catalogue import MAX_CODE_CHARS, NOW, TTL, Catalogue, deny
from tests.vectors.craft import DROP

MALFORMED, BAD, UNKNOWN, WRONG = (deny(r) for r in ("malformed", "bad_signature", "unknown_key", "wrong_type"))


def add_encoding(cat: Catalogue) -> None:
    """Transport damage: not decidable by a JOSE library (many are lenient), so not signature-level."""
    code = cat.mint().code
    head, payload, signature = craft.parts(code)
    for case_id, description, value in [
        ("malformed-empty", "The empty string.", ""),
        ("malformed-two-segments", "Header and payload only.", f"{head}.{payload}"),
        ("malformed-four-segments", "An extra fourth segment.", f"{code}.AAAA"),
        ("malformed-bad-base64-character", 'A "*" inside the payload segment.',
         f"{head}.{payload[:10]}*{payload[11:]}.{signature}"),
        ("malformed-standard-base64-alphabet", 'A "+" (standard alphabet) inside the signature.',
         f"{head}.{payload}.+{signature[1:]}"),
        ("malformed-padding", 'Base64 padding "=" after the payload segment.',
         f"{head}.{payload}{'=' * (-len(payload) % 4 or 4)}.{signature}"),
        ("malformed-padding-everywhere", "Every segment padded to a multiple of four.",
         ".".join(p + "=" * (-len(p) % 4 or 4) for p in (head, payload, signature))),
        ("malformed-noncanonical-trailing-bits", "The signature's last character has unused low "
         "bits set (decodes to the same bytes; only the canonical spelling is accepted).",
         f"{head}.{payload}.{_set_low_bit(signature)}"),
        ("malformed-trailing-newline", "The genuine code followed by a newline.", code + "\n"),
        ("malformed-non-ascii", 'A non-ASCII character ("\u00e9") inside the payload segment.',
         f"{head}.{payload[:10]}\u00e9{payload[10:]}.{signature}"),
        ("malformed-header-not-json", "The header segment decodes to text that is not JSON.",
         f"{craft.b64(b'{alg}')}.{payload}.{signature}"),
    ]:
        cat.add(case_id, description, value, MALFORMED, signature=None)


def add_structure(cat: Catalogue) -> None:
    """Properly signed by a published key but not a well-formed code."""
    ok = True  # the signature itself verifies: a plain JOSE library says "valid"
    cat.add("malformed-too-long", f"Properly signed but {MAX_CODE_CHARS + 1}+ characters long (an extra "
            "claim pads it): the size cap comes before any decoding.",
            cat.signed(payload=cat.claims(pad="x" * MAX_CODE_CHARS)), MALFORMED, signature=ok)
    cat.add("malformed-payload-not-json", "The signed payload is not JSON.",
            cat.signed(payload=b"{sub:1}"), MALFORMED, signature=ok)
    cat.add("malformed-payload-array", "The signed payload is a JSON array.",
            cat.signed(payload=b"[1,2]"), MALFORMED, signature=ok)
    claims = cat.claims(sub=DROP)
    cat.add("malformed-duplicate-claim", 'The signed payload has "sub" twice (JSON parsers differ on which '
            "wins, so duplicates are refused).",
            cat.signed(payload=b'{"sub":"vecRider001","sub":"vecAdmin001",' + craft.encode(claims)[1:]),
            MALFORMED, signature=ok)
    cat.add("malformed-nan", "A NaN literal in the signed payload.",
            cat.signed(payload=craft.encode(cat.claims(n="__X__")).replace(b'"__X__"', b"NaN")),
            MALFORMED, signature=ok)
    for claim in ("iss", "sub", "iat", "exp", "jti", "ent"):
        cat.add(f"malformed-missing-{claim}", f"Claim {claim} is missing.",
                cat.signed(payload=cat.claims(**{claim: DROP})), MALFORMED, signature=ok)
    for case_id, description, changes in [
        ("malformed-exp-string", "exp is a string of digits.", {"exp": str(NOW + 50)}),
        ("malformed-iat-float", "iat is a float.", {"iat": float(NOW - 10)}),
        ("malformed-nbf-float", "nbf is a float.", {"nbf": float(NOW - 10)}),
        ("malformed-sub-number", "sub is a number.", {"sub": 42}),
        ("malformed-sub-too-long", "sub has 65 characters (64 at most).", {"sub": "s" * 65}),
        ("malformed-jti-too-short", "jti has 11 characters (12 at least).", {"jti": "A" * 11}),
        ("malformed-jti-not-base64url", "jti holds a slash.", {"jti": "abcdef/ghijkl"}),
        ("malformed-ent-list", "ent is a list of names (an old format), not one string of letters.",
         {"ent": ["stu", "sen"]}),
        ("malformed-ent-unknown-letter", 'ent holds the unknown letter "x".', {"ent": "ex"}),
        ("malformed-ent-duplicate-letter", 'ent holds "s" twice.', {"ent": "ss"}),
        ("malformed-exp-before-iat", "exp is before iat.", {"iat": NOW - 10, "exp": NOW - 20}),
        ("malformed-lifetime-beyond-max-ttl", "exp - iat is one second more than max_ttl.",
         {"ttl": TTL + 1}),
    ]:
        cat.add(case_id, description, cat.signed(payload=cat.claims(**changes)), MALFORMED, signature=ok)


def add_header(cat: Catalogue) -> None:
    """Signed by a published key, but the header is unusable. JOSE libraries differ on these
    (crit handling, duplicate members, a missing kid), so they are not signature-level."""
    head = json.dumps(cat.header(), separators=(",", ":"))
    for case_id, description, value in [
        ("malformed-crit-header", 'A "crit" header: no extension is understood.', cat.header(crit=["exp"])),
        ("malformed-duplicate-header-member", 'The header has "kid" twice.',
         (head[:-1] + ',"kid":"../x"}').encode()),
        ("malformed-alg-missing", "The header has no alg.", cat.header(alg=DROP)),
        ("malformed-kid-missing", "The header has no kid.", cat.header(kid=DROP)),
        ("malformed-kid-number", "The header kid is a number.", cat.header(kid=1)),
    ]:
        cat.add(case_id, description, cat.signed(value), MALFORMED, signature=None)


def add_signatures(cat: Catalogue) -> None:
    keys = cat.keys
    pem = keys.es.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo)

    def fresh() -> str:
        """A new genuine code for each case, so no two cases share a jti."""
        return cat.mint(ent=("stu",)).code

    forged = [
        ("bad-signature-tampered-sub", "Another pseudonym put into a genuine code's payload.",
         _tampered(fresh(), sub="vecAdmin001")),
        ("bad-signature-tampered-ent", "More entitlements put into a genuine code's payload.",
         _tampered(fresh(), ent="degps")),
        ("bad-signature-tampered-exp", "A later exp put into a genuine code's payload.",
         _tampered(fresh(), exp=NOW + 80)),
        ("bad-signature-tampered-jti", "A new jti put into a genuine code's payload (to dodge replay).",
         _tampered(fresh(), jti=craft.new_jti())),
        ("bad-signature-bit-flip", "One bit of the signature flipped.",
         _signature(fresh(), lambda s: s[:40] + bytes([s[40] ^ 1]) + s[41:])),
        ("bad-signature-63-bytes", "The signature cut to 63 bytes.", _signature(fresh(), lambda s: s[:63])),
        ("bad-signature-empty", "An empty signature segment.", _signature(fresh(), lambda s: b"")),
        ("bad-signature-r-s-swapped", "The signature halves r and s swapped.",
         _signature(fresh(), lambda s: s[32:] + s[:32])),
        ("bad-signature-alg-none", 'alg "none", empty signature, forged entitlements.',
         craft.unsigned(cat.header(alg="none"), cat.claims(ent="degps"))),
        ("bad-signature-alg-none-mixed-case", 'alg "nOnE" over a genuine signature.',
         _with_header(cat.mint().code, cat.header(alg="nOnE"))),
        ("bad-signature-hs256-public-jwk", "HS256 keyed with the published JWK (JSON) of the ES256 key.",
         craft.hmac_sign(cat.header(alg="HS256"), cat.claims(ent="degps"), json.dumps(keys.es.jwk()).encode())),
        ("bad-signature-hs256-public-pem", "HS256 keyed with the ES256 public key as PEM.",
         craft.hmac_sign(cat.header(alg="HS256"), cat.claims(ent="degps"), pem)),
        ("bad-signature-alg-es384", 'alg "ES384" over a genuine ES256 signature.',
         _with_header(cat.mint().code, cat.header(alg="ES384"))),
        ("bad-signature-eddsa-alg-on-es256-key", "alg EdDSA naming the ES256 key's kid, signed by an "
         "attacker's Ed25519 key (the algorithm must be the key's, never the token's).",
         craft.sign(cat.header(alg="EdDSA"), cat.claims(), keys.attacker_ed.private)),
        ("bad-signature-es256-alg-on-eddsa-key", "alg ES256 naming the EdDSA key's kid, signed by the "
         "real ES256 key.", craft.sign(cat.header(keys.ed, alg="ES256"), cat.claims(), keys.es.private)),
        ("bad-signature-attacker-key-real-kid", "An attacker's ES256 signature under the real kid.",
         craft.sign(cat.header(), cat.claims(), keys.attacker_es.private)),
        ("bad-signature-attacker-eddsa-real-kid", "An attacker's Ed25519 signature under the real EdDSA kid.",
         craft.sign(cat.header(keys.ed), cat.claims(), keys.attacker_ed.private)),
        ("bad-signature-embedded-jwk", "An attacker's key embedded as a jwk header, signed by it, real kid.",
         craft.sign(cat.header(jwk=keys.attacker_es.jwk()), cat.claims(), keys.attacker_es.private)),
    ]
    for case_id, description, value in forged:
        cat.add(case_id, description, value, BAD, signature=False)


def add_keys_and_types(cat: Catalogue) -> None:
    keys = cat.keys
    cat.add("unknown-key-unpublished", "Signed by a real key whose kid is not in the JWKS (e.g. retired "
            "and removed).", cat.signed(key=keys.unpublished), UNKNOWN, signature=False)
    cat.add("unknown-key-attacker-with-jku", "An attacker's key and kid, with a jku pointing at the "
            "attacker's key set (never fetched).",
            craft.sign(cat.header(kid="attacker", jku="http://127.0.0.1:9/jwks.json"), cat.claims(),
                       keys.attacker_es.private), UNKNOWN, signature=False)
    cat.add("unknown-key-path-kid", "A kid that looks like a file path: only ever a dictionary key.",
            cat.signed(cat.header(kid="../../etc/passwd")), UNKNOWN, signature=False)
    for case_id, description, head, claims in [
        ("wrong-type-typ-jwt", 'typ "JWT": some other JWS, properly signed.', cat.header(typ="JWT"), None),
        ("wrong-type-typ-missing", "No typ header.", cat.header(typ=DROP), None),
        ("wrong-type-typ-uppercase", 'typ "CC" (typ is compared exactly).', cat.header(typ="CC"), None),
        ("wrong-type-iss-other", 'An authentic code for another issuer ("qd").', None, cat.claims(iss="qd")),
        ("wrong-type-iss-uppercase", 'iss "CC" (compared exactly).', None, cat.claims(iss="CC")),
    ]:
        cat.add(case_id, description, cat.signed(head, claims), WRONG, signature=True)


def _set_low_bit(segment: str) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return segment[:-1] + alphabet[alphabet.index(segment[-1]) | 1]


def _tampered(code: str, **changes: object) -> str:
    claims = json.loads(craft.decode_segment(craft.parts(code)[1]))
    return craft.replace_payload(code, {**claims, **changes})


def _signature(code: str, change: Callable[[bytes], bytes]) -> str:
    return craft.with_signature(code, change(craft.decode_segment(craft.parts(code)[2])))


def _with_header(code: str, head: dict[str, object]) -> str:
    _, payload, signature = craft.parts(code)
    return f"{craft.b64(craft.encode(head))}.{payload}.{signature}"


def add_all(cat: Catalogue) -> None:
    add_encoding(cat)
    add_structure(cat)
    add_header(cat)
    add_signatures(cat)
    add_keys_and_types(cat)
