"""Durable device state: a citizen's registered phone keys and the certificates issued for them.

The tables are created by migration 0013. A device's public key is stored as its uncompressed
P-256 point (65 bytes) and is unique: one key, one device. Certificates are kept (id, device,
validity) so a removed device's unexpired certificates can be named in the revocation feed.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, LargeBinary, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.db.models import Base


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    citizen_id: Mapped[str] = mapped_column(ForeignKey("citizens.id"), index=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(65), unique=True)
    label: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class DeviceCertificate(Base):
    __tablename__ = "device_certificates"

    cert_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    issued_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)


def live_devices(session: Session, citizen_id: str) -> list[Device]:
    return list(session.scalars(select(Device).where(Device.citizen_id == citizen_id,
                                                     Device.revoked_at.is_(None))
                                .order_by(Device.created_at)))


def by_key(session: Session, public_key: bytes) -> Device | None:
    return session.scalar(select(Device).where(Device.public_key == public_key))


def latest_expiry(session: Session, device_id: str) -> int | None:
    return session.scalar(select(DeviceCertificate.expires_at).where(DeviceCertificate.device_id == device_id)
                          .order_by(DeviceCertificate.expires_at.desc()).limit(1))


def unexpired_certificates(session: Session, device_id: str, now: int) -> list[str]:
    return list(session.scalars(select(DeviceCertificate.cert_id).where(
        DeviceCertificate.device_id == device_id, DeviceCertificate.expires_at >= now)))
