"""Tap tables: uploaded tap records, anomalies found in them, settled metro trips.

The schema is created by migration 0005; these classes only map it. No personal data: riders
are pseudonyms (``sub``), codes are ids (``jti``).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, Float, Index, Integer, String,
                        UniqueConstraint, false, text)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.models import Base

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
Id = BigInteger().with_variant(Integer(), "sqlite")
# The rows of ix_taps_fallback_received: offline accepts that tried online first, not superseded.
FALLBACK = ("request_id IS NOT NULL AND mode = 'offline' AND decision = 'accept' "
            "AND superseded = false")


class Tap(Base):
    """One reader decision, stored once per ``(terminal_id, seq)``.

    ``scanned_at`` is the reader's clock as reported; ``server_at`` is the same moment on the
    server's clock (``scanned_at - clock_offset_s``), the time every rule compares.
    ``pending_since`` is set while an offline metro accept waits to be part of a settled trip.
    ``superseded`` (migration 0009) flags an offline accept its own terminal had decided online
    (``app.taps.supersede``): kept, shown, never settled or billed.
    """

    __tablename__ = "taps"
    __table_args__ = (
        UniqueConstraint("terminal_id", "seq", name="uq_taps_terminal_seq"),
        Index("ix_taps_jti", "jti"),
        Index("ix_taps_sub_server_at", "sub", "server_at"),
        Index("ix_taps_pending_since", "pending_since"),
        Index("ix_taps_fallback_received", "received_at", sqlite_where=text(FALLBACK),
              postgresql_where=text(FALLBACK)),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    terminal_id: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    site: Mapped[dict[str, Any]] = mapped_column(JSON)
    iss: Mapped[str] = mapped_column(String(64))
    jti: Mapped[str | None] = mapped_column(String(128), nullable=True)
    sub: Mapped[str | None] = mapped_column(String(64), nullable=True)
    scanned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    server_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decision: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(32))
    direction: Mapped[str | None] = mapped_column(String(8), nullable=True)
    mode: Mapped[str] = mapped_column(String(8))
    ent: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    trust_version: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    trust_age_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    clock_offset_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    stale: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    digest: Mapped[str] = mapped_column(String(64))
    pending_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    superseded: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Anomaly(Base):
    """Something in the uploads an operator should look at; ``key`` makes each one appear once."""

    __tablename__ = "tap_anomalies"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    iss: Mapped[str | None] = mapped_column(String(64), nullable=True)
    jti: Mapped[str | None] = mapped_column(String(128), nullable=True)
    sub: Mapped[str | None] = mapped_column(String(64), nullable=True)
    terminal_id: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(BigInteger)
    detail: Mapped[str] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    found_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class SettledTrip(Base):
    """A metro trip with at least one offline end, priced at settlement.

    An end is a tap (``*_tap_id``, ``*_terminal_id``/``*_seq``) or an online gate decision from
    the audit log (``*_audit_seq``); ``status`` is ``settled`` (both ends), ``unpaired_entry`` or
    ``unpaired_exit``. ``anchor_at`` is the entry time, or the exit time without an entry.
    Rows are derived from the taps: a late tap that changes the pairing replaces them.
    """

    __tablename__ = "settled_trips"
    __table_args__ = (Index("ix_settled_trips_sub_anchor", "sub", "anchor_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)
    sub: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    anchor_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    entry_tap_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    entry_audit_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    entry_terminal_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    entry_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    entry_station: Mapped[str | None] = mapped_column(String(64), nullable=True)
    entered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    exit_tap_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    exit_audit_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    exit_terminal_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    exit_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    exit_station: Mapped[str | None] = mapped_column(String(64), nullable=True)
    exited_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    amount_cents: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(32))
    priced_by: Mapped[str] = mapped_column(String(16))  # "settlement" or "online_gate"
    settled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
