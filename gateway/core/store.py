"""The engine's database operations: claiming work and recording what happened.

The database is the queue. Work is claimed with a conditional UPDATE (state
must still be 'pending'; on PostgreSQL its candidates are locked FOR UPDATE SKIP
LOCKED), so two engines sharing a database never take the same delivery, and a
delivery is 'submitting' on disk, stamped with the node that claimed it, before
its first byte reaches a modem.
"""
from __future__ import annotations

import datetime as dt
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from sqlalchemy import Boolean, and_, bindparam, case, delete, exists, func, insert, or_, select, true, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

from gateway.core.channels import DeliveryFailed, LineStatus, StatusReport, SubmitReceipt
from gateway.core.config import default_node_name
from gateway.core.db import utcnow
from gateway.core.models import Alert, Attempt, Delivery, Line, PhoneNumberRow, SmsPart
from gateway.core.models_panel import AlertText
from gateway.core.quiet_hours import QuietHours
from gateway.core.retry import AlertPolicy, RetryVerdict
from gateway.core.states import (OPEN_DELIVERY_STATES, AlertCategory, AlertState, AttemptOutcome, Channel,
                                 DeliveryState, DuplicateCause, PartStatus, parse_channels)


def _alert_policy(alert) -> AlertPolicy:  # noqa: ANN001 - an Alert or a row with its columns
    return AlertPolicy(max_attempts=alert.max_attempts, deadline=alert.deadline, voice_interval=alert.voice_interval,
                       voice_growth=alert.voice_growth, voice_cap=alert.voice_cap,
                       stop_on_confirm=alert.stop_on_confirm, sms_fallback=alert.sms_fallback)


@dataclass(frozen=True)
class ClaimedDelivery:
    delivery_id: int
    attempt_id: int
    alert_id: int
    number_id: int
    channel: Channel
    e164: str
    text: str
    language: str
    audio_path: str | None
    possible_duplicate: bool
    attempts: int
    submissions: int          # including this one
    policy: AlertPolicy


# The engine's hot path runs these several hundred times a second; building a
# SQLAlchemy expression costs more than executing it (profiled at 64 modems), so
# they are built once, with bound parameters.
#
# A delivery is only claimed while its alert still wants it: not cancelled, and
# before the alert's deadline. The one exception is the SMS fallback of a
# voice-only alert: voice giving up at the deadline is what creates it, so the
# deadline must not stop it too. (The join is on the alerts primary key; the
# deliveries side still walks ix_deliveries_claim in order.)
#
# Candidates are chosen and taken in one UPDATE ... WHERE id IN (SELECT ... LIMIT n)
# RETURNING: one statement fewer per claim on the event loop's hot path.
_CANDIDATE = Delivery.__table__.alias("candidate")
#
# During quiet hours no information message is taken (``information_allowed`` false): the sweep
# (hold_quiet_information) moves their next_attempt_at to the morning, and this keeps a retry that
# comes due in between from slipping out.
_ALERT_WANTS_IT = and_(
    Alert.state != AlertState.CANCELLED,
    or_(Alert.deadline.is_(None), Alert.deadline > bindparam("now"),
        and_(_CANDIDATE.c.channel == Channel.SMS, Alert.channels == Channel.VOICE)),
    or_(Alert.category != AlertCategory.INFORMATION, bindparam("information_allowed", type_=Boolean)))
_CANDIDATES = (
    select(_CANDIDATE.c.id).join(Alert, Alert.id == _CANDIDATE.c.alert_id)
    .where(_CANDIDATE.c.channel == bindparam("for_channel"), _CANDIDATE.c.state == DeliveryState.PENDING,
           or_(_CANDIDATE.c.next_attempt_at.is_(None), _CANDIDATE.c.next_attempt_at <= bindparam("now")),
           _ALERT_WANTS_IT)
    .order_by(_CANDIDATE.c.sort_key, _CANDIDATE.c.id).limit(bindparam("limit")))
# Several engines on one PostgreSQL claim at once: each locks the candidates it picked and skips those
# another is taking (FOR UPDATE OF the deliveries only: a locked alert row, the panel editing it, must
# not hide its deliveries), so two claims neither wait for each other nor come back short. The
# conditional UPDATE (state still 'pending') stays the guarantee. SQLite (one engine) renders no
# FOR UPDATE at all. A MATERIALIZED CTE, not a subquery: PostgreSQL may scan an IN (subquery) again
# for each row it updates, and a locking scan skips the rows this very statement has just updated,
# so a claim of 1 took 2 (found by tests/test_nodes.py).
_PICKED = (_CANDIDATES.with_for_update(skip_locked=True, of=_CANDIDATE).cte("picked")
           .prefix_with("MATERIALIZED", dialect="postgresql"))
# Alerts past their deadline; their pending deliveries are closed by expire_past_deadline.
_EXPIRED_ALERTS = select(Alert.id).where(Alert.state == AlertState.ACTIVE, Alert.deadline.is_not(None),
                                         Alert.deadline <= bindparam("now"))
# How often claim() looks for alerts past their deadline: the claim query already
# skips them, so this only has to make their rows final, not be instant.
EXPIRY_SWEEP_SECONDS = 1.0
DEADLINE_PASSED = "deadline passed"
# The last_error of an SMS written because voice gave up (what marks it as a fallback).
FALLBACK_REASON = "fallback: voice call not confirmed"
_TAKE = (
    update(Delivery).where(Delivery.id.in_(select(_PICKED.c.id)), Delivery.state == DeliveryState.PENDING)
    .values(state=DeliveryState.SUBMITTING, claimed_at=bindparam("claimed"), updated_at=bindparam("claimed"),
            submissions=Delivery.submissions + 1, node=bindparam("claimer"))
    .returning(Delivery.id))
# The recipient's language version of the alert (alert_texts) when it has one;
# otherwise (no row, or a version without its own audio) the alert's own text and audio.
_CLAIMED_ROWS = (
    select(Delivery.id, Delivery.alert_id, Delivery.number_id, Delivery.e164, Delivery.language,
           Delivery.possible_duplicate, Delivery.attempts, Delivery.submissions,
           Alert.sms_text, Alert.audio_path, Alert.max_attempts, Alert.deadline, Alert.voice_interval,
           Alert.voice_growth, Alert.voice_cap, Alert.stop_on_confirm, Alert.sms_fallback,
           AlertText.sms_text.label("version_text"), AlertText.audio_path.label("version_audio"))
    .join(Alert, Alert.id == Delivery.alert_id)
    .outerjoin(AlertText, and_(AlertText.alert_id == Delivery.alert_id, AlertText.language == Delivery.language))
    .where(Delivery.id.in_(bindparam("ids", expanding=True))).order_by(Delivery.sort_key, Delivery.id))
_NEW_ATTEMPTS = insert(Attempt).returning(Attempt.id, sort_by_parameter_order=True)
# A status report is two statements in the common (single-part) case: every one of
# them costs the event loop a GIL hand-back among ~130 modem threads, which made the
# report path most of the engine's CPU at 64 modems. The part is found and marked in
# one UPDATE (the newest 'sent' part with that TP-MR on that line), then its delivery
# is updated by primary key, returning what the log line names; a delivery no longer
# 'sent' (already failed, cancelled) keeps its state (SET sees the row as it was).
_LATEST_SENT_PART = SmsPart.__table__.alias("latest")
_MARK_PART_FOR_REPORT = (
    update(SmsPart)
    .where(SmsPart.id == select(_LATEST_SENT_PART.c.id)
           .where(_LATEST_SENT_PART.c.line == bindparam("on_line"),
                  _LATEST_SENT_PART.c.reference == bindparam("tp_mr"),
                  _LATEST_SENT_PART.c.status == PartStatus.SENT)
           .order_by(_LATEST_SENT_PART.c.id.desc()).limit(1).scalar_subquery())
    .values(status=bindparam("new_status"), reported_at=bindparam("at"))
    .returning(SmsPart.delivery_id, SmsPart.attempt_id, SmsPart.parts))
_STILL_SENT = Delivery.state == DeliveryState.SENT
_NOT_DELIVERED = (
    update(Delivery).where(Delivery.id == bindparam("delivery_id"))
    .values(state=case((_STILL_SENT, DeliveryState.FAILED), else_=Delivery.state),
            last_error=case((_STILL_SENT, bindparam("why")), else_=Delivery.last_error), updated_at=bindparam("at"))
    .returning(Delivery.alert_id, Delivery.e164))
_PARTS_DELIVERED = (select(func.count()).select_from(SmsPart)
                    .where(SmsPart.attempt_id == bindparam("attempt_id"), SmsPart.status == PartStatus.DELIVERED))
_PARTS_REPORTED = (
    update(Delivery).where(Delivery.id == bindparam("delivery_id"))
    .values(state=case((and_(_STILL_SENT, bindparam("all_done")), DeliveryState.DELIVERED), else_=Delivery.state),
            delivered_at=case((and_(_STILL_SENT, bindparam("all_done")), bindparam("at")), else_=Delivery.delivered_at),
            parts_delivered=bindparam("done"), updated_at=bindparam("at"))
    .returning(Delivery.alert_id, Delivery.e164))

_SMS_ATTEMPT_SENT = (update(Attempt).where(Attempt.id == bindparam("attempt_id"))
                     .values(outcome=AttemptOutcome.SENT, line=bindparam("via"), ended_at=bindparam("at"),
                             started_at=bindparam("began")))
# Only while this node still holds it: one whose work was taken over (it stopped heartbeating, see
# gateway.core.nodes) may be another node's claim by now.
_SMS_DELIVERY_SENT = (
    update(Delivery).where(Delivery.id == bindparam("delivery_id"), Delivery.state == DeliveryState.SUBMITTING,
                           Delivery.node == bindparam("claimer"))
    .values(state=DeliveryState.SENT, next_attempt_at=None, updated_at=bindparam("at"), sent_at=bindparam("at"),
            attempts=Delivery.attempts + bindparam("charge"), line=bindparam("via"), last_error=None,
            parts_total=bindparam("parts"), parts_delivered=0))
_NEW_PARTS = insert(SmsPart)

def alert_work_waiting(connection: Connection, channel: Channel, now: dt.datetime, *,
                       information_allowed: bool = True) -> bool:
    """Whether a delivery of ``channel`` is waiting to be claimed now: the claim's own query, so
    whatever goes below alerts (answers to citizens) waits for exactly what claim() would take
    (``information_allowed`` false during quiet hours, as claim() passes it)."""
    return connection.execute(_CANDIDATES, {"for_channel": channel, "now": now, "limit": 1,
                                            "information_allowed": information_allowed}).first() is not None


def _cause_column(cause: int | None) -> str | None:
    """attempts.cause holds a call's Q.850 cause as digits (the panel labels them)."""
    return None if cause is None else str(cause)


@dataclass(frozen=True)
class ReportMatch:
    """The delivery a status report belonged to (for its log line)."""
    alert_id: int
    delivery_id: int
    e164: str


FINAL_VOICE_RANK = {DeliveryState.CONFIRMED: 3, DeliveryState.ANSWERED: 2, DeliveryState.VOICEMAIL: 1}
# Voice delivery states a better call outcome may replace (never 'cancelled', 'submitting').
_UPGRADABLE_VOICE_STATES = (DeliveryState.PENDING, DeliveryState.FAILED, DeliveryState.ANSWERED,
                            DeliveryState.VOICEMAIL)


def _best_voice_outcomes(s: Session, delivery_ids: list[int]) -> dict[int, str]:
    """Delivery id -> the best outcome any of its calls had, for those that had one."""
    best: dict[int, str] = {}
    if not delivery_ids:
        return best
    for delivery_id, outcome in s.execute(select(Attempt.delivery_id, Attempt.outcome).where(
            Attempt.delivery_id.in_(delivery_ids), Attempt.outcome.in_(tuple(FINAL_VOICE_RANK)))):
        if FINAL_VOICE_RANK[outcome] > FINAL_VOICE_RANK.get(best.get(delivery_id, ""), 0):
            best[delivery_id] = outcome
    return best


def _drop_unneeded_fallback(s: Session, alert_id: int, number_id: int, now: dt.datetime) -> None:
    """The call was confirmed after all (learned late): the SMS fallback written when voice gave up
    is not sent if it has not left yet. One already on its way or sent stays as it is."""
    s.execute(update(Delivery).where(
        Delivery.alert_id == alert_id, Delivery.number_id == number_id, Delivery.channel == Channel.SMS,
        Delivery.state == DeliveryState.PENDING, Delivery.last_error == FALLBACK_REASON).values(
        state=DeliveryState.CANCELLED, updated_at=now, next_attempt_at=None,
        last_error="fallback not needed: the call was confirmed (learned after the call)"))


class Store:
    def __init__(self, sessions: sessionmaker[Session], *, report_wait_seconds: float = 600.0,
                 quiet_hours: QuietHours | None = None, node: str | None = None,
                 single_node: bool = False) -> None:
        self.sessions = sessions
        # SQLite: one engine owns the whole file, so a restart recovers every row in flight, whatever node
        # name claimed it (the box renamed, [engine] node changed between a crash and the restart).
        self.single_node = single_node
        # The engine this store claims for ([engine] node): stamped on every claim; what a restart
        # recovers and what a result may update are this node's rows only.
        self.node = node or default_node_name()
        self.quiet_hours = quiet_hours
        # An SMS sent this long ago without its status report is not waited for any more
        # when judging whether an alert still has something to do ([engine] report_timeout).
        self.report_wait = dt.timedelta(seconds=report_wait_seconds)
        self._next_expiry_sweep = 0.0
        self._expired_alerts: set[int] = set()   # already swept: no pending row comes back

    @contextmanager
    def _core(self) -> Iterator[Connection]:
        """One transaction for the prebuilt hot-path statements, executed as Core.

        Through ``Session.execute`` an UPDATE of a mapped class takes the ORM's
        bulk path (synchronising the identity map, evaluating the WHERE clause in
        Python), which cost more than the statement itself at 64 modems; these
        statements touch no loaded object, so the connection runs them directly.
        """
        with self.sessions.begin() as s:
            yield s.connection()

    # --- start-up -------------------------------------------------------
    def recover_interrupted(self, now: dt.datetime | None = None, *, placed_ahead: set[int] | None = None) -> int:
        """After a crash: whatever this node left 'submitting' may or may not have gone out.

        Send it again, flagged as a possible duplicate: a duplicate warning is
        better than a resident who never hears of the flood. Except:
        - an alert cancelled meanwhile: its rows end 'cancelled', as they would
          have had the attempt finished (Store.record_result);
        - a voice number that already had its alert's cap of calls is not called
          again: it ends with the best outcome its calls had, else 'failed', and
          a mobile not confirmed gets the SMS fallback when the alert asks for it,
          as when voice gives up while the engine runs.
        Attempts claimed ahead ('claimed', see ``claim``) are given back unflagged, the call not
        counted, unless ``placed_ahead`` (the engine's PlacingJournal) lists them as handed to a
        line; with no list (None) every one counts as placed.
        Other nodes' work in flight is theirs (``take_over`` when they stop heartbeating); rows
        with no node were claimed before nodes existed, by the engine that ran then.
        """
        owned = true() if self.single_node else or_(Delivery.node == self.node, Delivery.node.is_(None))
        with self.sessions.begin() as s:
            return self._recover(s, owned, now or utcnow(),
                                 placed_ahead, DuplicateCause.ENGINE_RESTART, "an engine stop")

    def take_over(self, s: Session, node: str, now: dt.datetime | None = None) -> int:
        """In the caller's transaction (the one that marked ``node`` down, conditionally, so only
        one survivor gets here): ``node``'s work in flight, as its own restart would recover it.
        Its claims ahead count as placed (its journal is on its own disk): the per-number call cap
        is never exceeded for not knowing. Returns how many go out again."""
        return self._recover(s, Delivery.node == node, now or utcnow(), None, DuplicateCause.NODE_DOWN,
                             f"node {node} stopping (it stopped heartbeating; taken over by {self.node})")

    def _recover(self, s: Session, owned, now: dt.datetime, placed_ahead: set[int] | None,  # noqa: ANN001
                 cause: DuplicateCause, stopped_by: str) -> int:
        """recover_interrupted for the deliveries ``owned`` (a condition on Delivery) selects."""
        owned_ids = select(Delivery.id).where(owned)
        claimed = s.execute(select(Attempt.delivery_id, Attempt.id).where(
            Attempt.outcome == AttemptOutcome.CLAIMED, Attempt.delivery_id.in_(owned_ids))).all()
        # Never handed to a line: they go back as a normal stop gives them back.
        never_placed = [r for r in claimed if placed_ahead is not None and r.id not in placed_ahead]
        self._give_back(s, [r.delivery_id for r in never_placed], [r.id for r in never_placed], now, owned)
        placed = [r.id for r in claimed if placed_ahead is None or r.id in placed_ahead]
        if placed:   # as any attempt that may have gone out (below)
            s.execute(update(Attempt).where(Attempt.id.in_(placed)).values(outcome=AttemptOutcome.IN_FLIGHT))
        cancelled = select(Alert.id).where(Alert.state == AlertState.CANCELLED)
        s.execute(update(Delivery).where(Delivery.state == DeliveryState.SUBMITTING, owned,
                                         Delivery.alert_id.in_(cancelled))
                  .values(state=DeliveryState.CANCELLED, next_attempt_at=None, possible_duplicate=True, updated_at=now,
                          duplicate_cause=cause,
                          last_error=f"alert cancelled ({stopped_by} during the attempt)"))
        at_cap = s.execute(
            select(Delivery.id, Delivery.alert_id, Delivery.number_id, Delivery.language, Alert.sms_fallback)
            .join(Alert, Alert.id == Delivery.alert_id)
            .where(Delivery.state == DeliveryState.SUBMITTING, Delivery.channel == Channel.VOICE, owned,
                   Delivery.submissions >= Alert.voice_cap)).all()
        if at_cap:
            s.execute(update(Delivery).where(Delivery.id.in_([r.id for r in at_cap]))
                      .values(state=DeliveryState.FAILED, possible_duplicate=True, updated_at=now, next_attempt_at=None,
                              duplicate_cause=cause,
                              last_error=f"{stopped_by} during the last call allowed by the cap"))
            self._voice_gave_up(s, at_cap)
        interrupted = s.execute(
            update(Delivery).where(Delivery.state == DeliveryState.SUBMITTING, owned)
            .values(state=DeliveryState.PENDING, possible_duplicate=True, next_attempt_at=now, updated_at=now,
                    duplicate_cause=cause,
                    last_error=f"interrupted by {stopped_by}; resent as a possible duplicate")
        ).rowcount
        s.execute(update(Attempt).where(Attempt.outcome == AttemptOutcome.IN_FLIGHT, Attempt.delivery_id.in_(owned_ids))
                  .values(outcome=AttemptOutcome.INTERRUPTED, ended_at=now, possible_duplicate=True,
                          error=f"{stopped_by} while this attempt was in flight"))
        return interrupted

    # --- claiming ---------------------------------------------------------
    def claim(self, channel: Channel, limit: int, now: dt.datetime | None = None, *,
              ahead: bool = False) -> list[ClaimedDelivery]:
        """Take up to ``limit`` deliveries: 'submitting', their attempt rows written. With ``ahead``
        the attempts are 'claimed' (not 'in_flight') until their result is recorded, so that a
        restart can give back those never handed to a line (``recover_interrupted``)."""
        if limit <= 0:
            return []
        now = now or utcnow()
        quiet = self.quiet_hours.period(now) if self.quiet_hours is not None else None
        if time.monotonic() >= self._next_expiry_sweep:
            self._next_expiry_sweep = time.monotonic() + EXPIRY_SWEEP_SECONDS
            if quiet is not None:
                self.hold_quiet_information(now)
            self.expire_past_deadline(now)
            self.complete_finished_alerts(now)
        with self._core() as s:
            claimed_ids = s.execute(_TAKE, {"for_channel": channel, "now": now, "limit": limit, "claimer": self.node,
                                            "claimed": now, "information_allowed": quiet is None}).scalars().all()
            if not claimed_ids:
                return []
            rows = s.execute(_CLAIMED_ROWS, {"ids": claimed_ids}).all()
            attempt_ids = s.execute(
                _NEW_ATTEMPTS, [{"delivery_id": r.id, "channel": channel, "started_at": now,
                                 "outcome": AttemptOutcome.CLAIMED if ahead else AttemptOutcome.IN_FLIGHT,
                                 "possible_duplicate": r.possible_duplicate} for r in rows],
            ).scalars().all()
            return [ClaimedDelivery(r.id, attempt_id, r.alert_id, r.number_id, channel, r.e164,
                                    r.version_text or r.sms_text, r.language,
                                    r.version_audio or r.audio_path, r.possible_duplicate, r.attempts,
                                    r.submissions, _alert_policy(r))
                    for r, attempt_id in zip(rows, attempt_ids)]

    def release_claims(self, claims: list[ClaimedDelivery], now: dt.datetime | None = None) -> int:
        """Give back claims that were never handed to a line (the engine's claim-ahead buffer at
        a stop, or after their alert was cancelled): their attempt rows go, as nothing was tried,
        and each delivery is 'pending' again, or 'cancelled' with its cancelled alert. Returns
        how many were given back."""
        if not claims:
            return 0
        with self.sessions.begin() as s:
            return self._give_back(s, [claim.delivery_id for claim in claims],
                                   [claim.attempt_id for claim in claims], now or utcnow())

    def _give_back(self, s: Session, delivery_ids: list[int], attempt_ids: list[int], now: dt.datetime,
                   owned=None) -> int:  # noqa: ANN001 - a condition on Delivery; None: this node's
        if not delivery_ids:
            return 0
        # Only the deliveries whose attempt is still open: one recovered meanwhile (after a database
        # outage, by a restart or another node) is someone else's now.
        delivery_ids = list(s.scalars(select(Attempt.delivery_id).where(
            Attempt.id.in_(attempt_ids), Attempt.outcome.in_((AttemptOutcome.CLAIMED, AttemptOutcome.IN_FLIGHT)))))
        if not delivery_ids:
            return 0
        s.execute(delete(Attempt).where(Attempt.id.in_(attempt_ids),
                                        Attempt.outcome.in_((AttemptOutcome.CLAIMED, AttemptOutcome.IN_FLIGHT))))
        # Only what this node still holds: a claim taken over meanwhile may be another node's by now.
        owned = Delivery.node == self.node if owned is None else owned
        released = s.execute(
            update(Delivery).where(Delivery.id.in_(delivery_ids), Delivery.state == DeliveryState.SUBMITTING, owned)
            .values(state=DeliveryState.PENDING, submissions=Delivery.submissions - 1, updated_at=now)).rowcount
        alert_ids = s.scalars(select(Delivery.alert_id).where(Delivery.id.in_(delivery_ids)).distinct()).all()
        s.execute(update(Delivery).where(
            Delivery.id.in_(delivery_ids), Delivery.state == DeliveryState.PENDING,
            Delivery.alert_id.in_(select(Alert.id).where(Alert.state == AlertState.CANCELLED)))
            .values(state=DeliveryState.CANCELLED, next_attempt_at=None, last_error="alert cancelled"))
        # An alert whose deadline passed meanwhile was swept without these rows: sweep it again.
        self._expired_alerts.difference_update(alert_ids)
        self._next_expiry_sweep = 0.0
        return released

    def unwanted_alerts(self, alert_ids: set[int], channel: Channel = Channel.SMS,
                        now: dt.datetime | None = None) -> set[int]:
        """Which of these alerts want nothing sent on ``channel`` now (cancelled, past their deadline:
        the SMS fallback of a voice-only alert goes after it, as in ``claim``; or information during
        quiet hours: claimed just before they began, given back to wait for the morning)."""
        if not alert_ids:
            return set()
        now = now or utcnow()
        quiet = self.quiet_hours is not None and self.quiet_hours.period(now) is not None
        past_deadline = and_(Alert.deadline.is_not(None), Alert.deadline <= now)
        if channel == Channel.SMS:
            past_deadline = and_(past_deadline, Alert.channels != Channel.VOICE)
        with self.sessions() as s:
            return set(s.scalars(select(Alert.id).where(Alert.id.in_(alert_ids), or_(
                Alert.state == AlertState.CANCELLED, past_deadline,
                *([Alert.category == AlertCategory.INFORMATION] if quiet else [])))))

    # --- quiet hours ------------------------------------------------------
    def hold_quiet_information(self, now: dt.datetime | None = None) -> int:
        """During quiet hours, move every waiting delivery of an active information alert to the end
        of them (what the panel shows as "held until 08:00"); returns how many were moved.

        An alert whose deadline falls inside the quiet period gets back, in the morning, the time it had
        left when they began: a water-cut notice started at 20:50 with an hour to go finishes after 08:00
        instead of expiring in the night. Running it again changes nothing (the deadline is then after
        the period's end, and the deliveries already wait until it)."""
        now = now or utcnow()
        period = self.quiet_hours.period(now) if self.quiet_hours is not None else None
        if period is None:
            return 0
        start, end = period
        information = select(Alert.id).where(Alert.category == AlertCategory.INFORMATION,
                                             Alert.state == AlertState.ACTIVE)
        with self.sessions.begin() as s:
            for alert in s.scalars(select(Alert).where(Alert.id.in_(information), Alert.deadline.is_not(None),
                                                       Alert.deadline > now, Alert.deadline <= end)):
                alert.deadline = end + (alert.deadline - max(start, alert.send_at or start))
            return s.execute(update(Delivery).where(
                Delivery.alert_id.in_(information), Delivery.state == DeliveryState.PENDING,
                or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at < end))
                .values(next_attempt_at=end, updated_at=now)).rowcount

    # --- deadlines --------------------------------------------------------
    def complete_finished_alerts(self, now: dt.datetime | None = None) -> int:
        """Mark ``completed`` (with the time) every active alert that has nothing left to do:
        no delivery waiting or in flight, and no SMS still waiting for its status report
        (sent less than ``report_wait`` ago). One that gets work again (a retry after a late
        failure report) goes back to ``active``. Returns how many were completed."""
        now = now or utcnow()
        open_work = exists().where(Delivery.alert_id == Alert.id, or_(
            Delivery.state.in_(OPEN_DELIVERY_STATES),
            and_(Delivery.state == DeliveryState.SENT, Delivery.updated_at > now - self.report_wait)))
        with self.sessions.begin() as s:
            s.execute(update(Alert).where(Alert.state == AlertState.COMPLETED, open_work)
                      .values(state=AlertState.ACTIVE, completed_at=None))
            return s.execute(update(Alert).where(Alert.state == AlertState.ACTIVE, ~open_work)
                             .values(state=AlertState.COMPLETED, completed_at=now)).rowcount

    def expire_past_deadline(self, now: dt.datetime | None = None) -> int:
        """Close the pending deliveries of alerts past their deadline; returns how many.

        The claim query no longer takes them, so without this they would stay
        'pending' for ever (and 'allerta run --once' would wait for them). A voice
        number ends with the best outcome its calls had, else 'failed'; a mobile
        not confirmed gets the SMS fallback when the alert asks for it.
        """
        now = now or utcnow()
        closed = 0
        with self.sessions.begin() as s:
            alert_ids = [alert_id for alert_id in s.execute(_EXPIRED_ALERTS, {"now": now}).scalars()
                         if alert_id not in self._expired_alerts]
            if not alert_ids:
                return 0
            rows = s.execute(
                select(Delivery.id, Delivery.alert_id, Delivery.number_id, Delivery.e164, Delivery.channel,
                       Delivery.language, Alert.sms_fallback, Alert.channels)
                .join(Alert, Alert.id == Delivery.alert_id)
                .where(Delivery.alert_id.in_(alert_ids), Delivery.state == DeliveryState.PENDING)).all()
            # A voice-only alert's SMS fallback is what the deadline leaves behind: it still goes.
            rows = [r for r in rows
                    if not (r.channel == Channel.SMS and parse_channels(r.channels) == (Channel.VOICE,))]
            if rows:
                closed = s.execute(update(Delivery).where(
                    Delivery.id.in_([r.id for r in rows]), Delivery.state == DeliveryState.PENDING).values(
                    state=DeliveryState.FAILED, next_attempt_at=None, last_error=DEADLINE_PASSED,
                    updated_at=now)).rowcount
                self._voice_gave_up(s, [r for r in rows if r.channel == Channel.VOICE])
        self._expired_alerts.update(alert_ids)
        return closed

    # --- outcomes ---------------------------------------------------------
    def record_result(self, claim: ClaimedDelivery, verdict: RetryVerdict, *, receipt: SubmitReceipt | None = None,
                      failure: DeliveryFailed | None = None) -> DeliveryState:
        """Store one attempt's outcome and the delivery's next state; returns that state."""
        now = utcnow()
        state = verdict.state
        if receipt is not None and receipt.references and state == DeliveryState.SENT:
            self._record_sms_sent(claim, receipt, verdict, now)
            return state
        with self.sessions.begin() as s:
            attempt_values: dict = {"ended_at": now}
            delivery_values: dict = {"state": state, "next_attempt_at": verdict.next_attempt_at,
                                     "updated_at": now,
                                     "attempts": Delivery.attempts + (1 if verdict.charged else 0)}
            if not verdict.placed:
                # Counted at claim time, but no call or message left us: give it back.
                delivery_values["submissions"] = Delivery.submissions - 1
            if receipt is not None:
                attempt_values.update(outcome=receipt.outcome, line=receipt.line, cause=_cause_column(receipt.cause),
                                      answered_at=receipt.answered_at, started_at=receipt.started_at or now)
                delivery_values.update(line=receipt.line, last_error=verdict.reason, sent_at=now)
                if receipt.references:
                    parts = len(receipt.references)
                    delivery_values.update(parts_total=parts, parts_delivered=0)
                    s.add_all(SmsPart(delivery_id=claim.delivery_id, attempt_id=claim.attempt_id,
                                      line=receipt.line, part=i + 1, parts=parts, reference=ref, sent_at=now)
                              for i, ref in enumerate(receipt.references))
                if state == DeliveryState.CONFIRMED:
                    delivery_values["delivered_at"] = now
            if failure is not None:
                attempt_values.update(outcome=failure.outcome, line=failure.line, error=failure.reason,
                                      cause=_cause_column(failure.cause),
                                      permanent=failure.permanent, possible_duplicate=failure.possible_duplicate,
                                      answered_at=failure.answered_at)
                if failure.started_at is not None:
                    # When the line started it (the originate), not when the engine claimed it.
                    attempt_values["started_at"] = failure.started_at
                delivery_values.update(line=failure.line, last_error=verdict.reason or failure.reason)
                if failure.possible_duplicate:
                    delivery_values["possible_duplicate"] = True
                    delivery_values["duplicate_cause"] = failure.duplicate_cause
            # Written first: from here on this transaction holds the write lock, so the
            # alert's state read next cannot change before the delivery is updated. These
            # statements go to the connection (see _core): every call ends here.
            conn = s.connection()
            conn.execute(update(Attempt).where(Attempt.id == claim.attempt_id).values(**attempt_values))
            if claim.channel == Channel.VOICE and state in _UPGRADABLE_VOICE_STATES:
                # The best thing that happened on any call wins: giving up ends with it, and
                # a confirmation learned on an earlier call (after a restart, an AMI gap)
                # is never turned into another try or a failure by a later one.
                best = _best_voice_outcomes(s, [claim.delivery_id]).get(claim.delivery_id)
                if best == DeliveryState.CONFIRMED or (
                        best and state != DeliveryState.PENDING
                        and FINAL_VOICE_RANK[best] > FINAL_VOICE_RANK.get(state, 0)):
                    state = DeliveryState(best)
                    delivery_values.update(state=state, next_attempt_at=None)
            cancelled = conn.scalar(select(Alert.state).where(Alert.id == claim.alert_id)) == AlertState.CANCELLED
            if cancelled and state in (DeliveryState.PENDING, DeliveryState.FAILED):
                # Cancelled while this attempt was in flight: the attempt stays on record,
                # but nothing more is tried and nothing falls back to SMS.
                state = DeliveryState.CANCELLED
                delivery_values.update(state=state, next_attempt_at=None,
                                       last_error=f"alert cancelled ({delivery_values.get('last_error') or state})")
            conn.execute(update(Delivery).where(Delivery.id == claim.delivery_id,
                                                Delivery.state == DeliveryState.SUBMITTING, Delivery.node == self.node)
                         .values(**delivery_values))
            if (claim.channel == Channel.VOICE and not cancelled
                    and state not in (DeliveryState.PENDING, DeliveryState.CONFIRMED)
                    and claim.policy.sms_fallback):
                self._fall_back_to_sms(s, claim.alert_id, claim.number_id, claim.language)
        return state

    def record_late_call_outcome(self, attempt_id: int, outcome: AttemptOutcome, *, line: str | None = None,
                                 answered_at: dt.datetime | None = None, cause: int | None = None,
                                 now: dt.datetime | None = None) -> DeliveryState | None:
        """What was learned later about a call no submit is waiting for any more (one still up
        after an engine restart, a result read back after an AMI gap): it upgrades its attempt
        and its delivery, never downgrades them. A confirmation ends the delivery 'confirmed'
        whatever was decided meanwhile (even 'failed' at the cap); a lesser outcome only
        improves a delivery already closed. Returns the delivery's state, None for no such attempt."""
        now = now or utcnow()
        with self.sessions.begin() as s:
            row = s.execute(select(Attempt.delivery_id, Attempt.outcome).where(Attempt.id == attempt_id)).first()
            if row is None:
                return None
            rank = FINAL_VOICE_RANK.get(outcome, 0)
            if row.outcome in (AttemptOutcome.IN_FLIGHT, AttemptOutcome.INTERRUPTED) or \
                    rank > FINAL_VOICE_RANK.get(row.outcome, 0):
                s.execute(update(Attempt).where(Attempt.id == attempt_id).values(
                    outcome=outcome, line=line, answered_at=answered_at, cause=_cause_column(cause), ended_at=now,
                    error=None if rank else Attempt.error))
            delivery = s.execute(select(Delivery.state, Delivery.alert_id, Delivery.number_id)
                                 .where(Delivery.id == row.delivery_id)).first()
            state = DeliveryState(delivery.state)
            if outcome == AttemptOutcome.CONFIRMED:
                _drop_unneeded_fallback(s, delivery.alert_id, delivery.number_id, now)
            if state not in _UPGRADABLE_VOICE_STATES or rank <= FINAL_VOICE_RANK.get(state, 0):
                return state
            if outcome != AttemptOutcome.CONFIRMED and state == DeliveryState.PENDING:
                return state   # still to be called: the policy decides what 'answered' is worth
            values: dict = {"state": outcome, "updated_at": now, "next_attempt_at": None,
                            "last_error": f"{outcome} (learned after the call: engine restart or AMI gap)"}
            if outcome == AttemptOutcome.CONFIRMED:
                values["delivered_at"] = now
            s.execute(update(Delivery).where(Delivery.id == row.delivery_id, Delivery.state == state).values(**values))
            return DeliveryState(outcome)

    def _record_sms_sent(self, claim: ClaimedDelivery, receipt: SubmitReceipt, verdict: RetryVerdict,
                         now: dt.datetime) -> None:
        """The common case, with prebuilt statements: an SMS the modem accepted."""
        with self._core() as s:
            s.execute(_SMS_ATTEMPT_SENT, {"attempt_id": claim.attempt_id, "at": now, "via": receipt.line,
                                          "began": receipt.started_at or now})
            s.execute(_SMS_DELIVERY_SENT, {"delivery_id": claim.delivery_id, "at": now, "via": receipt.line,
                                           "claimer": self.node,
                                           "charge": 1 if verdict.charged else 0,
                                           "parts": len(receipt.references)})
            s.execute(_NEW_PARTS, [{"delivery_id": claim.delivery_id, "attempt_id": claim.attempt_id,
                                    "line": receipt.line, "part": i + 1, "parts": len(receipt.references),
                                    "reference": ref, "status": PartStatus.SENT, "sent_at": now}
                                   for i, ref in enumerate(receipt.references)])

    def _voice_gave_up(self, s: Session, rows) -> None:  # noqa: ANN001 - rows with the columns used below
        """Voice deliveries just closed 'failed' without another call: each ends with the best
        outcome its calls had, and a mobile not confirmed gets the SMS if its alert asks for it."""
        best = _best_voice_outcomes(s, [r.id for r in rows])
        for delivery_id, outcome in best.items():
            s.execute(update(Delivery).where(Delivery.id == delivery_id).values(state=outcome))
        for r in rows:
            if r.sms_fallback and best.get(r.id) != DeliveryState.CONFIRMED:
                self._fall_back_to_sms(s, r.alert_id, r.number_id, r.language)

    def _fall_back_to_sms(self, s: Session, alert_id: int, number_id: int, language: str) -> None:
        """Voice gave up on a mobile: it gets the SMS version (once)."""
        number = s.get(PhoneNumberRow, number_id)
        # An opted-out number (or one erased from the panel while its call was up)
        # gets nothing more, whatever the delivery row still holds.
        if number is None or number.kind != "mobile" or number.opted_out:
            return
        exists_already = s.scalar(select(func.count()).select_from(Delivery).where(
            Delivery.alert_id == alert_id, Delivery.number_id == number_id, Delivery.channel == Channel.SMS))
        if not exists_already:
            zone = s.scalar(select(Delivery.zone).where(Delivery.alert_id == alert_id, Delivery.number_id == number_id,
                                                        Delivery.channel == Channel.VOICE))
            s.add(Delivery(alert_id=alert_id, number_id=number_id, e164=number.e164, channel=Channel.SMS, zone=zone,
                           state=DeliveryState.PENDING, sort_key=0, language=language, attempts=0, submissions=0,
                           possible_duplicate=False, parts_total=0, parts_delivered=0,
                           last_error=FALLBACK_REASON))

    def record_status_report(self, line: str, reference: int, delivered: bool,
                             detail: str) -> ReportMatch | None:
        """Match a status report to the latest part sent with that TP-MR on that line;
        None when no part waits for it."""
        return self.record_status_reports(line, [StatusReport(reference, delivered, detail)])[0]

    def record_status_reports(self, line: str, reports: list[StatusReport]) -> list[ReportMatch | None]:
        """Several reports from one line in one transaction (a modem collects them in
        batches); for each, what it matched or None."""
        now = utcnow()
        matches: list[ReportMatch | None] = []
        with self._core() as s:
            for report in reports:
                part = s.execute(_MARK_PART_FOR_REPORT, {
                    "on_line": line, "tp_mr": report.reference, "at": now,
                    "new_status": PartStatus.DELIVERED if report.delivered else PartStatus.FAILED}).first()
                if part is None:
                    matches.append(None)
                    continue
                if not report.delivered:
                    row = s.execute(_NOT_DELIVERED, {"delivery_id": part.delivery_id, "at": now,
                                                     "why": f"status report: not delivered ({report.detail})"}).one()
                else:
                    # One part (the usual SMS) needs no count: it is this one.
                    done = 1 if part.parts == 1 else s.execute(_PARTS_DELIVERED,
                                                               {"attempt_id": part.attempt_id}).scalar_one()
                    row = s.execute(_PARTS_REPORTED, {"delivery_id": part.delivery_id, "done": done, "at": now,
                                                      "all_done": done >= part.parts}).one()
                matches.append(ReportMatch(row.alert_id, part.delivery_id, row.e164))
        return matches

    def record_line_statuses(self, statuses: list[LineStatus]) -> None:
        """Upsert the health of several lines in one transaction."""
        now = utcnow()
        with self.sessions.begin() as s:
            existing = {line.label: line for line in s.scalars(
                select(Line).where(Line.label.in_([status.label for status in statuses])))}
            for status in statuses:
                values = dict(channel=status.channel, state=status.state, port=status.port, imei=status.imei,
                              signal=status.signal, registration=status.registration, operator=status.operator,
                              sim_state=status.sim_state, smsc=status.smsc, last_error=status.last_error,
                              sent_today=status.sent_today, daily_cap=status.daily_cap,
                              sent_total=status.sent_total, failed_total=status.failed_total,
                              in_use=status.in_use, limit=status.limit, rate_per_minute=status.rate_per_minute,
                              updated_at=now, node=self.node)
                line = existing.get(status.label)
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

    def work_left(self, channel: Channel) -> tuple[int, int, dt.datetime | None]:
        """(deliveries not finished sending, deliveries awaiting status reports, next retry time)."""
        with self.sessions() as s:
            unsent = s.execute(select(func.count()).select_from(Delivery).where(
                Delivery.channel == channel, Delivery.state.in_(OPEN_DELIVERY_STATES))).scalar_one()
            awaiting = s.execute(select(func.count()).select_from(Delivery).where(
                Delivery.channel == channel, Delivery.state == DeliveryState.SENT)).scalar_one()
            next_at = s.execute(select(func.min(Delivery.next_attempt_at)).where(
                and_(Delivery.channel == channel, Delivery.state == DeliveryState.PENDING))).scalar_one()
        return unsent, awaiting, next_at
