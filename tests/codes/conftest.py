"""Fixtures for the codes core: real key rings on disk, a frozen clock, in-memory trust and replay
stores, a verifier wired to them, a ``forge`` (see ``codes_support.Forge``) and a network guard."""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from app.codes.mint import MintedCode, mint
from app.codes.replay import MemoryReplayStore
from app.codes.trust import StaticTrust
from app.codes.verify import Verifier
from app.signing.keyring import KeyRing

from codes_support import (ENTITLEMENTS, ISSUER, LEEWAY, MAX_TTL, SUBJECT, TTL, Forge, FrozenClock,
                           load_ring)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def ring(tmp_path: Path) -> KeyRing:
    return load_ring(tmp_path / "keys-es256", "ES256")


@pytest.fixture
def ed_ring(tmp_path: Path) -> KeyRing:
    return load_ring(tmp_path / "keys-eddsa", "EdDSA")


@pytest.fixture
def trust() -> StaticTrust:
    return StaticTrust()


@pytest.fixture
def replay(clock: FrozenClock) -> MemoryReplayStore:
    return MemoryReplayStore(clock)


@pytest.fixture
def make_verifier(ring: KeyRing, trust: StaticTrust, replay: MemoryReplayStore,
                  clock: FrozenClock) -> Callable[..., Verifier]:
    """A verifier over ``ring``'s published keys; keyword overrides replace any part."""

    def build(**overrides: Any) -> Verifier:
        keys = overrides.pop("keys", None) or (lambda: ring.verification_keys)
        options: dict[str, Any] = dict(trust=trust, replay=replay, issuer=ISSUER, max_ttl=MAX_TTL,
                                       leeway=LEEWAY, clock=clock)
        options.update(overrides)
        return Verifier(keys, **options)

    return build


@pytest.fixture
def verifier(make_verifier: Callable[..., Verifier]) -> Verifier:
    return make_verifier()


@pytest.fixture
def issue(ring: KeyRing, clock: FrozenClock) -> Callable[..., MintedCode]:
    """Mint a code with the test defaults at the clock's time; keywords override."""

    def build(signing_ring: KeyRing | None = None, **overrides: Any) -> MintedCode:
        options: dict[str, Any] = dict(issuer=ISSUER, subject=SUBJECT, entitlements=ENTITLEMENTS,
                                       ttl_seconds=TTL, now=clock.now)
        options.update(overrides)
        return mint(signing_ring or ring, **options)

    return build


@pytest.fixture
def genuine(issue: Callable[..., MintedCode]) -> MintedCode:
    return issue()


@pytest.fixture
def forge(ring: KeyRing) -> Forge:
    return Forge(ring)


@pytest.fixture
def attacker_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def attacker_ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Fail loudly if anything tries to open a network connection or resolve a name."""
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield attempts
    assert attempts == []
