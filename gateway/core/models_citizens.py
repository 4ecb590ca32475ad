"""Models of the citizens' side of SMS: what they write to us, and what we answer.

The database is the hand-off, as for alerts: the modem's worker commits each
received part (``inbound_parts``) before the modem deletes its copy; parts are
assembled into one ``inbound_sms`` row; the engine reads unprocessed rows, acts
on them (opt-out, registration, confirmation, help request, vote) and writes
the reply into ``sms_replies`` in the same transaction, which the SMS dispatcher
sends below alerts in priority. A crash anywhere repeats a step, never skips one:
the fingerprints make a part read twice count once.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.core.db import utcnow
from gateway.core.models import Base
from gateway.core.states import ReplyState


class InboundPart(Base):
    """One received segment, committed before the modem deletes it.

    A message without a concatenation header is one part (reference 0, parts 1, seq 1).
    ``fingerprint`` (sender, SMSC time stamp, reference, parts, seq, text) is unique, so a
    part read again after a crash between commit and delete is stored once.
    """
    __tablename__ = "inbound_parts"
    __table_args__ = (Index("ix_inbound_parts_group", "sender", "reference", "parts", "message_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    line: Mapped[str] = mapped_column(String(64))
    sender: Mapped[str] = mapped_column(String(32))
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime)        # SMSC time stamp, UTC
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    reference: Mapped[int] = mapped_column(Integer, default=0)           # UDH concat reference (8 or 16 bit)
    parts: Mapped[int] = mapped_column(Integer, default=1)
    seq: Mapped[int] = mapped_column(Integer, default=1)
    text: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    # The message it became part of; NULL while the other parts are awaited.
    message_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_sms.id", ondelete="CASCADE"), index=True)


class SmsReply(Base):
    """An SMS we answer with (automatic or an operator's): queued like any delivery, sent below alerts.

    ``submitting`` rows found at start-up were in flight when the engine stopped: they go
    back to pending flagged ``possible_duplicate``.
    """
    __tablename__ = "sms_replies"
    __table_args__ = (Index("ix_sms_replies_claim", "state", "next_attempt_at", "id"),
                      Index("ix_sms_replies_number", "e164", "created_at"))
    id: Mapped[int] = mapped_column(primary_key=True)
    e164: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(24))                      # a ReplyReason
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_sms.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80), default="engine")  # engine | an operator's name
    state: Mapped[str] = mapped_column(String(12), default=ReplyState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    node: Mapped[str | None] = mapped_column(String(64))   # the engine that claimed it (as deliveries.node)
    line: Mapped[str | None] = mapped_column(String(64))
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    possible_duplicate: Mapped[bool] = mapped_column(Boolean, default=False)


class PollVote(Base):
    """One vote per number per poll: the last answer before the poll closed."""
    __tablename__ = "poll_votes"
    __table_args__ = (UniqueConstraint("alert_id", "e164", name="uq_poll_vote_once"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    e164: Mapped[str] = mapped_column(String(32))
    option: Mapped[int] = mapped_column(Integer)                         # 1-based, as the citizen wrote it
    voted_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    channel: Mapped[str] = mapped_column(String(8), default="sms")       # sms | voice (keypress, hotline)
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_sms.id", ondelete="SET NULL"))
    changes: Mapped[int] = mapped_column(Integer, default=0)             # how many times the vote was changed


class HelpRequest(Base):
    """A citizen asking for help after an alert: a red alarm until an operator marks it handled."""
    __tablename__ = "help_requests"
    __table_args__ = (Index("ix_help_requests_open", "handled_at", "received_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_sms.id", ondelete="SET NULL"), index=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"), index=True)
    e164: Mapped[str] = mapped_column(String(32))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(8), default="sms")
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    handled_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    handled_by: Mapped[str | None] = mapped_column(String(80))
    note: Mapped[str | None] = mapped_column(Text)


class SmsConversation(Base):
    """What the last reply to a number asked for (the numbered zone list), until it expires."""
    __tablename__ = "sms_conversations"
    e164: Mapped[str] = mapped_column(String(32), primary_key=True)
    expects: Mapped[str] = mapped_column(String(16))                     # zone_choice
    data: Mapped[str] = mapped_column(Text, default="{}")                # JSON: the options offered, page, language
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)
