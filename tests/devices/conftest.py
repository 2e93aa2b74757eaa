"""Fixtures for device-bound codes: a service key, a device key, a certificate, a verifier on a
frozen clock with in-memory trust and replay (the offline reader's parts)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from app.codes.device import IssuedCertificate, issue_certificate, mint_device_code
from app.codes.replay import MemoryReplayStore
from app.codes.trust import StaticTrust
from app.codes.verify import Verifier

NOW = 1_900_000_000
KID = "svc-key1"
PSEUDONYM = "pSeudonym01"
ENTITLEMENTS = ("sen", "dis", "sap", "hg")


@dataclass
class Clock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    clock: Clock
    service: ec.EllipticCurvePrivateKey
    device: ec.EllipticCurvePrivateKey
    keys: dict[str, tuple[str, object]]
    trust: StaticTrust
    verifier: Verifier
    cert: IssuedCertificate
    make_verifier: Callable[..., Verifier] = field(repr=False)

    def code(self, *, now: float | None = None, cert: bytes | None = None,
             device: ec.EllipticCurvePrivateKey | None = None) -> str:
        return mint_device_code(cert or self.cert.certificate, device or self.device,
                                now=self.clock.now if now is None else now).code

    def certificate(self, **changes: object) -> IssuedCertificate:
        args: dict[str, object] = {"subject": PSEUDONYM, "entitlements": ENTITLEMENTS,
                                   "device_key": self.device.public_key(), "now": NOW - 3600,
                                   "expires_at": NOW + 20 * 3600}
        args.update(changes)
        key = args.pop("signing_key", self.service)
        kid = args.pop("kid", KID)
        return issue_certificate(key, kid, **args)  # type: ignore[arg-type]


@pytest.fixture
def world() -> World:
    clock = Clock()
    service = ec.generate_private_key(ec.SECP256R1())
    device = ec.generate_private_key(ec.SECP256R1())
    keys: dict[str, tuple[str, object]] = {KID: ("ES256", service.public_key())}
    trust = StaticTrust()

    def make_verifier(**options: object) -> Verifier:
        return Verifier(lambda: keys, trust, MemoryReplayStore(clock), "cc", max_ttl=60, leeway=5,  # type: ignore[arg-type]
                        clock=clock, **options)  # type: ignore[arg-type]

    cert = issue_certificate(service, KID, subject=PSEUDONYM, entitlements=ENTITLEMENTS,
                             device_key=device.public_key(), now=NOW - 3600, expires_at=NOW + 20 * 3600)
    return World(clock, service, device, keys, trust, make_verifier(), cert, make_verifier)
