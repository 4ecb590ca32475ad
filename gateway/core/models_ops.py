"""Models of the appliance: alarms raised about the box itself, runs of the scheduled self-test,
the engines (nodes) sharing the database."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.core.db import utcnow
from gateway.core.models import Base


class Alarm(Base):
    """Something wrong with the box (not with a recipient): shown on the dashboard, sent to on-call staff.

    ``kind``: modem_lost | sim_cap | ami_down | selftest_failed. One open alarm
    (``cleared_at`` NULL) per kind and subject; it is cleared when the cause goes away.
    """
    __tablename__ = "alarms"
    __table_args__ = (Index("ix_alarms_open", "kind", "subject", "cleared_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(64))       # line label, trunk, or 'asterisk'
    message: Mapped[str] = mapped_column(Text)
    raised_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    cleared_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # The priority SMS alert that told the on-call numbers (None: nobody on call configured).
    alert_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("alerts.id"))


class SelfTestRun(Base):
    """One self-test: a drill alert (test SMS and test call) to the staff numbers ([ops] selftest_numbers).

    ``result`` is NULL while the run waits for its outcome, then ``ok`` or ``failed``
    (``finished_at`` set); ``details`` is JSON: per channel, the count by delivery state
    and the numbers (masked) that were not reached, or the error that stopped the run.
    """
    __tablename__ = "selftest_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    trigger: Mapped[str] = mapped_column(String(16), default="schedule")   # schedule | cli
    alert_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("alerts.id", ondelete="SET NULL"))
    result: Mapped[str | None] = mapped_column(String(8))                  # NULL (running) | ok | failed
    details: Mapped[str | None] = mapped_column(Text)


class Node(Base):
    """One engine sharing the database (``[engine] node``), and its heartbeat.

    ``heartbeat_at`` is written with the database's clock (gateway.core.nodes.db_utcnow), never the
    node's: two boxes whose clocks disagree still agree on who is late. ``beats`` counts every
    heartbeat and every takeover, so a takeover is a conditional update on the count it saw (two
    survivors cannot both take the same node's work). ``state``: up | stopped (a clean stop) |
    down (stopped heartbeating; its work in flight was taken back by ``taken_over_by``).
    """
    __tablename__ = "nodes"
    __table_args__ = (UniqueConstraint("name", name="uq_nodes_name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(12))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(DateTime)
    beats: Mapped[int] = mapped_column(Integer, default=0)
    lease_seconds: Mapped[int] = mapped_column(Integer)
    taken_over_by: Mapped[str | None] = mapped_column(String(64))
    taken_over_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
