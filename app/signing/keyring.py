"""The key ring: one current key signs, a next key is published ahead of use, retired keys stay
published until every code they signed has expired.

State lives in ``keyring.json`` beside the key files; every change takes a file lock and replaces
the state file atomically, so several workers and the CLI can share one keys folder.
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from app.signing import keyfiles
from app.signing.keyfiles import KeyFileError, PrivateKey, PublicKey

STATE_FILE = "keyring.json"
CURRENT, NEXT, RETIRED = "current", "next", "retired"


@dataclass(frozen=True)
class PublishedKey:
    kid: str
    algorithm: str
    state: str
    public_key: PublicKey
    created_at: int
    publish_until: int | None = None

    def jwk(self) -> dict[str, str]:
        return {**keyfiles.public_jwk(self.public_key), "kid": self.kid, "alg": self.algorithm, "use": "sig"}


@dataclass(frozen=True)
class KeyRing:
    """An immutable snapshot: the signing key and every key a verifier should accept."""

    current_kid: str
    signing_key: PrivateKey
    keys: tuple[PublishedKey, ...]
    version: str = ""
    verification_keys: dict[str, tuple[str, PublicKey]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.verification_keys.update({k.kid: (k.algorithm, k.public_key) for k in self.keys})

    @property
    def current(self) -> PublishedKey:
        return next(k for k in self.keys if k.kid == self.current_kid)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.jwk() for k in self.keys]}

    @property
    def published_kids(self) -> list[str]:
        return [k.kid for k in self.keys]


class KeyStore:
    """The keys folder: create, rotate, list and load the key ring."""

    def __init__(self, directory: Path, *, retire_after_seconds: int = 65) -> None:
        self.directory = directory
        self.retire_after_seconds = retire_after_seconds

    # -- files ---------------------------------------------------------------------------
    def _private_path(self, kid: str) -> Path:
        return self.directory / f"{kid}.private.pem"

    def _public_path(self, kid: str) -> Path:
        return self.directory / f"{kid}.public.pem"

    @property
    def state_path(self) -> Path:
        return self.directory / STATE_FILE

    @contextmanager
    def _locked(self, *, shared: bool = False) -> Iterator[None]:
        """Changes hold the lock exclusively; ``load`` holds it shared, so it never reads a ring half
        way through a change (e.g. a current key whose private file a rotation has just deleted)."""
        if shared and not self.directory.is_dir():
            yield  # no keys folder: nothing to lock, load() reports the missing ring
            return
        if not shared:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.directory, 0o700)
        with open(self.directory / ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read_state(self) -> list[dict[str, Any]]:
        try:
            data = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return []
        except ValueError as exc:
            raise KeyFileError(f"{self.state_path} is not valid JSON: {exc}") from None
        return list(data.get("keys", []))

    def _write_state(self, entries: list[dict[str, Any]]) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": 1, "keys": entries}, indent=2) + "\n")
        os.replace(tmp, self.state_path)

    def _new_key(self, algorithm: str, state: str, now: int) -> dict[str, Any]:
        private = keyfiles.generate(algorithm)
        kid = keyfiles.thumbprint_kid(private.public_key())
        keyfiles.write_private(self._private_path(kid), private)
        keyfiles.write_public(self._public_path(kid), private.public_key())
        return {"kid": kid, "alg": algorithm, "state": state, "created_at": now}

    # -- operations ----------------------------------------------------------------------
    def stamp(self) -> str:
        """Changes with every write: the state file is replaced, so its inode changes even when
        two writes share one coarse modification time."""
        st = self.state_path.stat()
        return f"{st.st_ino}:{st.st_mtime_ns}"

    def exists(self) -> bool:
        return self.state_path.exists()

    def generate(self, algorithm: str = "ES256", *, force: bool = False) -> list[dict[str, Any]]:
        """Create a current and a next key. Without ``force`` an existing ring is left as it is."""
        with self._locked():
            entries = self._read_state()
            if entries and not force:
                return entries
            now = int(time.time())
            entries = [self._retire(e, now) if e["state"] != RETIRED else e for e in entries]
            entries += [self._new_key(algorithm, CURRENT, now), self._new_key(algorithm, NEXT, now)]
            self._write_state(self._prune(entries, now))
            return entries

    def rotate(self, algorithm: str | None = None) -> list[dict[str, Any]]:
        """Next becomes current, current retires (kept published until its codes expire), a new next."""
        with self._locked():
            entries = self._read_state()
            if not entries:
                raise KeyFileError(f"no key ring in {self.directory}; run `citycode keys generate` first")
            now = int(time.time())
            current = next(e for e in entries if e["state"] == CURRENT)
            upcoming = next((e for e in entries if e["state"] == NEXT), None)
            algorithm = algorithm or (upcoming or current)["alg"]
            rotated: list[dict[str, Any]] = []
            for entry in entries:
                if entry is current:
                    rotated.append(self._retire(entry, now))
                elif entry is upcoming and entry["alg"] == algorithm:
                    rotated.append({**entry, "state": CURRENT})
                elif entry is upcoming:
                    rotated.append(self._retire(entry, now))
                else:
                    rotated.append(entry)
            if not any(e["state"] == CURRENT for e in rotated):
                rotated.append(self._new_key(algorithm, CURRENT, now))
            rotated.append(self._new_key(algorithm, NEXT, now))
            rotated = self._prune(rotated, now)
            self._write_state(rotated)
            return rotated

    def _retire(self, entry: dict[str, Any], now: int) -> dict[str, Any]:
        """A retired key can sign nothing more: its private file goes, its public key stays a while."""
        self._private_path(entry["kid"]).unlink(missing_ok=True)
        return {**entry, "state": RETIRED, "retired_at": now,
                "publish_until": now + self.retire_after_seconds}

    def _prune(self, entries: list[dict[str, Any]], now: int) -> list[dict[str, Any]]:
        kept = []
        for entry in entries:
            if entry["state"] == RETIRED and entry["publish_until"] <= now:
                self._public_path(entry["kid"]).unlink(missing_ok=True)
                continue
            kept.append(entry)
        return kept

    def revoke(self, kid: str) -> list[dict[str, Any]]:
        """Withdraw a retired or next key at once (e.g. it leaked): it leaves the ring and the JWKS now,
        not when its publication window ends. The current key cannot be revoked: rotate first.
        A revoked next key is replaced by a fresh one, so the ring keeps a published next key."""
        with self._locked():
            entries = self._read_state()
            entry = next((e for e in entries if e["kid"] == kid), None)
            if entry is None:
                raise KeyFileError(f"no key {kid!r} in the ring in {self.directory}")
            if entry["state"] == CURRENT:
                raise KeyFileError(f"{kid} is the current key and still signs; rotate first "
                                   "(`citycode keys rotate`), then revoke it")
            kept = [e for e in entries if e is not entry]
            if entry["state"] == NEXT:
                kept.append(self._new_key(entry["alg"], NEXT, int(time.time())))
            self._write_state(kept)  # the state first: a crash never leaves it naming a missing file
            self._private_path(kid).unlink(missing_ok=True)
            self._public_path(kid).unlink(missing_ok=True)
            return kept

    def list(self) -> list[dict[str, Any]]:
        return self._read_state()

    def load(self, now: float | None = None) -> KeyRing:
        """Load the ring: the current private key (permission-checked) and every published key."""
        now = time.time() if now is None else now
        with self._locked(shared=True):
            return self._load(now)

    def _load(self, now: float) -> KeyRing:
        entries = self._read_state()
        current = [e for e in entries if e["state"] == CURRENT]
        if len(current) != 1:
            raise KeyFileError(f"{self.state_path} must name exactly one current key, found {len(current)}")
        signing_key = keyfiles.load_private(self._private_path(current[0]["kid"]))
        for entry in entries:  # the next key signs after the next rotation: hold it to the same rule
            if entry["state"] == NEXT:
                keyfiles.check_private_mode(self._private_path(entry["kid"]))
        published = []
        for entry in entries:
            if entry["state"] == RETIRED and entry["publish_until"] <= now:
                continue
            public = keyfiles.load_public(self._public_path(entry["kid"]))
            if keyfiles.thumbprint_kid(public) != entry["kid"]:
                raise KeyFileError(f"public key file for {entry['kid']} does not match its kid")
            published.append(PublishedKey(entry["kid"], entry["alg"], entry["state"], public,
                                          entry["created_at"], entry.get("publish_until")))
        if keyfiles.thumbprint_kid(signing_key.public_key()) != current[0]["kid"]:
            raise KeyFileError("the current private key does not match its kid")
        version = self.stamp()
        return KeyRing(current[0]["kid"], signing_key, tuple(published), version)


class KeyRingCache:
    """Hands out the loaded ring, re-reading the folder only when it changed (checked once a second)
    or when a retired key's publication window ends. Keeps verification free of file I/O."""

    def __init__(self, store: KeyStore, *, check_interval: float = 1.0) -> None:
        self.store = store
        self.check_interval = check_interval
        self._ring: KeyRing | None = None
        self._checked_at = 0.0

    def get(self) -> KeyRing:
        now = time.time()
        ring = self._ring
        if ring is not None and now - self._checked_at < self.check_interval:
            return ring
        self._checked_at = now
        stamp = self.store.stamp() if self.store.exists() else ""
        expired = ring is not None and any(
            k.publish_until is not None and k.publish_until <= now for k in ring.keys)
        if ring is None or ring.version != stamp or expired:
            ring = self._ring = self.store.load(now)
        return ring

    def invalidate(self) -> None:
        self._ring = None
