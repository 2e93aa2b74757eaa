"""The negative corpus: every attack is denied with the right reason, carries no claims, records
no use, and leaves the genuine code usable afterwards (and the attack stays denied after that)."""
from __future__ import annotations

import base64
import builtins
import hashlib
import hmac
import io
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from app.codes.mint import MintedCode
from app.codes.verify import Verifier
from app.codes.wire import b64url_encode
from app.signing.keyring import KeyRing

from codes_support import DROP, MAX_TTL, Forge, FrozenClock

SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def b64(raw: bytes) -> str:
    return b64url_encode(raw).decode()


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


@dataclass
class Ctx:
    genuine: MintedCode
    ring: KeyRing
    ed_ring: KeyRing
    forge: Forge
    now: float
    attacker: ec.EllipticCurvePrivateKey
    attacker_ed: ed25519.Ed25519PrivateKey

    @property
    def parts(self) -> list[str]:
        return self.genuine.code.split(".")

    @property
    def claims(self) -> dict[str, Any]:
        return json.loads(unb64(self.parts[1]))

    @property
    def signature(self) -> bytes:
        return unb64(self.parts[2])

    def with_parts(self, header: str | None = None, payload: str | None = None,
                   signature: str | None = None) -> str:
        h, p, s = self.parts
        return ".".join((h if header is None else header, p if payload is None else payload,
                         s if signature is None else signature))

    def signed_by(self, key: Any, **header_changes: Any) -> str:
        """Genuine-looking claims under a changed header, signed with ``key``."""
        return self.forge.sign(self.forge.header(**header_changes), self.forge.claims(self.now), key=key)

    def signed(self, header: Any = None, payload: Any = None, **kwargs: Any) -> str:
        """Properly signed by the real current key (so only the content can be at fault)."""
        return self.forge.sign(self.forge.header() if header is None else header,
                               self.forge.claims(self.now) if payload is None else payload, **kwargs)


CORPUS: dict[str, tuple[str, Callable[[Ctx], object]]] = {}


def attack(name: str, reason: str, build: Callable[[Ctx], object]) -> None:
    assert name not in CORPUS, name
    CORPUS[name] = (reason, build)


# -- tampering: content changed, genuine signature kept --------------------------------------
def _tampered(**changes: Any) -> Callable[[Ctx], str]:
    def build(ctx: Ctx) -> str:
        claims = {**ctx.claims, **changes}
        return ctx.with_parts(payload=b64(json.dumps(claims, separators=(",", ":")).encode()))
    return build


for _claim, _value in [("sub", "p_somebody_else"), ("ent", "deps"), ("ent", "epsg"), ("ent", ""),
                       ("ent", ["stu", "sen", "sap", "dis"]), ("exp", 1_900_000_000), ("iat", 1_799_999_990),
                       ("jti", "AAAAAAAAAAAA"), ("iss", "qd")]:
    attack(f"tampered {_claim}={_value!r}", "bad_signature", _tampered(**{_claim: _value}))

attack("header kid switched to the published next key", "bad_signature",
       lambda c: c.with_parts(header=b64(Forge.encode(c.forge.header(
           kid=next(k for k in c.ring.verification_keys if k != c.ring.current_kid))))))
attack("payload of another genuine code", "bad_signature",
       lambda c: c.with_parts(payload=c.forge.sign(c.forge.header(), c.forge.claims(c.now)).split(".")[1]))

# -- signature damage ------------------------------------------------------------------------
def _flipped(index: int, bit: int) -> Callable[[Ctx], str]:
    def build(ctx: Ctx) -> str:
        raw = bytearray(ctx.signature)
        raw[index] ^= 1 << bit
        return ctx.with_parts(signature=b64(bytes(raw)))
    return build


for _index in (0, 1, 16, 31, 32, 33, 48, 63):
    for _bit in (0, 7):
        attack(f"signature byte {_index} bit {_bit} flipped", "bad_signature", _flipped(_index, _bit))

attack("signature 63 bytes", "bad_signature", lambda c: c.with_parts(signature=b64(c.signature[:63])))
attack("signature 65 bytes", "bad_signature", lambda c: c.with_parts(signature=b64(c.signature + b"\0")))
attack("signature empty", "bad_signature", lambda c: c.with_parts(signature=""))
attack("signature DER instead of raw", "bad_signature", lambda c: c.with_parts(signature=b64(
    encode_dss_signature(int.from_bytes(c.signature[:32], "big"), int.from_bytes(c.signature[32:], "big")))))
attack("signature r = s = 0", "bad_signature", lambda c: c.with_parts(signature=b64(bytes(64))))
attack("signature r = n", "bad_signature", lambda c: c.with_parts(
    signature=b64(P256_ORDER.to_bytes(32, "big") + c.signature[32:])))
attack("signature s = n", "bad_signature", lambda c: c.with_parts(
    signature=b64(c.signature[:32] + P256_ORDER.to_bytes(32, "big"))))
attack("signature r and s swapped", "bad_signature",
       lambda c: c.with_parts(signature=b64(c.signature[32:] + c.signature[:32])))

# -- algorithm confusion ---------------------------------------------------------------------
for _alg in ("none", "None", "NONE", "nOnE"):
    attack(f"alg {_alg} with empty signature", "bad_signature",
           lambda c, a=_alg: c.forge.unsigned(c.forge.header(alg=a), c.forge.claims(c.now)))
    attack(f"alg {_alg} with the genuine signature", "bad_signature",
           lambda c, a=_alg: c.with_parts(header=b64(Forge.encode(c.forge.header(alg=a)))))
    attack(f"alg {_alg} with junk signature and forged claims", "bad_signature",
           lambda c, a=_alg: c.forge.unsigned(c.forge.header(alg=a),
                                              c.forge.claims(c.now, sub="p_admin", ent="sedpg"), b"x"))


def _public_secrets(ctx: Ctx) -> dict[str, bytes]:
    public = ctx.ring.current.public_key
    jwk = ctx.ring.current.jwk()
    point = public.public_bytes(serialization.Encoding.X962,
                                serialization.PublicFormat.UncompressedPoint)
    return {
        "PEM": public.public_bytes(serialization.Encoding.PEM, SPKI),
        "DER": public.public_bytes(serialization.Encoding.DER, SPKI),
        "JWK JSON": json.dumps(jwk).encode(),
        "JWK JSON compact sorted": json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode(),
        "raw x||y": point[1:],
        "uncompressed 04||x||y": point,
        "JWKS document": json.dumps(ctx.ring.jwks()).encode(),
    }


def _hs256(encoding: str, alg: str = "HS256", kid: bool = True) -> Callable[[Ctx], str]:
    def build(ctx: Ctx) -> str:
        header = ctx.forge.header(alg=alg) if kid else ctx.forge.header(alg=alg, kid=DROP)
        payload = ctx.forge.claims(ctx.now, ent="sedp")
        signing_input = f"{b64(Forge.encode(header))}.{b64(Forge.encode(payload))}"
        secret = _public_secrets(ctx)[encoding]
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
        mac = hmac.new(secret, signing_input.encode(), digest).digest()
        return f"{signing_input}.{b64(mac)}"
    return build


for _encoding in ("PEM", "DER", "JWK JSON", "JWK JSON compact sorted", "raw x||y",
                  "uncompressed 04||x||y", "JWKS document"):
    attack(f"HS256 keyed with the public key as {_encoding}", "bad_signature", _hs256(_encoding))
attack("HS256 with public PEM and no kid", "bad_signature", _hs256("PEM", kid=False))
attack("HS512 keyed with the public PEM", "bad_signature", _hs256("PEM", alg="HS512"))

for _alg in ("ES384", "ES512", "ES256K", "RS256", "PS256", "es256", "ES256 ", "EDDSA", "Ed25519", ""):
    attack(f"alg {_alg!r} with the genuine signature", "bad_signature",
           lambda c, a=_alg: c.with_parts(header=b64(Forge.encode(c.forge.header(alg=a)))))

for _label, _value in [("missing", DROP), ("null", None), ("number", 256), ("list", ["ES256"]),
                       ("object", {"alg": "ES256"})]:
    attack(f"alg {_label}", "malformed", lambda c, v=_value: c.signed(c.forge.header(alg=v)))

attack("EdDSA header naming the ES256 key, signed by the EdDSA ring's real key", "bad_signature",
       lambda c: c.signed_by(c.ed_ring.signing_key, alg="EdDSA"))
attack("EdDSA header naming the ES256 key, signed by an attacker", "bad_signature",
       lambda c: c.signed_by(c.attacker_ed, alg="EdDSA"))
attack("ES256 header naming the EdDSA key, signed by the ES256 ring's real key", "bad_signature",
       lambda c: c.signed(c.forge.header(kid=c.ed_ring.current_kid)))
attack("ES256 header naming the EdDSA key, signed by an attacker", "bad_signature",
       lambda c: c.signed_by(c.attacker, kid=c.ed_ring.current_kid))
attack("attacker ES256 signature under the real kid", "bad_signature",
       lambda c: c.signed_by(c.attacker))

# -- kid: only ever a dictionary key ---------------------------------------------------------
for _kid in ("../../etc/passwd", "/dev/zero", "keys/x.pem", "", "AAAAAAAA", "\u0000", "k" * 300,
             "file:///etc/passwd", "http://127.0.0.1:9/key"):
    attack(f"kid {_kid[:24]!r}", "unknown_key", lambda c, k=_kid: c.signed(c.forge.header(kid=k)))
attack("kid of the real key with a path suffix", "unknown_key",
       lambda c: c.signed(c.forge.header(kid=c.ring.current_kid + "/../" + c.ring.current_kid)))
for _label, _value in [("missing", DROP), ("null", None), ("number", 1), ("list", ["x"]), ("object", {})]:
    attack(f"kid {_label}", "malformed", lambda c, v=_value: c.signed(c.forge.header(kid=v)))

# -- key-carrying headers: never fetched, never used -----------------------------------------
_ATTACKER_URL = "http://127.0.0.1:9/.well-known/jwks.json"


def _attacker_jwk(ctx: Ctx) -> dict[str, str]:
    numbers = ctx.attacker.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": b64(numbers.x.to_bytes(32, "big")),
            "y": b64(numbers.y.to_bytes(32, "big"))}


attack("attacker key, attacker kid, jku to the attacker", "unknown_key",
       lambda c: c.signed_by(c.attacker, kid="attacker", jku=_ATTACKER_URL))
attack("attacker key, real kid, jku to the attacker", "bad_signature",
       lambda c: c.signed_by(c.attacker, jku=_ATTACKER_URL))
attack("attacker key, real kid, x5u to the attacker", "bad_signature",
       lambda c: c.signed_by(c.attacker, x5u=_ATTACKER_URL))
attack("attacker key embedded as jwk, real kid", "bad_signature",
       lambda c: c.signed_by(c.attacker, jwk=_attacker_jwk(c)))
attack("attacker key embedded as jwk, no kid", "malformed",
       lambda c: c.signed_by(c.attacker, jwk=_attacker_jwk(c), kid=DROP))
attack("attacker key with x5c, real kid", "bad_signature",
       lambda c: c.signed_by(c.attacker, x5c=["MIIBfake"]))

# -- crit: we understand no extensions -------------------------------------------------------
for _label, _crit in [("exp", ["exp"]), ("empty list", []), ("string", "exp"), ("null", None)]:
    attack(f"crit {_label}", "malformed", lambda c, v=_crit: c.signed(c.forge.header(crit=v)))
attack("crit b64 false (unencoded payload)", "malformed",
       lambda c: c.signed(c.forge.header(crit=["b64"], b64=False)))

# -- duplicate members, properly signed ------------------------------------------------------
def _raw_payload(ctx: Ctx, members: str) -> bytes:
    base = ctx.forge.claims(ctx.now)
    return (json.dumps(base, separators=(",", ":"))[:-1] + "," + members + "}").encode()


attack("duplicate sub in payload", "malformed", lambda c: c.signed(
    payload=b'{"sub":"a","sub":"b",' + Forge.encode(c.forge.claims(c.now, sub=DROP))[1:]))
for _label, _extra in [("sub after the real one", '"sub":"p_admin"'), ("exp", '"exp":4000000000'),
                       ("jti", '"jti":"otherJti0000"'), ("ent", '"ent":"sedpg"'),
                       ("ent, the second one empty", '"ent":""'),
                       ("member in a nested object", '"x":{"a":1,"a":2}')]:
    attack(f"duplicate {_label} in payload", "malformed",
           lambda c, e=_extra: c.signed(payload=_raw_payload(c, e)))


def _raw_header(ctx: Ctx, extra: str) -> bytes:
    return (json.dumps(ctx.forge.header(), separators=(",", ":"))[:-1] + "," + extra + "}").encode()


attack("duplicate alg in header", "malformed", lambda c: c.signed(header=_raw_header(c, '"alg":"none"')))
attack("duplicate kid in header", "malformed", lambda c: c.signed(header=_raw_header(c, '"kid":"../x"')))
attack("duplicate typ in header", "malformed", lambda c: c.signed(header=_raw_header(c, '"typ":"cc"')))

# -- claim types, properly signed ------------------------------------------------------------
_BAD_TIMES: list[tuple[str, Any]] = [
    ("string", "1800000060"), ("bool", True), ("float", 1_800_000_060.0), ("exponent", 1.8e9),
    ("huge int", 10**30), ("2**53", 2**53), ("negative", -1), ("null", None), ("list", [1]),
]
for _claim in ("exp", "iat", "nbf"):
    for _label, _value in _BAD_TIMES:
        attack(f"{_claim} as {_label}", "malformed",
               lambda c, k=_claim, v=_value: c.signed(payload=c.forge.claims(c.now, **{k: v})))
    for _literal in ("NaN", "Infinity", "-Infinity"):
        attack(f"{_claim} as {_literal}", "malformed", lambda c, k=_claim, lit=_literal: c.signed(
            payload=Forge.encode(c.forge.claims(c.now, **{k: "__X__"})).replace(b'"__X__"', lit.encode())))

for _claim in ("iss", "sub", "iat", "exp", "jti", "ent"):
    attack(f"claim {_claim} missing", "malformed",
           lambda c, k=_claim: c.signed(payload=c.forge.claims(c.now, **{k: DROP})))

for _label, _changes in [
    ("jti 11 chars", {"jti": "A" * 11}), ("jti 65 chars", {"jti": "A" * 65}),
    ("jti with a slash", {"jti": "abcdef/ghijkl"}), ("jti with padding", {"jti": "abcdefghijk="}),
    ("jti number", {"jti": 123456789012}), ("sub empty", {"sub": ""}), ("sub 65 chars", {"sub": "s" * 65}),
    ("sub number", {"sub": 42}), ("sub list", {"sub": ["a"]}),
    ("iss number", {"iss": 1}), ("iss null", {"iss": None}),
]:
    attack(f"claim {_label}", "malformed",
           lambda c, ch=_changes: c.signed(payload=c.forge.claims(c.now, **ch)))

# ent: ONE string of known one-letter codes (s e d p g y r), none twice; nothing else.
for _label, _ent in [
    ("list of names (the old format)", ["stu", "sen", "sap"]), ("list of letters", ["s", "e"]),
    ("empty list", []), ("list holding the letter string", ["eps"]), ("number", 1), ("zero", 0),
    ("float", 1.5), ("true", True), ("false", False), ("null", None), ("object", {"s": True}),
    ("empty object", {}), ("unknown letter", "x"), ("unknown letter among known ones", "esx"),
    ("uppercase letter", "S"), ("uppercase among lowercase", "eSp"), ("digit", "1"),
    ("a name instead of letters", "stu"), ("two names", "sen,hg"),
    ("duplicate letter", "ss"), ("duplicate letter apart", "gesg"), ("every letter twice", "sedpgyr" * 2),
    ("17 letters", "s" * 17), ("1000 letters", "e" * 1000), ("space", " "), ("letters with a space", "e p"),
    ("trailing space", "eps "), ("comma-separated", "e,p"), ("NUL", "\x00"), ("e acute", "\u00e9"),
    ("fullwidth s", "\uff53"), ("Cyrillic e", "\u0435"), ("letter then NUL", "e\x00"),
]:
    attack(f"claim ent {_label}", "malformed",
           lambda c, v=_ent: c.signed(payload=c.forge.claims(c.now, ent=v)))

for _label, _iss in [("other issuer", "qd"), ("issuer with different case", "CC"), ("issuer empty", "")]:
    attack(f"iss {_label}", "wrong_type", lambda c, v=_iss: c.signed(payload=c.forge.claims(c.now, iss=v)))
attack("lifetime beyond max_ttl", "malformed",
       lambda c: c.signed(payload=c.forge.claims(c.now, exp=int(c.now) + MAX_TTL + 1)))

for _label, _payload in [("array", b"[1]"), ("string", b'"x"'), ("number", b"1"), ("null", b"null"),
                         ("empty", b""), ("not JSON", b"{sub:1}"), ("BOM", b"\xef\xbb\xbf{}"),
                         ("Latin-1 bytes", b'{"sub":"\xe9"}'), ("trailing data", b'{"a":1}{}'),
                         ("surrounding whitespace", b' {"a":1} '), ("deep nesting", b"[" * 300 + b"]" * 300)]:
    attack(f"payload {_label}", "malformed", lambda c, p=_payload: c.signed(payload=p))

# -- typ -------------------------------------------------------------------------------------
for _typ in ("JWT", "CC", "cc ", "application/cc", "at+jwt", None, 1, ["cc"]):
    attack(f"typ {_typ!r}", "wrong_type", lambda c, t=_typ: c.signed(c.forge.header(typ=t)))

# -- header structure ------------------------------------------------------------------------
for _label, _header in [("array", b"[]"), ("string", b'"cc"'), ("empty", b""), ("not JSON", b"{alg}"),
                        ("NaN member", b'{"alg":"ES256","kid":"x","typ":"cc","n":NaN}')]:
    attack(f"header {_label}", "malformed", lambda c, h=_header: c.with_parts(header=b64(h)))

# -- transport encoding ----------------------------------------------------------------------
attack("input of 1025 characters", "malformed", lambda c: c.genuine.code + "A" * (1025 - len(c.genuine.code)))
attack("input of 10 KB", "malformed", lambda c: c.genuine.code + "A" * 10_000)
attack("input of 10 MB", "malformed", lambda c: "A" * 10_000_000)
attack("input of 10 MB bytes", "malformed", lambda c: b"." * 10_000_000)
for _label, _insert in [("e acute", "\u00e9"), ("fullwidth dot", "\uff0e"), ("zero-width space", "\u200b"),
                        ("no-break space", "\u00a0"), ("NUL", "\x00")]:
    attack(f"{_label} inside the payload", "malformed",
           lambda c, s=_insert: c.with_parts(payload=c.parts[1][:10] + s + c.parts[1][10:]))
attack("fullwidth dots as separators", "malformed", lambda c: "\uff0e".join(c.parts))
for _label, _around in [("trailing newline", ("", "\n")), ("leading space", (" ", "")),
                        ("trailing CRLF", ("", "\r\n")), ("trailing tab", ("", "\t"))]:
    attack(_label, "malformed", lambda c, a=_around: a[0] + c.genuine.code + a[1])
attack("newline inside the payload", "malformed",
       lambda c: c.with_parts(payload=c.parts[1][:20] + "\n" + c.parts[1][20:]))
attack("space inside the signature", "malformed",
       lambda c: c.with_parts(signature=c.parts[2][:40] + " " + c.parts[2][40:]))
attack("line-wrapped at 76 characters", "malformed",
       lambda c: "\n".join(c.genuine.code[i:i + 76] for i in range(0, len(c.genuine.code), 76)))
def _standard_alphabet(ctx: Ctx) -> str:
    """The signature in the standard alphabet; when it happens to hold no '+' or '/', one
    character is swapped for '+' so the case never degenerates into the genuine code."""
    signature = base64.b64encode(ctx.signature).decode().rstrip("=")
    if "+" not in signature and "/" not in signature:
        signature = "+" + signature[1:]
    return ctx.with_parts(signature=signature)


attack("standard base64 alphabet", "malformed", _standard_alphabet)
for _index, _name in enumerate(("header", "payload", "signature")):
    attack(f"padding '=' on the {_name}", "malformed", lambda c, i=_index: c.with_parts(
        **{("header", "payload", "signature")[i]: c.parts[i] + "="}))
    attack(f"padding '==' on the {_name}", "malformed", lambda c, i=_index: c.with_parts(
        **{("header", "payload", "signature")[i]: c.parts[i] + "=="}))
attack("padded to full quads everywhere", "malformed",
       lambda c: ".".join(p + "=" * (-len(p) % 4) for p in c.parts))


def _noncanonical_tail(segment_index: int) -> Callable[[Ctx], str]:
    """Same decoded bytes, but the unused low bits of the last character set."""
    def build(ctx: Ctx) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        parts = ctx.parts
        segment = parts[segment_index]
        assert len(segment) % 4 in (2, 3)
        parts[segment_index] = segment[:-1] + alphabet[alphabet.index(segment[-1]) | 1]
        return ".".join(parts)
    return build


attack("non-canonical trailing bits in the signature", "malformed", _noncanonical_tail(2))
attack("non-canonical trailing bits in the header", "malformed", _noncanonical_tail(0))
attack("segment of impossible length", "malformed",
       lambda c: c.with_parts(payload=c.parts[1] + "A" * ((1 - len(c.parts[1])) % 4 or 4)))
for _label, _build in [("two segments", lambda c: ".".join(c.parts[:2])),
                       ("four segments", lambda c: c.genuine.code + ".AAAA"),
                       ("trailing dot", lambda c: c.genuine.code + "."),
                       ("leading dot", lambda c: "." + c.genuine.code),
                       ("only dots", lambda c: ".."), ("code twice", lambda c: c.genuine.code * 2),
                       ("JWE-like five segments", lambda c: ".".join(c.parts + c.parts[:2]))]:
    attack(_label, "malformed", _build)

# -- wrong types and empties -----------------------------------------------------------------
for _label, _value in [("empty string", ""), ("empty bytes", b""), ("None", None), ("int", 0),
                       ("float", 1.5), ("dict", {}), ("list", []), ("bytearray", "bytearray"),
                       ("memoryview", "memoryview"), ("str subclass", "str subclass")]:
    def _value_builder(c: Ctx, v: Any = _value) -> object:
        if v == "bytearray":
            return bytearray(c.genuine.code.encode())
        if v == "memoryview":
            return memoryview(c.genuine.code.encode())
        if v == "str subclass":
            return type("Sneaky", (str,), {})(c.genuine.code)
        return v
    attack(f"input {_label}", "malformed", _value_builder)


# -- the test --------------------------------------------------------------------------------
@pytest.fixture
def ctx(genuine: MintedCode, ring: KeyRing, ed_ring: KeyRing, forge: Forge, clock: FrozenClock,
        attacker_key: ec.EllipticCurvePrivateKey,
        attacker_ed_key: ed25519.Ed25519PrivateKey) -> Ctx:
    return Ctx(genuine, ring, ed_ring, forge, clock.now, attacker_key, attacker_ed_key)


@pytest.fixture
def both_rings_verifier(make_verifier: Callable[..., Verifier], ring: KeyRing,
                        ed_ring: KeyRing) -> Verifier:
    """Accepts ES256 and EdDSA keys at once, so cross-algorithm confusion can be tried."""
    keys = {**ring.verification_keys, **ed_ring.verification_keys}
    return make_verifier(keys=lambda: keys)


@pytest.mark.parametrize("name", list(CORPUS))
def test_attack_is_denied_and_the_genuine_code_stays_usable(
        name: str, ctx: Ctx, both_rings_verifier: Verifier, replay: Any,
        no_network: list[Any]) -> None:
    reason, build = CORPUS[name]
    forged = build(ctx)
    assert not (type(forged) is str and forged == ctx.genuine.code)
    decision = both_rings_verifier.verify(forged)  # type: ignore[arg-type]
    assert (decision.decision, decision.reason) == ("deny", reason)
    assert decision.claims is None
    assert len(replay) == 0
    assert both_rings_verifier.verify(ctx.genuine.code).decision == "accept"
    assert both_rings_verifier.verify(forged).decision == "deny"  # type: ignore[arg-type]


def test_corpus_covers_every_pre_signature_reason() -> None:
    assert {reason for reason, _ in CORPUS.values()} == {
        "malformed", "bad_signature", "unknown_key", "wrong_type"}


# -- attacks that need more than one look ----------------------------------------------------
def test_jku_and_x5u_are_ignored_when_the_real_key_signed(verifier: Verifier, forge: Forge,
                                                          clock: FrozenClock,
                                                          no_network: list[Any]) -> None:
    header = forge.header(jku=_ATTACKER_URL, x5u=_ATTACKER_URL, x5c=["MIIBfake"],
                          jwk={"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"})
    code = forge.sign(header, forge.claims(clock.now, jti="jkuIgnored00"))
    assert verifier.verify(code).decision == "accept"
    assert no_network == []


def high_s_twin(code: str) -> str:
    """The same code with signature (r, n - s): also valid for ECDSA, but a different string."""
    header, payload, signature = code.split(".")
    raw = unb64(signature)
    s = int.from_bytes(raw[32:], "big")
    return f"{header}.{payload}.{b64(raw[:32] + (P256_ORDER - s).to_bytes(32, 'big'))}"


def test_high_s_twin_of_a_used_code_is_never_accepted(verifier: Verifier, genuine: MintedCode) -> None:
    twin = high_s_twin(genuine.code)
    assert twin != genuine.code
    assert verifier.check(twin).decision == "accept"  # ECDSA accepts (r, n - s): same code
    assert verifier.verify(genuine.code).decision == "accept"
    assert verifier.verify(twin).reason == "replayed"  # keyed on (iss, jti), not on the bytes


def test_high_s_twin_used_first_burns_the_same_code(verifier: Verifier, genuine: MintedCode) -> None:
    assert verifier.verify(high_s_twin(genuine.code)).decision == "accept"
    assert verifier.verify(genuine.code).reason == "replayed"


@pytest.mark.parametrize("size", [10_000, 10_000_000])
def test_oversized_input_is_refused_before_any_decoding(verifier: Verifier, size: int) -> None:
    code = ("A" * (size // 3) + ".") * 2 + "A" * (size // 3)
    start = time.perf_counter()
    for _ in range(100):
        assert verifier.verify(code).reason == "malformed"
    assert (time.perf_counter() - start) / 100 < 0.001  # O(1): a length check, no copy, no decode


_FILE_SYSTEM_CALLS = [(builtins, "open"), (io, "open"), (os, "open"), (os, "stat"), (os, "lstat"),
                      (os, "listdir"), (os, "scandir")]


@pytest.mark.parametrize("kid", ["../../etc/passwd", "/dev/zero", "keys/x.pem", "/proc/self/environ"])
def test_kid_never_reaches_the_file_system(verifier: Verifier, forge: Forge, clock: FrozenClock,
                                           monkeypatch: pytest.MonkeyPatch, kid: str) -> None:
    code = forge.sign(forge.header(kid=kid), forge.claims(clock.now))

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"file system touched: {args!r}")

    with monkeypatch.context() as patch:
        for target, name in _FILE_SYSTEM_CALLS:
            patch.setattr(target, name, refuse)
        decision = verifier.verify(code)
    assert decision.reason == "unknown_key"
