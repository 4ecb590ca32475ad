"""The engine's database operations: claiming work and recording what happened.

The database is the queue. Work is claimed with a conditional UPDATE (state
must still be 'pending'), so two engines sharing a database never take the
same delivery, and a delivery is 'submitting' on disk before its first byte
reaches a modem.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.channels import DeliveryFailed, LineStatus, SubmitReceipt
from gateway.db import utcnow
from gateway.models import Alert, Attempt, Delivery, InboundSms, Line, SmsPart
from gateway.retry import SmsRetryPolicy


@dataclass(frozen=True)
class ClaimedDelivery:
    delivery_id: int
    attempt_id: int
    alert_id: int
    e164: str
    text: str
    language: str
    possible_duplicate: bool
    attempts: int
    deadline: dt.datetime | None


class Store:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    # --- start-up -------------------------------------------------------
    def recover_interrupted(self, now: dt.datetime | None = None) -> int:
        """After a crash: whatever was 'submitting' may or may not have gone out.

        Send it again, flagged as a possible duplicate: a duplicate warning is
        better than a resident who never hears of the flood.
        """
        now = now or utcnow()
        with self.sessions.begin() as s:
            interrupted = s.execute(
                update(Delivery).where(Delivery.state == "submitting")
                .values(state="pending", possible_duplicate=True, next_attempt_at=now, updated_at=now,
                        last_error="interrupted by an engine stop; resent as a possible duplicate")
            ).rowcount
            s.execute(update(Attempt).where(Attempt.outcome == "in_flight")
                      .values(outcome="interrupted", ended_at=now, possible_duplicate=True,
                              error="engine stopped while this attempt was in flight"))
        return interrupted

    # --- claiming ---------------------------------------------------------
    def claim(self, channel: str, limit: int, now: dt.datetime | None = None) -> list[ClaimedDelivery]:
        if limit <= 0:
            return []
        now = now or utcnow()
        with self.sessions.begin() as s:
            candidates = s.execute(
                select(Delivery.id).where(
                    Delivery.channel == channel, Delivery.state == "pending",
                    or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now))
                .order_by(Delivery.sort_key, Delivery.id).limit(limit)
            ).scalars().all()
            if not candidates:
                return []
            claimed_ids = s.execute(
                update(Delivery).where(Delivery.id.in_(candidates), Delivery.state == "pending")
                .values(state="submitting", claimed_at=now, updated_at=now,
                        submissions=Delivery.submissions + 1)
                .returning(Delivery.id)
            ).scalars().all()
            if not claimed_ids:
                return []
            rows = s.execute(
                select(Delivery.id, Delivery.alert_id, Delivery.e164, Delivery.language,
                       Delivery.possible_duplicate, Delivery.attempts, Alert.sms_text, Alert.deadline)
                .join(Alert, Alert.id == Delivery.alert_id)
                .where(Delivery.id.in_(claimed_ids)).order_by(Delivery.sort_key, Delivery.id)
            ).all()
            attempts = [Attempt(delivery_id=r.id, channel=channel, started_at=now,
                                possible_duplicate=r.possible_duplicate) for r in rows]
            s.add_all(attempts)
            s.flush()
            return [ClaimedDelivery(r.id, a.id, r.alert_id, r.e164, r.sms_text, r.language,
                                    r.possible_duplicate, r.attempts, r.deadline)
                    for r, a in zip(rows, attempts)]

    # --- outcomes ---------------------------------------------------------
    def record_sent(self, claim: ClaimedDelivery, receipt: SubmitReceipt) -> None:
        now = utcnow()
        parts = len(receipt.references)
        with self.sessions.begin() as s:
            s.execute(update(Delivery).where(Delivery.id == claim.delivery_id).values(
                state="sent", line=receipt.line, sent_at=now, updated_at=now, attempts=Delivery.attempts + 1,
                parts_total=parts, parts_delivered=0, last_error=None))
            s.execute(update(Attempt).where(Attempt.id == claim.attempt_id).values(
                outcome="sent", line=receipt.line, ended_at=now))
            s.add_all(SmsPart(delivery_id=claim.delivery_id, attempt_id=claim.attempt_id, line=receipt.line,
                              part=i + 1, parts=parts, reference=ref, sent_at=now)
                      for i, ref in enumerate(receipt.references))

    def record_failure(self, claim: ClaimedDelivery, failure: DeliveryFailed, policy: SmsRetryPolicy) -> str:
        """Store a failed attempt; returns the delivery's new state."""
        now = utcnow()
        charged = claim.attempts + (1 if failure.charge_attempt else 0)
        reason = failure.reason if failure.code is None else f"{failure.reason} [{failure.code}]"
        if failure.permanent:
            state, next_at = "failed", None
        else:
            next_at = policy.next_attempt(charged, now, deadline=claim.deadline, charged=failure.charge_attempt)
            state = "pending" if next_at else "failed"
            if next_at is None:
                reason = f"gave up after {charged} attempts: {reason}"
        with self.sessions.begin() as s:
            s.execute(update(Attempt).where(Attempt.id == claim.attempt_id).values(
                outcome="failed", line=failure.line, ended_at=now, error=failure.reason, cause=failure.code,
                permanent=failure.permanent))
            values = dict(state=state, attempts=charged, next_attempt_at=next_at, last_error=reason, updated_at=now,
                          line=failure.line)
            if failure.possible_duplicate:
                values["possible_duplicate"] = True
            s.execute(update(Delivery).where(Delivery.id == claim.delivery_id, Delivery.state == "submitting")
                      .values(**values))
        return state

    def release(self, claim: ClaimedDelivery) -> None:
        """Give back a claim that never reached a line (engine stopping)."""
        with self.sessions.begin() as s:
            s.execute(update(Delivery).where(Delivery.id == claim.delivery_id, Delivery.state == "submitting")
                      .values(state="pending", submissions=Delivery.submissions - 1))
            s.execute(update(Attempt).where(Attempt.id == claim.attempt_id)
                      .values(outcome="interrupted", ended_at=utcnow(), error="not started: engine stopping"))

    def record_status_report(self, line: str, reference: int, delivered: bool, detail: str) -> bool:
        """Match a status report to the latest part sent with that TP-MR on that line."""
        now = utcnow()
        with self.sessions.begin() as s:
            part = s.execute(select(SmsPart).where(SmsPart.line == line, SmsPart.reference == reference,
                                                   SmsPart.status == "sent")
                             .order_by(SmsPart.id.desc()).limit(1)).scalar_one_or_none()
            if part is None:
                return False
            part.status = "delivered" if delivered else "failed"
            part.reported_at = now
            s.flush()
            delivery = s.get(Delivery, part.delivery_id)
            if delivery is None or delivery.state not in ("sent", "pending", "submitting"):
                return True
            if not delivered:
                if delivery.state == "sent":
                    delivery.state = "failed"
                    delivery.last_error = f"status report: not delivered ({detail})"
                    delivery.updated_at = now
                return True
            done = s.execute(select(func.count()).select_from(SmsPart).where(
                SmsPart.attempt_id == part.attempt_id, SmsPart.status == "delivered")).scalar_one()
            delivery.parts_delivered = done
            if done >= part.parts and delivery.state == "sent":
                delivery.state = "delivered"
                delivery.delivered_at = now
            delivery.updated_at = now
        return True

    def record_inbound(self, line: str, sender: str, text: str, received_at: dt.datetime) -> None:
        with self.sessions.begin() as s:
            s.add(InboundSms(line=line, sender=sender, text=text, received_at=received_at))

    def record_line_status(self, status: LineStatus, rate_per_minute: float | None = None) -> None:
        now = utcnow()
        values = dict(channel=status.channel, state=status.state, port=status.port, imei=status.imei,
                      signal=status.signal, registration=status.registration, operator=status.operator,
                      sim_state=status.sim_state, last_error=status.last_error, sent_today=status.sent_today,
                      daily_cap=status.daily_cap, sent_total=status.sent_total, failed_total=status.failed_total,
                      in_use=status.in_use, limit=status.limit, rate_per_minute=rate_per_minute, updated_at=now)
        with self.sessions.begin() as s:
            line = s.execute(select(Line).where(Line.label == status.label)).scalar_one_or_none()
            if line is None:
                s.add(Line(label=status.label, **values))
            else:
                for key, value in values.items():
                    setattr(line, key, value)

    # --- questions the engine asks ------------------------------------------
    def sent_today_by_line(self, since: dt.datetime) -> dict[str, int]:
        with self.sessions() as s:
            rows = s.execute(select(SmsPart.line, func.count()).where(SmsPart.sent_at >= since)
                             .group_by(SmsPart.line)).all()
        return {line: count for line, count in rows}

    def work_left(self, channel: str) -> tuple[int, int, dt.datetime | None]:
        """(deliveries not finished sending, deliveries awaiting status reports, next retry time)."""
        with self.sessions() as s:
            unsent = s.execute(select(func.count()).select_from(Delivery).where(
                Delivery.channel == channel, Delivery.state.in_(("pending", "submitting")))).scalar_one()
            awaiting = s.execute(select(func.count()).select_from(Delivery).where(
                Delivery.channel == channel, Delivery.state == "sent")).scalar_one()
            next_at = s.execute(select(func.min(Delivery.next_attempt_at)).where(
                and_(Delivery.channel == channel, Delivery.state == "pending"))).scalar_one()
        return unsent, awaiting, next_at
