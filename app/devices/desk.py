"""Registering a citizen's device key and certifying it for offline minting (``CC2:`` codes).

A phone registers a P-256 public key (JWK, or a base64url COSE_Key) with a proof that it holds
the private key: an ES256 signature (raw ``r||s``, as WebCrypto gives it) by that key over

    "citycode-device-pop/1\\n" + purpose + "\\n" + citizen_id + "\\n" + signed_at

(``purpose`` ``register`` or ``refresh``; ``signed_at`` epoch seconds, within ``POP_WINDOW``
seconds of the server's clock). It gets a device certificate (``app.codes.device``) signed by the
ring's current ES256 key: pseudonym, entitlements held now, the device key, an id, and a
validity of ``cert_seconds``, cut short at the next start or end of one of the citizen's
credential windows, and at the next city midnight when it carries a day's scenic reservation
(readers judge reservations by the certificate's ``iat`` day). Refresh repeats this for a
registered device; removing a device revokes its unexpired certificates through the revocation
feed (``code_revoked`` ``cc/<certificate id>``: the kind every reader already understands).
A suspended citizen gets no certificate, and a suspension or a revoked entitlement reaches
certificates already out through the feed's pseudonym entries, as for JWS codes.
"""
from __future__ import annotations

import base64
import binascii
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, time as day_time, timedelta, timezone
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import log as audit
from app.city import CITY_TZ
from app.codes import cbor
from app.codes.device import (CODE_SECONDS, IssuedCertificate, issue_certificate, issue_sealed_certificate,
                              public_key_from_cose, public_key_from_jwk)
from app.codes.errors import Malformed
from app.db import Database
from app.db.models import Credential
from app.devices.store import Device, DeviceCertificate, by_key, latest_expiry, live_devices, unexpired_certificates
from app.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Unavailable
from app.registry import citizens, credentials, revocations
from app.signing.keyring import KeyRingCache
from app.signing.reader_keys import ReaderKeyRing

POP_LABEL = b"citycode-device-pop/1"  # app.codes.device.possession_proof signs the same
POP_WINDOW = 300
MAX_DEVICES = 5
RESERVATIONS = frozenset({"rla", "rzt", "rjm"})


@dataclass(frozen=True)
class CertifiedDevice:
    device_id: str
    certificate: IssuedCertificate
    refresh_after: int
    sealed_certificate: IssuedCertificate | None = None  # v3, for sealed CC3 codes
    reader_keys: tuple[dict[str, Any], ...] = ()  # public reader keys a phone seals CC3 codes to


def pop_message(purpose: str, citizen_id: str, signed_at: int) -> bytes:
    """The bytes a device signs to prove it holds its key."""
    return b"\n".join((POP_LABEL, purpose.encode(), citizen_id.encode(), str(signed_at).encode()))


def parse_public_key(value: Any) -> ec.EllipticCurvePublicKey:
    """A JWK object or a base64url COSE_Key string → the P-256 key; ``InvalidInput`` otherwise."""
    try:
        if isinstance(value, dict):
            return public_key_from_jwk(value)
        if isinstance(value, str) and value.isascii():
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            return public_key_from_cose(cbor.loads(raw))
    except (ValueError, Malformed, binascii.Error) as exc:
        raise InvalidInput("Not a usable P-256 public key.", {"public_key": [str(exc)]}) from None
    raise InvalidInput("Not a usable P-256 public key.", {"public_key": ["a JWK object or a COSE_Key"]})


def check_proof(key: ec.EllipticCurvePublicKey, purpose: str, citizen_id: str, signed_at: int,
                signature: str, now: float) -> None:
    """Raise ``InvalidInput`` unless ``signature`` is the device key's proof, made recently."""
    if abs(now - signed_at) > POP_WINDOW:
        raise InvalidInput("The proof is too old or from the future.", {"proof": ["signed_at out of window"]})
    try:
        raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 64:
        raise InvalidInput("The proof is not an ES256 signature.", {"proof": ["64-byte r||s expected"]})
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        key.verify(der, pop_message(purpose, citizen_id, signed_at), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise InvalidInput("The proof does not verify with this key.", {"proof": ["bad signature"]}) from None


def certificate_until(now: float, seconds: int, windows: list[tuple[datetime | None, datetime | None]],
                      day_bound: bool) -> float:
    """The certificate's end: ``now + seconds``, the next credential window edge, and the next
    city midnight when it carries a reservation for today."""
    moment = datetime.fromtimestamp(now, timezone.utc)
    edges = [now + seconds]
    if day_bound:
        midnight = datetime.combine(moment.astimezone(CITY_TZ).date() + timedelta(days=1), day_time(0),
                                    tzinfo=CITY_TZ)
        edges.append(midnight.timestamp())
    for window in windows:
        for edge in window:
            if edge is not None:
                edge = edge if edge.tzinfo else edge.replace(tzinfo=timezone.utc)
                if edge > moment:
                    edges.append(edge.timestamp())
    return min(edges)


class DeviceDesk:
    """Citizens' devices: register, refresh, list, remove. ``keys`` signs the certificates."""

    def __init__(self, db: Database, keys: KeyRingCache, *, cert_seconds: int, issuer: str,
                 code_seconds: int = CODE_SECONDS, reader_keys: ReaderKeyRing | None = None) -> None:
        self.db, self.keys, self.cert_seconds, self.issuer = db, keys, cert_seconds, issuer
        self.code_seconds = code_seconds
        self.reader_keys = reader_keys

    def register(self, citizen_id: str, public_key: Any, signed_at: int, signature: str,
                 label: str | None = None, now: float | None = None) -> CertifiedDevice:
        now = time.time() if now is None else now
        key = parse_public_key(public_key)
        check_proof(key, "register", citizen_id, signed_at, signature, now)
        point = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        with self.db.session() as session:
            citizen = citizens.get(session, citizen_id)
            existing = by_key(session, point)
            if existing is not None:
                if existing.citizen_id != citizen_id or existing.revoked_at is not None:
                    raise Conflict("This key is already registered, or was removed.")
                device = existing
            else:
                if len(live_devices(session, citizen_id)) >= MAX_DEVICES:
                    raise Conflict(f"At most {MAX_DEVICES} devices; remove one first.")
                device = Device(id="dev_" + uuid.uuid4().hex[:20], citizen_id=citizen_id, public_key=point,
                                label=label, created_at=datetime.fromtimestamp(now, timezone.utc))
                session.add(device)
                session.flush()
                audit.append(session, actor_kind="citizen", actor_id=citizen_id, action="device_registered",
                             subject=citizen.pseudonym, details={"device_id": device.id})
            certified = self._certify(session, citizen_id, device, key, now)
        return certified

    def refresh(self, citizen_id: str, device_id: str, signed_at: int, signature: str,
                now: float | None = None) -> CertifiedDevice:
        now = time.time() if now is None else now
        with self.db.session() as session:
            device = self._device(session, citizen_id, device_id)
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), device.public_key)
            check_proof(key, "refresh", citizen_id, signed_at, signature, now)
            certified = self._certify(session, citizen_id, device, key, now)
        return certified

    def list(self, citizen_id: str) -> list[dict[str, Any]]:
        with self.db.session() as session:
            return [{"device_id": d.id, "label": d.label, "created_at": audit.utc(d.created_at),
                     "certificate_expires_at": latest_expiry(session, d.id)}
                    for d in live_devices(session, citizen_id)]

    def remove(self, citizen_id: str, device_id: str, now: float | None = None) -> list[str]:
        """Remove a device (lost, sold); its unexpired certificates go into the revocation feed.
        Returns their ids. The caller announces the feed change."""
        now = time.time() if now is None else now
        with self.db.session() as session:
            device = self._device(session, citizen_id, device_id)
            device.revoked_at = datetime.fromtimestamp(now, timezone.utc)
            revoked = unexpired_certificates(session, device.id, int(now) - 60)
            for cert_id in revoked:
                revocations.record(session, "code_revoked", f"{self.issuer}/{cert_id}", int(now))
            audit.append(session, actor_kind="citizen", actor_id=citizen_id, action="device_removed",
                         subject=citizens.get(session, citizen_id).pseudonym,
                         details={"device_id": device.id, "certificates": len(revoked)})
        return revoked

    # -- inside ----------------------------------------------------------------------------------
    def _device(self, session: Session, citizen_id: str, device_id: str) -> Device:
        device = session.get(Device, device_id)
        if device is None or device.citizen_id != citizen_id or device.revoked_at is not None:
            raise NotFound("No such device of mine.")
        return device

    def _certify(self, session: Session, citizen_id: str, device: Device, key: ec.EllipticCurvePublicKey,
                 now: float) -> CertifiedDevice:
        citizen = citizens.get(session, citizen_id)
        if citizen.status != citizens.ACTIVE:
            raise PermissionDenied("This citizen is suspended; no certificate is issued.")
        held = credentials.current_entitlements(session, citizen.id, datetime.fromtimestamp(now, timezone.utc))
        windows = [(row.valid_from, row.valid_until) for row in session.execute(
            select(Credential.valid_from, Credential.valid_until).where(
                Credential.citizen_id == citizen.id, Credential.status == credentials.ACTIVE))]
        until = certificate_until(now, self.cert_seconds, windows, bool(RESERVATIONS & set(held)))
        ring = self.keys.get()
        if ring.current.algorithm != "ES256":
            raise Unavailable("Device certificates need an ES256 signing key.")
        issued = issue_certificate(ring.signing_key, ring.current_kid, subject=citizen.pseudonym,  # type: ignore[arg-type]
                                   entitlements=held, device_key=key, now=now, expires_at=until)
        session.add(DeviceCertificate(cert_id=issued.cert_id, device_id=device.id,
                                      issued_at=issued.issued_at, expires_at=issued.expires_at))
        sealed, readers = None, ()
        if self.reader_keys is not None:  # the same facts as a v3 certificate, for CC3 codes
            sealed = issue_sealed_certificate(ring.signing_key, ring.current_kid, subject=citizen.pseudonym,  # type: ignore[arg-type]
                                              entitlements=held, device_key=key, now=now, expires_at=until)
            session.add(DeviceCertificate(cert_id=sealed.cert_id, device_id=device.id,
                                          issued_at=sealed.issued_at, expires_at=sealed.expires_at))
            readers = tuple(self.reader_keys.for_phones(now))
        refresh = issued.issued_at + max(60, (issued.expires_at - issued.issued_at) // 2)
        return CertifiedDevice(device.id, issued, refresh, sealed, readers)
