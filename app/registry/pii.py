"""Personal data at rest: AES-256-GCM per field, and a keyed hash (HMAC) for uniqueness look-ups.

The secret lives with the keys (a 0600 file), never in the database; both keys are derived from it
with HKDF so one file is enough. Each ciphertext is bound to its table, column and row id (AAD), so
a value copied into another row or column fails to decrypt.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SECRET_FILE = "data-secret.key"
_VERSION = b"\x01"


class VaultError(Exception):
    """The data secret is missing, unsafe, or a ciphertext does not decrypt."""


def _derive(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


class PiiVault:
    def __init__(self, secret: bytes) -> None:
        if len(secret) != 32:
            raise VaultError("the data secret must be 32 bytes")
        self._aead = AESGCM(_derive(secret, b"citycode pii aes-gcm v1"))
        self._mac_key = _derive(secret, b"citycode pii lookup hmac v1")

    @staticmethod
    def create_if_missing(keys_dir: Path) -> bool:
        """Create the data secret (mode 0600) once; call before any worker starts."""
        keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if (keys_dir / SECRET_FILE).exists():
            return False
        # Written aside, then linked into place: an instance starting at the same time on a shared
        # keys folder sees either no file or the whole secret, never a half-written one.
        draft = keys_dir / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
                handle.flush()
                os.fsync(handle.fileno())
            os.link(draft, keys_dir / SECRET_FILE)  # fails if another instance was first
        except FileExistsError:
            return False
        finally:
            draft.unlink(missing_ok=True)
        return True

    @classmethod
    def load(cls, keys_dir: Path) -> "PiiVault":
        """Load the data secret, refusing a file that group or others could access."""
        path = keys_dir / SECRET_FILE
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise VaultError(f"data secret {path} is missing; start with `citycode serve`") from None
        if stat.S_IMODE(mode) & 0o077:
            raise VaultError(f"refusing to load {path}: group/others can access it; run: chmod 600 {path}")
        return cls(path.read_bytes())

    def encrypt(self, plaintext: str, context: str) -> bytes:
        nonce = secrets.token_bytes(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext.encode("utf-8"), context.encode())

    def decrypt(self, blob: bytes, context: str) -> str:
        if len(blob) < 29 or blob[:1] != _VERSION:
            raise VaultError("unknown ciphertext format")
        try:
            return self._aead.decrypt(blob[1:13], blob[13:], context.encode()).decode("utf-8")
        except InvalidTag:
            raise VaultError("ciphertext does not decrypt in this context") from None

    def lookup_hash(self, value: str, kind: str) -> bytes:
        """Deterministic keyed hash: finds an enrolled ID number without storing it in clear."""
        return hmac.new(self._mac_key, f"{kind}\x00{value}".encode(), hashlib.sha256).digest()
