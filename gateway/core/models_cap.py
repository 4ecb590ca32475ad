"""Models of civil-protection integration: CAP messages seen, election periods."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.core.db import utcnow
from gateway.core.models import Base


class CapMessage(Base):
    """A CAP 1.2 document received (file, API, watched directory, feed), and what it became.

    (sender, identifier, sent) is unique: the same message seen again is ignored, idempotently.
    ``outcome``: draft | update | cancel | refused | ignored; ``detail`` says why or what.
    """
    __tablename__ = "cap_messages"
    __table_args__ = (UniqueConstraint("sender", "identifier", "sent", name="uq_cap_message_once"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    sender: Mapped[str] = mapped_column(String(300))
    identifier: Mapped[str] = mapped_column(String(300))
    sent: Mapped[str] = mapped_column(String(40))                   # as written in the document
    msg_type: Mapped[str] = mapped_column(String(12))                # Alert | Update | Cancel | Ack | Error
    status: Mapped[str] = mapped_column(String(12))                  # Actual | Exercise | System | Test | Draft
    source: Mapped[str] = mapped_column(String(300))                 # file path, api:<token>, inbox:<file>, feed URL
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"), index=True)
    outcome: Mapped[str] = mapped_column(String(12))
    detail: Mapped[str | None] = mapped_column(Text)
    xml: Mapped[str] = mapped_column(Text)


class ElectionPeriod(Base):
    """From the calling of an election to the close of the polls (law 28/2000, art. 9): information
    messages need an approver's reason; emergencies go as always. Times are naive UTC."""
    __tablename__ = "election_periods"
    id: Mapped[int] = mapped_column(primary_key=True)
    starts_at: Mapped[dt.datetime] = mapped_column(DateTime)
    ends_at: Mapped[dt.datetime] = mapped_column(DateTime)
    description: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
