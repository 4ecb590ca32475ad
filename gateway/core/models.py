"""SQLAlchemy models. Times are naive UTC (see db.utcnow)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (Boolean, Column, Date, DateTime, Float, ForeignKey, Index, Integer,
                        String, Table, Text, UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from gateway.core.db import utcnow
from gateway.core.states import (AlertCategory, AlertState, AttemptOutcome, Channel, DeliveryState, LineState, PartStatus,
                                 join_channels, parse_channels)


class Base(DeclarativeBase):
    pass


contact_groups = Table(
    "contact_groups", Base.metadata,
    Column("contact_id", ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
)

contact_numbers = Table(
    "contact_numbers", Base.metadata,
    Column("contact_id", ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True),
    Column("number_id", ForeignKey("numbers.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_contact_numbers_number", "number_id"),
)


class Zone(Base):
    __tablename__ = "zones"
    __table_args__ = (UniqueConstraint("code", name="uq_zones_code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    # ISTAT municipality code (6 digits) or the town's own zone code: how CAP <geocode> names it.
    code: Mapped[str | None] = mapped_column(String(32))
    # A GeoJSON Polygon or MultiPolygon in WGS 84 (lon, lat), validated on import (zones import-geojson).
    geometry: Mapped[str | None] = mapped_column(Text)


class Group(Base):
    __tablename__ = "groups"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)


class Contact(Base):
    __tablename__ = "contacts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    zone_id: Mapped[int | None] = mapped_column(ForeignKey("zones.id", ondelete="SET NULL"), index=True)
    language: Mapped[str] = mapped_column(String(8), default="it")
    vulnerable: Mapped[bool] = mapped_column(Boolean, default=False)
    needs: Mapped[str | None] = mapped_column(String(16))  # text_only | voice_only
    address: Mapped[str | None] = mapped_column(String(300))
    consent_date: Mapped[dt.date | None] = mapped_column(Date)
    consent_source: Mapped[str | None] = mapped_column(String(120))
    consent_at: Mapped[dt.datetime | None] = mapped_column(DateTime)    # self-registration: when, to the second
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    zone: Mapped[Zone | None] = relationship()
    groups: Mapped[list[Group]] = relationship(secondary=contact_groups)
    numbers: Mapped[list[PhoneNumberRow]] = relationship(secondary=contact_numbers, back_populates="contacts")


class PhoneNumberRow(Base):
    """One dialable number; shared by every contact of a household."""
    __tablename__ = "numbers"
    id: Mapped[int] = mapped_column(primary_key=True)
    e164: Mapped[str] = mapped_column(String(20), unique=True)
    kind: Mapped[str] = mapped_column(String(10))  # mobile | landline
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    # STOP INFO: information messages no more, emergencies still come.
    opted_out_info: Mapped[bool] = mapped_column(Boolean, default=False)
    opted_out_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    opted_out_via: Mapped[str | None] = mapped_column(String(16))      # sms | phone | panel | cli

    contacts: Mapped[list[Contact]] = relationship(secondary=contact_numbers, back_populates="numbers")


class Alert(Base):
    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(80), default="cli")
    text: Mapped[str] = mapped_column(Text)            # as the operator wrote it
    sms_text: Mapped[str] = mapped_column(Text)        # what goes out (drill prefix, transliteration)
    encoding: Mapped[str] = mapped_column(String(8))   # GSM-7 | UCS-2
    segments: Mapped[int] = mapped_column(Integer)
    channels: Mapped[str] = mapped_column(String(20))  # 'sms', 'voice', 'sms,voice': see delivery_channels
    target: Mapped[str] = mapped_column(Text)          # JSON description of who
    drill: Mapped[bool] = mapped_column(Boolean, default=False)
    priority: Mapped[bool] = mapped_column(Boolean, default=False)
    # 'awaiting_approval' is 17 characters: 20 on PostgreSQL, which enforces it (migration 0011); SQLite
    # keeps the declared 16 of its existing files (it does not enforce lengths, and widening there would
    # copy the table).
    state: Mapped[str] = mapped_column(String(16).with_variant(String(20), "postgresql"),
                                       default=AlertState.ACTIVE)  # an AlertState
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    deadline: Mapped[dt.datetime | None] = mapped_column(DateTime)
    max_attempts: Mapped[int] = mapped_column(Integer)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    # Voice: the rendered message (8 kHz WAV, path without extension for Playback) and its policy.
    # The policy columns (max_attempts, voice_*, stop_on_confirm, sms_fallback) have no default here:
    # AlertService sets them from the request, whose defaults are the configuration schema's.
    audio_path: Mapped[str | None] = mapped_column(String(400))
    audio_seconds: Mapped[float | None] = mapped_column(Float)
    audio_source: Mapped[str | None] = mapped_column(String(16))   # tts | recording
    voice_interval: Mapped[float] = mapped_column(Float)
    voice_growth: Mapped[float] = mapped_column(Float)
    voice_cap: Mapped[int] = mapped_column(Integer)
    stop_on_confirm: Mapped[bool] = mapped_column(Boolean)
    sms_fallback: Mapped[bool] = mapped_column(Boolean)
    # Sent at a chosen time: its deliveries wait with next_attempt_at = send_at (None: at once).
    send_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # A correction or all-clear goes to the numbers the alert it follows went to.
    follows_alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"), index=True)
    follow_up: Mapped[str | None] = mapped_column(String(16))  # correction | all_clear
    # A draft belongs to its author (created_by); shared, other operators may submit or cancel it too.
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    # Citizens' answers: an SMS "OK"/"1" confirms when the alert asks for it (voice alerts always do);
    # a poll is a question with numbered options (JSON list of strings), open until poll_closes_at.
    asks_confirmation: Mapped[bool] = mapped_column(Boolean, default=False)
    poll_question: Mapped[str | None] = mapped_column(Text)
    poll_options: Mapped[str | None] = mapped_column(Text)
    poll_closes_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # An AlertCategory; for an emergency, what it is about (a CapCategory, CAP's <category>).
    category: Mapped[str] = mapped_column(String(12), default=AlertCategory.EMERGENCY)
    cap_category: Mapped[str | None] = mapped_column(String(12))
    # An information message sent during an election period: the approver's reason it is impersonal
    # and indispensable (law 28/2000, art. 9), and who gave it.
    election_reason: Mapped[str | None] = mapped_column(Text)
    election_reason_by: Mapped[str | None] = mapped_column(String(80))

    @property
    def delivery_channels(self) -> tuple[Channel, ...]:
        """The channels the alert goes out on, in the order they were asked for."""
        return parse_channels(self.channels)

    @delivery_channels.setter
    def delivery_channels(self, channels: tuple[str, ...] | list[str]) -> None:
        self.channels = join_channels(channels)


class Delivery(Base):
    """One recipient number on one channel of one alert: the unit of work."""
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("alert_id", "number_id", "channel", name="uq_delivery_once"),
        # The claim query: pending work of a channel in priority order.
        Index("ix_deliveries_claim", "channel", "state", "sort_key", "id"),
        # Progress by channel and state of one alert: the dashboard, status and the panel.
        Index("ix_deliveries_alert_channel_state", "alert_id", "channel", "state"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    number_id: Mapped[int] = mapped_column(ForeignKey("numbers.id"))
    e164: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(8))  # a Channel
    # A DeliveryState: pending | submitting | sent | delivered | failed | cancelled;
    # voice ends as confirmed | answered | voicemail | failed
    state: Mapped[str] = mapped_column(String(12), default=DeliveryState.PENDING)
    sort_key: Mapped[int] = mapped_column(Integer, default=3)  # lower goes first
    vulnerable: Mapped[bool] = mapped_column(Boolean, default=False)
    language: Mapped[str] = mapped_column(String(8), default="it")
    # The number's zone when the alert went out (the first by name when a household
    # spans two), kept here like `vulnerable`: the alert page counts 100,000
    # deliveries by zone, and a zone renamed or a contact moved later does not
    # rewrite where the alert was sent.
    zone: Mapped[str | None] = mapped_column(String(120))
    attempts: Mapped[int] = mapped_column(Integer, default=0)       # charged to the recipient
    # Every try, charged or not; counted at claim time, so a voice number is never
    # called more than the alert's cap even across crashes.
    submissions: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    possible_duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    duplicate_cause: Mapped[str | None] = mapped_column(String(32))  # a DuplicateCause, with the flag
    last_error: Mapped[str | None] = mapped_column(Text)
    line: Mapped[str | None] = mapped_column(String(64))
    parts_total: Mapped[int] = mapped_column(Integer, default=0)
    parts_delivered: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # The engine (``[engine] node``) that last claimed it: while 'submitting', its work in flight,
    # leased for as long as that node heartbeats (gateway.core.nodes).
    node: Mapped[str | None] = mapped_column(String(64))
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class Attempt(Base):
    __tablename__ = "attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(8))
    line: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    answered_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # An AttemptOutcome: in_flight | sent | failed | interrupted | confirmed | answered | ...
    outcome: Mapped[str] = mapped_column(String(16), default=AttemptOutcome.IN_FLIGHT)
    cause: Mapped[str | None] = mapped_column(String(32))   # a call's Q.850 cause, as digits
    error: Mapped[str | None] = mapped_column(Text)          # str() of the gateway.core.failures.Failure
    permanent: Mapped[bool] = mapped_column(Boolean, default=False)
    possible_duplicate: Mapped[bool] = mapped_column(Boolean, default=False)


class SmsPart(Base):
    """One submitted segment and its TP-MR, matched against status reports."""
    __tablename__ = "sms_parts"
    __table_args__ = (Index("ix_sms_parts_lookup", "line", "reference", "status"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"), index=True)
    # Indexed: every status report counts its attempt's delivered parts.
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id", ondelete="CASCADE"), index=True)
    line: Mapped[str] = mapped_column(String(64))
    part: Mapped[int] = mapped_column(Integer)
    parts: Mapped[int] = mapped_column(Integer)
    reference: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), default=PartStatus.SENT)  # a PartStatus
    sent_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    reported_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class Line(Base):
    """Health of a modem or trunk, written by the engine, read by CLI and panel."""
    __tablename__ = "lines"
    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(8))
    label: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(16), default=LineState.STARTING)
    port: Mapped[str | None] = mapped_column(String(200))
    imei: Mapped[str | None] = mapped_column(String(20))
    signal: Mapped[int | None] = mapped_column(Integer)
    registration: Mapped[str | None] = mapped_column(String(16))
    operator: Mapped[str | None] = mapped_column(String(64))
    sim_state: Mapped[str | None] = mapped_column(String(32))
    smsc: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_today: Mapped[int] = mapped_column(Integer, default=0)
    daily_cap: Mapped[int | None] = mapped_column(Integer)
    sent_total: Mapped[int] = mapped_column(Integer, default=0)
    failed_total: Mapped[int] = mapped_column(Integer, default=0)
    in_use: Mapped[int] = mapped_column(Integer, default=0)
    limit: Mapped[int | None] = mapped_column(Integer)
    rate_per_minute: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # The engine that drives it (``[engine] node``); labels are unique across nodes.
    node: Mapped[str | None] = mapped_column(String(64))


class InboundSms(Base):
    """One incoming message (its parts assembled), and what was made of it (see models_citizens)."""
    __tablename__ = "inbound_sms"
    __table_args__ = (Index("ix_inbound_sms_unhandled", "handled", "id"),
                      Index("ix_inbound_sms_sender", "sender", "received_at"))
    id: Mapped[int] = mapped_column(primary_key=True)
    line: Mapped[str] = mapped_column(String(64))
    sender: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    handled: Mapped[bool] = mapped_column(Boolean, default=False)      # processed by the citizens' service
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime)       # SMSC time stamp of the first part
    parts: Mapped[int] = mapped_column(Integer, default=1)
    incomplete: Mapped[bool] = mapped_column(Boolean, default=False)   # a part never came: what arrived is kept
    kind: Mapped[str | None] = mapped_column(String(16))                # an InboundKind, once handled
    outcome: Mapped[str | None] = mapped_column(Text)                   # what was made of it, for the Inbox
    handled_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # The most recent alert sent to this number, when the message is a reply to it.
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))


# Tables of the panel and of the appliance live in their own modules but in
# the same schema; importing them here makes every table known to Alembic.
from gateway.core import models_cap, models_citizens, models_ops, models_panel  # noqa: E402,F401
