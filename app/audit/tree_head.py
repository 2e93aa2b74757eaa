"""Signed tree heads: the service's signed statement "the audit log had these leaves at this time".

A head is anchored outside the database: whoever keeps a copy (a citizen's app, an auditor,
``citycode audit verify``) can later prove that the log only grew — or catch it forking — with
nothing but the head keys (``GET /v1/audit/keys``: every key that ever signed a head, kept
after rotation) and a consistency proof (``app.audit.merkle``).

The signed bytes (``signed_bytes``) are five lines of ASCII, each ending in one ``\\n`` (0x0A):

    citycode-audit-tree-head/v1
    <kid>                  the signing key's id in the JWKS, [A-Za-z0-9_-]{1,64}
    <tree_size>            decimal, no sign or leading zeros, 0 <= tree_size < 2**64
    <root_hash>            64 lowercase hex digits: RFC 9162 root of the first tree_size leaves
    <timestamp>            decimal milliseconds since 1970-01-01T00:00:00Z, 0 <= timestamp < 2**63

e.g. ``b"citycode-audit-tree-head/v1\\nAbCd1234\\n8\\n5dc9...4328\\n1767225600000\\n"``. The signature
is over exactly these bytes with the key ``kid`` names, using the algorithm the JWKS registers for
it: ES256 (ECDSA P-256 with SHA-256, signature = 64-byte ``r || s``) or EdDSA (Ed25519, 64 bytes).
The newlines make it impossible to mistake for a JWS signing input (base64url and dots only), so
the key that signs citizens' codes can sign heads without one ever passing for the other.

As JSON (``to_dict``) a head is ``{"tree_size": int, "root_hash": hex, "timestamp": int (ms),
"kid": str, "signature": base64url without padding}``.

Key lifetime: the JWKS drops a retired key about a code lifetime after rotation, far sooner than
heads stop mattering, so a verifier of old heads must keep the public keys it has seen (pass them
to ``verify``), or the service must publish head-signing keys for longer.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from app.audit import merkle
from app.codes.errors import Malformed
from app.codes.jwks import keys_from_jwks
from app.codes.wire import b64url_decode, b64url_encode
from app.signing import signatures
from app.signing.keyfiles import PublicKey
from app.signing.keyring import KeyRing

CONTEXT = b"citycode-audit-tree-head/v1"
MAX_TREE_SIZE = 2**64 - 1
MAX_TIMESTAMP = 2**63 - 1
_KID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_HEX = re.compile(r"[0-9a-f]{64}")


class TreeHeadError(Exception):
    """A tree head cannot be trusted."""


class MalformedTreeHead(TreeHeadError):
    """A field is missing, of the wrong type or out of range."""


class UnknownKey(TreeHeadError):
    """The head names a key the verifier does not have (not in the JWKS, or not for signing)."""


class BadSignature(TreeHeadError):
    """The signature does not match the head's fields under the named key."""


class ForkedHeads(TreeHeadError):
    """Two heads that cannot both describe one append-only log: same size with different roots,
    a newer head with fewer leaves, or a consistency proof that does not link them."""


@dataclass(frozen=True, slots=True)
class SignedTreeHead:
    tree_size: int
    root_hash: bytes
    timestamp: int
    """Milliseconds since the Unix epoch, UTC."""
    kid: str
    signature: bytes

    def signed_bytes(self) -> bytes:
        return signed_bytes(kid=self.kid, tree_size=self.tree_size, root_hash=self.root_hash,
                            timestamp=self.timestamp)

    def to_dict(self) -> dict[str, Any]:
        return {"tree_size": self.tree_size, "root_hash": self.root_hash.hex(), "timestamp": self.timestamp,
                "kid": self.kid, "signature": b64url_encode(self.signature).decode("ascii")}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SignedTreeHead":
        """Parse the JSON form strictly; anything else raises ``MalformedTreeHead``."""
        if not isinstance(data, Mapping) or set(data) != {"tree_size", "root_hash", "timestamp", "kid", "signature"}:
            raise MalformedTreeHead("a tree head has exactly tree_size, root_hash, timestamp, kid and signature")
        root, signature = data["root_hash"], data["signature"]
        if not isinstance(root, str) or not _HEX.fullmatch(root):
            raise MalformedTreeHead("root_hash must be 64 lowercase hex digits")
        if not isinstance(signature, str) or not signature.isascii():
            raise MalformedTreeHead("signature must be base64url")
        try:
            raw_signature = b64url_decode(signature.encode("ascii"))
        except Malformed:
            raise MalformedTreeHead("signature is not canonical base64url") from None
        if len(raw_signature) != signatures.SIGNATURE_SIZE:
            raise MalformedTreeHead(f"signature must encode {signatures.SIGNATURE_SIZE} bytes")
        head = cls(data["tree_size"], bytes.fromhex(root), data["timestamp"], data["kid"], raw_signature)
        head.signed_bytes()  # checks the remaining fields
        return head


def signed_bytes(*, kid: str, tree_size: int, root_hash: bytes, timestamp: int) -> bytes:
    """The exact bytes a head's signature covers (module docstring)."""
    if not isinstance(kid, str) or not _KID.fullmatch(kid):
        raise MalformedTreeHead("kid must be 1..64 characters of [A-Za-z0-9_-]")
    if type(tree_size) is not int or not 0 <= tree_size <= MAX_TREE_SIZE:
        raise MalformedTreeHead("tree_size must be an integer in 0..2**64-1")
    if type(timestamp) is not int or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise MalformedTreeHead("timestamp must be an integer in 0..2**63-1 (milliseconds)")
    if not isinstance(root_hash, bytes) or len(root_hash) != merkle.HASH_SIZE:
        raise MalformedTreeHead(f"root_hash must be {merkle.HASH_SIZE} bytes")
    return b"%s\n%s\n%d\n%s\n%d\n" % (CONTEXT, kid.encode("ascii"), tree_size,
                                      root_hash.hex().encode("ascii"), timestamp)


def sign_tree_head(ring: KeyRing, *, tree_size: int, root_hash: bytes, now: float) -> SignedTreeHead:
    """Sign a head with the ring's current key; ``now`` is seconds since the epoch (injected)."""
    timestamp = math.floor(now * 1000)
    message = signed_bytes(kid=ring.current_kid, tree_size=tree_size, root_hash=root_hash, timestamp=timestamp)
    return SignedTreeHead(tree_size, root_hash, timestamp, ring.current_kid,
                          signatures.sign(ring.signing_key, message))


def verify(head: SignedTreeHead, keys: Mapping[str, tuple[str, PublicKey]]) -> None:
    """Raise unless ``head`` is signed by the key it names among ``keys`` (``kid -> (alg, key)``,
    as ``app.codes.jwks.keys_from_jwks`` or ``KeyRing.verification_keys`` give them)."""
    message = head.signed_bytes()
    entry = keys.get(head.kid)
    if entry is None:
        raise UnknownKey(f"no published key {head.kid!r}")
    algorithm, public_key = entry
    if not signatures.is_valid(algorithm, public_key, head.signature, message):
        raise BadSignature("tree head signature does not verify")


def verify_with_jwks(head: SignedTreeHead, jwks: Mapping[str, Any]) -> None:
    """``verify`` against a published JWK Set document (a bad set raises ``JWKSError``)."""
    verify(head, keys_from_jwks(jwks))


def check_consistency(older: SignedTreeHead, newer: SignedTreeHead, proof: Sequence[bytes]) -> None:
    """Raise ``ForkedHeads`` unless ``newer`` extends ``older`` as ``proof`` (from
    ``MerkleTree.consistency_proof(older.tree_size, newer.tree_size)``) shows.

    Hashes only: check each head's signature with ``verify`` first.
    """
    if newer.tree_size < older.tree_size:
        raise ForkedHeads(f"the newer head has {newer.tree_size} leaves, the older {older.tree_size}")
    if older.tree_size == 0:
        if older.root_hash != merkle.EMPTY_ROOT or proof:
            raise ForkedHeads("a head of size 0 must carry the empty root and need no proof")
        return
    try:
        merkle.verify_consistency(older.tree_size, newer.tree_size, proof, older.root_hash, newer.root_hash)
    except merkle.ProofError as exc:
        raise ForkedHeads(f"heads of sizes {older.tree_size} and {newer.tree_size} are not consistent: {exc}") \
            from None
