"""Models of the operator panel: users, audit log, API tokens, approvals, erasures."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.core.db import utcnow
from gateway.core.states import ApprovalDecision
from gateway.core.models import Base  # noqa: F401 - tables declared here share the schema


class User(Base):
    """A person who uses the panel. Roles: admin > approver > operator > viewer."""
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(12), default="viewer")
    language: Mapped[str] = mapped_column(String(8), default="it")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bumped by a password change or a disable: sessions carrying an older value end.
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class AuditEntry(Base):
    """Append-only: each entry's hash covers the previous hash and its own canonical JSON."""
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(40), index=True)
    target: Mapped[str | None] = mapped_column(String(120))
    details: Mapped[str] = mapped_column(Text, default="{}")  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class ApiToken(Base):
    """A token for other systems; only its SHA-256 is stored."""
    __tablename__ = "api_tokens"
    # Unique: the audit names the token that acted ("api:<name>").
    __table_args__ = (Index("ix_api_tokens_name", "name", unique=True),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))  # shown to admins to tell tokens apart
    role: Mapped[str] = mapped_column(String(12), default="operator")
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # The panel account the token acts for: disabled or removed, the token stops working.
    owner: Mapped[str | None] = mapped_column(String(80))
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class AlertApproval(Base):
    """Who asked for an alert, who decided, and why (two-person rule)."""
    __tablename__ = "alert_approvals"
    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    requested_by: Mapped[str] = mapped_column(String(80))
    requested_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    decision: Mapped[str] = mapped_column(String(12), default=ApprovalDecision.PENDING)  # an ApprovalDecision
    decided_by: Mapped[str | None] = mapped_column(String(80))
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    reason: Mapped[str | None] = mapped_column(Text)


class AlertText(Base):
    """A version of an alert in another language; recipients of that language get it instead
    of the alert's own (Italian) text and audio (gateway/core/store.py, Store.claim)."""
    __tablename__ = "alert_texts"
    __table_args__ = (UniqueConstraint("alert_id", "language", name="uq_alert_text_language"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    language: Mapped[str] = mapped_column(String(8))     # ISO 639-1, as in Contact.language
    text: Mapped[str] = mapped_column(Text)              # as the operator wrote it
    sms_text: Mapped[str] = mapped_column(Text)          # what goes out (drill prefix, transliteration)
    encoding: Mapped[str] = mapped_column(String(8))
    segments: Mapped[int] = mapped_column(Integer)
    # Voice: speech in this language (path without extension); None: the alert's own audio.
    audio_path: Mapped[str | None] = mapped_column(String(400))
    audio_seconds: Mapped[float | None] = mapped_column(Float)


class ErasedContacts(Base):
    """Anonymous counts kept when people are deleted: how many, from which zone, and when."""
    __tablename__ = "erased_contacts"
    id: Mapped[int] = mapped_column(primary_key=True)
    erased_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    zone: Mapped[str | None] = mapped_column(String(120))
    vulnerable: Mapped[bool] = mapped_column(Boolean, default=False)
    numbers: Mapped[int] = mapped_column(Integer, default=0)


class LoginThrottle(Base):
    """Refused sign-ins and API tokens counted per (scope, key): a name from an address, or an address.

    Kept in the database, not in a worker's memory: the count survives a restart and is shared by every
    worker serving the panel. ``audited`` is how many of ``failures`` the audit log has already been
    told about, so a flood of refusals writes a few summary entries, not one each.
    """
    __tablename__ = "login_throttle"
    __table_args__ = (UniqueConstraint("scope", "key", name="uq_login_throttle_scope_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(12))
    key: Mapped[str] = mapped_column(String(200))
    window_start: Mapped[dt.datetime] = mapped_column(DateTime)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    audited: Mapped[int] = mapped_column(Integer, default=0)
    blocked_until: Mapped[dt.datetime | None] = mapped_column(DateTime)
