"""The reader-key ring: P-256 keys that CC3 codes are sealed to (docs/code-format-v2.md §7).

Like the signing ring (``app.signing.keyring``), with a schedule instead of a command: a
``current`` key (phones seal to it from ``valid_from`` to ``valid_until``), a ``next`` key
(published to phones and terminals one period ahead, so a phone offline across the rotation
switches by its own clock), and ``retired`` keys, kept for readers ``grace`` seconds past their
``valid_until`` (the last codes sealed to them: code lifetime, leeway and phones' clock skew),
then deleted. Rotation happens on read when ``current`` has run out (every ``period`` seconds,
``CITYCODE_READER_KEY_HOURS``), under a file lock, so any worker may do it.

Public halves go to phones with each device certificate; private halves only to terminals, through
their authenticated sync (``GET /v1/terminals/me/reader-keys``). Files live beside the signing keys:
``reader-keys.json`` (state) and ``reader-<kid>.pem`` (mode 0600).
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from cryptography.hazmat.primitives.asymmetric import ec

from app.codes.device import public_jwk, reader_kid
from app.codes.wire import b64url_encode
from app.signing import keyfiles
from app.signing.keyfiles import KeyFileError

STATE_FILE = "reader-keys.json"
CURRENT, NEXT, RETIRED = "current", "next", "retired"
DEFAULT_GRACE_SECONDS = 900


@dataclass(frozen=True)
class ReaderKey:
    kid: bytes
    state: str
    valid_from: int
    valid_until: int
    private_key: ec.EllipticCurvePrivateKey

    @property
    def kid_text(self) -> str:
        return b64url_encode(self.kid).decode("ascii")

    def public(self) -> dict[str, Any]:
        """What a phone gets: the key to seal to and when."""
        return {"kid": self.kid_text, "public_key": public_jwk(self.private_key.public_key()),
                "valid_from": self.valid_from, "valid_until": self.valid_until}

    def private(self) -> dict[str, Any]:
        """What a terminal gets: the private JWK too."""
        d = self.private_key.private_numbers().private_value.to_bytes(32, "big")
        return {**self.public(), "state": self.state,
                "private_key": {**public_jwk(self.private_key.public_key()), "d": b64url_encode(d).decode()}}


class ReaderKeyRing:
    """The reader keys in ``directory``; ``keys(now)`` rotates when due and caches the ring."""

    def __init__(self, directory: Path, *, period_seconds: int = 86400,
                 grace_seconds: int = DEFAULT_GRACE_SECONDS) -> None:
        if period_seconds <= 0 or grace_seconds < 0:
            raise ValueError("period must be positive, grace non-negative")
        self.directory, self.period, self.grace = directory, period_seconds, grace_seconds
        self._cached: tuple[str, int, tuple[ReaderKey, ...]] | None = None
        self._private_map: tuple[tuple[ReaderKey, ...], dict[bytes, ec.EllipticCurvePrivateKey]] = ((), {})

    @property
    def state_path(self) -> Path:
        return self.directory / STATE_FILE

    def _path(self, kid_hex: str) -> Path:
        return self.directory / f"reader-{kid_hex}.pem"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.directory / ".reader-lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # -- reading -------------------------------------------------------------------------------
    def keys(self, now: float | None = None) -> tuple[ReaderKey, ...]:
        """Live keys (current, next, retired in grace), rotating first if ``current`` ran out.
        Re-reads the files only when they changed or a key's time came."""
        now = int(time.time() if now is None else now)
        cached = self._cached
        stamp = self._stamp()
        if cached is not None and cached[0] == stamp and now < cached[1]:
            return cached[2]
        keys = self._load_or_rotate(now)
        due = min([k.valid_until for k in keys if k.state == CURRENT]
                  + [k.valid_until + self.grace for k in keys if k.state == RETIRED])
        self._cached = (self._stamp(), due, keys)
        return keys

    def for_phones(self, now: float | None = None) -> list[dict[str, Any]]:
        """Current and next public keys, current first."""
        return [k.public() for k in self.keys(now) if k.state in (CURRENT, NEXT)]

    def for_terminals(self, now: float | None = None) -> list[dict[str, Any]]:
        return [k.private() for k in self.keys(now)]

    def private_map(self) -> dict[bytes, ec.EllipticCurvePrivateKey]:
        """kid → private key, for a verifier (``Verifier(reader_keys=ring.private_map)``)."""
        keys = self.keys()
        if self._private_map[0] is not keys:
            self._private_map = (keys, {k.kid: k.private_key for k in keys})
        return self._private_map[1]

    def _stamp(self) -> str:
        try:
            st = self.state_path.stat()
        except FileNotFoundError:
            return ""
        return f"{st.st_ino}:{st.st_mtime_ns}"

    # -- changing ------------------------------------------------------------------------------
    def _load_or_rotate(self, now: int) -> tuple[ReaderKey, ...]:
        with self._locked():
            entries = self._read()
            changed = False
            if not any(e["state"] == CURRENT for e in entries):
                entries = [self._new(CURRENT, now, now + self.period, entries)]
                changed = True
            for _ in range(1000):  # catch up a ring nobody read for a while
                current = next(e for e in entries if e["state"] == CURRENT)
                if current["valid_until"] > now:
                    break
                upcoming = next((e for e in entries if e["state"] == NEXT), None)
                current["state"] = RETIRED
                if upcoming is None:
                    upcoming = self._new(CURRENT, now, now + self.period, entries)
                    entries.append(upcoming)
                upcoming["state"] = CURRENT
                changed = True
            if not any(e["state"] == NEXT for e in entries):
                current = next(e for e in entries if e["state"] == CURRENT)
                entries.append(self._new(NEXT, current["valid_until"], current["valid_until"] + self.period,
                                         entries))
                changed = True
            kept = []
            for entry in entries:
                if entry["state"] == RETIRED and entry["valid_until"] + self.grace <= now:
                    self._path(entry["kid"]).unlink(missing_ok=True)
                    changed = True
                    continue
                kept.append(entry)
            if changed:
                self._write(kept)
            return tuple(self._key(e) for e in kept)

    def revoke(self, kid_text: str, now: float | None = None) -> None:
        """Withdraw a key at once (a terminal holding it was stolen): it leaves the ring now and
        readers drop it at their next sync; a withdrawn current or next key is replaced."""
        now_i = int(time.time() if now is None else now)
        with self._locked():
            entries = self._read()
            entry = next((e for e in entries if b64url_encode(bytes.fromhex(e["kid"])).decode() == kid_text), None)
            if entry is None:
                raise KeyFileError(f"no reader key {kid_text!r}")
            kept = [e for e in entries if e is not entry]
            if entry["state"] in (CURRENT, NEXT):
                start = now_i if entry["state"] == CURRENT else entry["valid_from"]
                kept.append(self._new(entry["state"], start, entry["valid_until"], kept))
            self._write(kept)
            self._path(entry["kid"]).unlink(missing_ok=True)
        self._cached = None

    def _new(self, state: str, valid_from: int, valid_until: int, others: list[dict[str, Any]]) -> dict[str, Any]:
        taken = {e["kid"] for e in others}
        while True:  # kids are 4 bytes: never let two live keys share one
            key = ec.generate_private_key(ec.SECP256R1())
            kid = reader_kid(key.public_key()).hex()
            if kid not in taken:
                break
        keyfiles.write_private(self._path(kid), key)
        return {"kid": kid, "state": state, "valid_from": valid_from, "valid_until": valid_until}

    def _key(self, entry: dict[str, Any]) -> ReaderKey:
        key = keyfiles.load_private(self._path(entry["kid"]))
        if not isinstance(key, ec.EllipticCurvePrivateKey) or reader_kid(key.public_key()).hex() != entry["kid"]:
            raise KeyFileError(f"reader key file for {entry['kid']} does not match its kid")
        return ReaderKey(bytes.fromhex(entry["kid"]), entry["state"], int(entry["valid_from"]),
                         int(entry["valid_until"]), key)

    def _read(self) -> list[dict[str, Any]]:
        try:
            return list(json.loads(self.state_path.read_text()).get("keys", []))
        except FileNotFoundError:
            return []
        except ValueError as exc:
            raise KeyFileError(f"{self.state_path} is not valid JSON: {exc}") from None

    def _write(self, entries: list[dict[str, Any]]) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": 1, "keys": entries}, indent=2) + "\n")
        os.replace(tmp, self.state_path)
