"""One key pair on disk: generation, 0600 private files, permission checks, JWK and ``kid``."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any, Union

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

ALGORITHMS = ("ES256", "EdDSA")
KID_LENGTH = 8  # 48 bits: names a handful of keys; keeps the QR code small

PrivateKey = Union[ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey]
PublicKey = Union[ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey]


class KeyFileError(Exception):
    """A key file is missing, malformed, or not private enough to load."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def generate(algorithm: str) -> PrivateKey:
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported algorithm {algorithm!r}; choose one of {ALGORITHMS}")


def public_jwk(public_key: PublicKey) -> dict[str, str]:
    """The public key as a JWK holding only the RFC 7638 required members."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, ec.SECP256R1):
            raise KeyFileError("only P-256 EC keys are supported")
        numbers = public_key.public_numbers()
        return {"crv": "P-256", "kty": "EC",
                "x": b64url(numbers.x.to_bytes(32, "big")), "y": b64url(numbers.y.to_bytes(32, "big"))}
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}
    raise KeyFileError(f"unsupported key type {type(public_key).__name__}")


def thumbprint_kid(public_key: PublicKey) -> str:
    """``kid`` = the RFC 7638 SHA-256 thumbprint, truncated (it only names the key, it proves nothing)."""
    canonical = json.dumps(public_jwk(public_key), sort_keys=True, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode("ascii")).digest())[:KID_LENGTH]


def algorithm_of(public_key: PublicKey) -> str:
    return "ES256" if isinstance(public_key, ec.EllipticCurvePublicKey) else "EdDSA"


def write_private(path: Path, key: PrivateKey) -> None:
    """Write a private key PEM readable by its owner only; never overwrite an existing file."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())


def write_public(path: Path, key: PublicKey) -> None:
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pem)
    os.replace(tmp, path)


def check_private_mode(path: Path) -> None:
    """Refuse a private key file that group or others could read or write."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeyFileError(f"private key file {path} is missing") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"refusing to load {path}: mode {stat.S_IMODE(mode):04o} lets group/others access it; "
            f"run: chmod 600 {path}")


def load_private(path: Path) -> PrivateKey:
    """Load a private key, refusing a file that group or others could read or write."""
    check_private_mode(path)
    key: Any = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        raise KeyFileError(f"{path} holds an unsupported key type")
    return key


def load_public(path: Path) -> PublicKey:
    try:
        key: Any = serialization.load_pem_public_key(path.read_bytes())
    except FileNotFoundError:
        raise KeyFileError(f"public key file {path} is missing") from None
    if not isinstance(key, (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)):
        raise KeyFileError(f"{path} holds an unsupported key type")
    return key
