"""Audit tables. The schema is created by migration 0004; these classes only map it."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.models import Base


class AuditEntry(Base):
    """One audited event. ``hash`` chains it to the entry before it (``prev_hash``).

    No personal data here, ever: the subject is the citizen's pseudonym, and details hold
    decisions, credential types and ids, never names, ID numbers or credential numbers.
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_subject_seq", "subject", "seq"),)

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str | None] = mapped_column(String(32), nullable=True)
    site: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    purpose: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # The scan record's id (app.records) for entries drained from the scan-record stream: unique,
    # so a record drained twice is stored once (migration 0007). None for every other entry.
    record_id: Mapped[str | None] = mapped_column(String(32), nullable=True, unique=True)


class AuditHead(Base):
    """The single row (id 1) naming the newest entry; locking it serializes appends."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
