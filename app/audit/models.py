"""Audit tables. The schema is created by migrations 0004, 0007 and 0008; these classes only map it."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index, Integer, SmallInteger, String
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


class AuditLeaf(Base):
    """One leaf of the audit Merkle tree: the contiguous rows ``first_seq..last_seq`` (migration
    0008; bytes and hash as ``app.audit.leaves`` defines them). ``hash`` = the RFC 9162 leaf hash."""

    __tablename__ = "audit_leaves"

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    first_seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    rows_root: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditNode(Base):
    """A complete subtree's hash: ``2**level`` leaves from leaf ``idx * 2**level`` (level 0: the
    leaf hashes). Written once, never changed (``app.audit.tree_store.SqlNodeStore``)."""

    __tablename__ = "audit_nodes"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))


class AuditTreeHead(Base):
    """A signed tree head (``app.audit.tree_head``); ``signature`` base64url, ``timestamp`` ms."""

    __tablename__ = "audit_tree_heads"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    tree_size: Mapped[int] = mapped_column(BigInteger, index=True)
    root_hash: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[int] = mapped_column(BigInteger)
    kid: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))


class AuditHeadKey(Base):
    """The public JWK of a key that signed a tree head, kept forever (``GET /v1/audit/keys``)."""

    __tablename__ = "audit_head_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    first_used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
