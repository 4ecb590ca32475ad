"""The figures behind an alert's pictures: reach over time, outcomes by call, reach by zone. No Flask.

The alert page draws them live and the after-action report prints them, so both read the
same numbers from here. Everything is counted in SQL (one scan of the alert's deliveries
per figure, grouped into at most ``MAX_BUCKETS`` time buckets): an alert to 100,000
people costs a few aggregate queries, never 100,000 rows in Python.

What "reached" means is the panel's (``REACHED_DELIVERY_STATES``); the ETA is the one
of ``allerta alert status`` and the panel (gateway.core.capacity), from the rates the
lines last reported.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import Integer, and_, case, cast, func, literal, or_, select
from sqlalchemy.orm import Session

from gateway.core import line_health
from gateway.core.capacity import current_rates, estimate, remaining
from gateway.core.db import utcnow
from gateway.core.door_knock import door_knock_list
from gateway.core.models import Alert, Attempt, Contact, Delivery, Zone
from gateway.core.models_citizens import HelpRequest
from gateway.core.states import REACHED_DELIVERY_STATES, AlertState, AttemptOutcome, Channel, DeliveryState

MAX_BUCKETS = 60
# Bucket widths a person reads without arithmetic: seconds, then minutes, then hours.
NICE_STEPS = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
# What each channel's two curves count: (measure, the time column it is drawn at).
# SMS: accepted by the network, then delivered (status report); voice: answered by a person
# (or a machine), then confirmed (pressed 1).
MEASURES = {Channel.SMS: ("sent", "delivered"), Channel.VOICE: ("answered", "confirmed")}
# Tries that were not calls: nothing was placed, so they are not "the 1st, 2nd... call".
NOT_A_CALL = (AttemptOutcome.CLAIMED, AttemptOutcome.NO_LINE, AttemptOutcome.NO_ROUTE)
ANSWERED_BY_A_PERSON = (AttemptOutcome.ANSWERED, AttemptOutcome.CONFIRMED)


@dataclass(frozen=True)
class Curve:
    """One cumulative count over time: ``points`` are (seconds since ``ReachSeries.start``, count)."""
    channel: str
    measure: str                  # sent | delivered (SMS), answered | confirmed (voice)
    points: tuple[tuple[float, int], ...]

    @property
    def key(self) -> str:
        return f"{self.channel}_{self.measure}"

    @property
    def last(self) -> int:
        return self.points[-1][1] if self.points else 0


@dataclass(frozen=True)
class Projection:
    """When a channel's work still to do will be done at the lines' current rate.

    From (``now_seconds``, ``done``) to (``now_seconds + eta_seconds``, ``total``);
    ``eta_seconds`` None: work left and no line up to do it."""
    channel: str
    total: int                     # deliveries on this channel
    done: int                      # deliveries no longer waiting or being sent
    now_seconds: float
    eta_seconds: float | None
    rate_per_minute: float

    @property
    def end_seconds(self) -> float | None:
        return None if self.eta_seconds is None else self.now_seconds + self.eta_seconds


@dataclass(frozen=True)
class ReachSeries:
    alert_id: int
    start: dt.datetime | None      # the first thing that went out (None: nothing yet); naive UTC
    now: dt.datetime
    end_seconds: float             # the right edge: now while the alert runs, else its last event
    bucket_seconds: int
    totals: dict[str, int]         # deliveries per channel
    curves: tuple[Curve, ...]
    projections: tuple[Projection, ...]
    running: bool


@dataclass(frozen=True)
class AttemptRow:
    attempt: int                   # 1 for the first call
    answered: int                  # numbers first answered by a person on this call
    confirmed: int                 # numbers that pressed 1 on this call


@dataclass(frozen=True)
class AttemptOutcomes:
    alert_id: int
    channel: str
    rows: tuple[AttemptRow, ...]
    called: int                    # numbers called at least once
    never_answered: int            # called, never answered by a person
    not_called: int                # voice numbers no call has reached yet
    max_attempts: int              # the alert's cap of calls per number


@dataclass(frozen=True)
class ZoneReach:
    name: str | None               # the zone when the alert went out (None: people without a zone)
    recipients: int                # numbers the alert was sent to
    reached: int                   # of which reached on some channel
    help_requests: int
    help_open: int
    unreached_vulnerable: int      # on the door-knock list
    geometry: str | None = field(default=None, repr=False)   # GeoJSON text (WGS 84), None when the zone has none

    @property
    def share(self) -> float | None:
        """Reached over recipients, 0..1; None for a zone the alert sent nothing to."""
        return self.reached / self.recipients if self.recipients else None


# --- reach over time -------------------------------------------------------------------------
def _epoch(session: Session, column):  # noqa: ANN001, ANN202 - a column expression in, one out
    """Seconds since 1970 of a naive-UTC column, in SQL, on either database."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", column)
    return cast(func.strftime("%s", column), Integer)


def _bucket(session: Session, column, start_epoch: int, step: int):  # noqa: ANN001, ANN202
    seconds = _epoch(session, column) - start_epoch
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.floor(seconds / step), Integer)
    return cast(seconds, Integer) / step    # SQLite: integer division of non-negative integers floors


def bucket_width(span_seconds: float, max_buckets: int = MAX_BUCKETS) -> int:
    """The smallest readable bucket width that cuts ``span_seconds`` into at most ``max_buckets``."""
    for step in NICE_STEPS:
        if span_seconds / step <= max_buckets:
            return step
    return int(-(-span_seconds // max_buckets))


def _reach_times():  # noqa: ANN202
    """(first, done): when a delivery first counted (SMS sent, call answered) and when it completed
    (SMS delivered, call confirmed). A voice delivery confirmed by SMS has no sent_at: the others stand in."""
    first = func.coalesce(Delivery.sent_at, Delivery.delivered_at, Delivery.updated_at)
    done = func.coalesce(Delivery.delivered_at, Delivery.sent_at, Delivery.updated_at)
    counted = or_(Delivery.sent_at.is_not(None), Delivery.state.in_(REACHED_DELIVERY_STATES))
    return first, done, counted


def reach_series(session: Session, alert_id: int, *, now: dt.datetime | None = None,
                 stale_seconds: float = line_health.STALE_MINIMUM_SECONDS) -> ReachSeries | None:
    """People reached over time per channel, and when the rest will be done; None for no such alert."""
    alert = session.get(Alert, alert_id)
    if alert is None:
        return None
    now = now or utcnow()
    first, done, counted = _reach_times()
    mine = Delivery.alert_id == alert_id
    by_state = session.execute(select(Delivery.channel, Delivery.state, func.count()).where(mine)
                               .group_by(Delivery.channel, Delivery.state)).all()
    totals: dict[str, int] = {}
    states: dict[str, dict[str, int]] = {}
    for channel, state, count in by_state:
        totals[channel] = totals.get(channel, 0) + count
        states.setdefault(channel, {})[state] = count
    start, last = session.execute(select(func.min(first), func.max(done)).where(mine, counted)).one()
    running = alert.state == AlertState.ACTIVE
    end = now if running or last is None else max(last, alert.completed_at or last)
    start = start if start is None or start <= end else end
    span = (end - start).total_seconds() if start is not None else 0.0
    step = bucket_width(max(span, 1.0))
    curves = _curves(session, alert_id, start, step, totals) if start is not None else ()
    now_seconds = span if start is not None else 0.0
    rates = current_rates(session, now, stale_seconds)
    left = {channel: remaining(counts) for channel, counts in states.items()}
    projections = tuple(
        Projection(channel=channel, total=totals[channel], done=totals[channel] - eta.remaining,
                   now_seconds=now_seconds, eta_seconds=eta.seconds, rate_per_minute=eta.rate_per_minute)
        for channel, eta in estimate(left, alert.segments, rates).items())
    return ReachSeries(alert_id=alert_id, start=start, now=now, end_seconds=span, bucket_seconds=step,
                       totals=totals, curves=curves, projections=projections, running=running)


def _curves(session: Session, alert_id: int, start: dt.datetime, step: int,
            totals: dict[str, int]) -> tuple[Curve, ...]:
    first, done, counted = _reach_times()
    start_epoch = int((start - dt.datetime(1970, 1, 1)).total_seconds())
    first_bucket = _bucket(session, first, start_epoch, step).label("first_bucket")
    done_bucket = _bucket(session, done, start_epoch, step).label("done_bucket")
    rows = session.execute(select(Delivery.channel, Delivery.state, first_bucket, done_bucket, func.count())
                           .where(Delivery.alert_id == alert_id, counted)
                           .group_by(Delivery.channel, Delivery.state, first_bucket, done_bucket)).all()
    counts: dict[tuple[str, str], dict[int, int]] = {}

    def add(channel: str, measure: str, bucket: int | None, count: int) -> None:
        per_bucket = counts.setdefault((channel, measure), {})
        key = max(0, int(bucket or 0))
        per_bucket[key] = per_bucket.get(key, 0) + count

    for channel, state, b_first, b_done, count in rows:
        reached = state in REACHED_DELIVERY_STATES
        if channel == Channel.SMS:
            add(channel, "sent", b_first, count)
            if reached:
                add(channel, "delivered", b_done, count)
        elif reached:
            add(channel, "answered", b_first, count)
            if state == DeliveryState.CONFIRMED:
                add(channel, "confirmed", b_done, count)
    curves = []
    for channel in totals:
        for measure in MEASURES.get(Channel(channel), ()):
            per_bucket = counts.get((channel, measure), {})
            points: list[tuple[float, int]] = [(0.0, 0)]
            running = 0
            for bucket in sorted(per_bucket):
                running += per_bucket[bucket]
                points.append((float((bucket + 1) * step), running))
            curves.append(Curve(channel=channel, measure=measure, points=tuple(points)))
    return tuple(curves)


# --- outcomes by call ---------------------------------------------------------------------------
def outcomes_by_attempt(session: Session, alert_id: int) -> AttemptOutcomes | None:
    """How many numbers answered and confirmed on the 1st, 2nd, ... call; None for no such alert."""
    alert = session.get(Alert, alert_id)
    if alert is None:
        return None
    numbered = (select(Attempt.delivery_id, Attempt.outcome,
                       func.row_number().over(partition_by=Attempt.delivery_id,
                                              order_by=(Attempt.started_at, Attempt.id)).label("n"))
                .join(Delivery, Delivery.id == Attempt.delivery_id)
                .where(Delivery.alert_id == alert_id, Delivery.channel == Channel.VOICE,
                       Attempt.outcome.not_in(NOT_A_CALL))
                .subquery())
    firsts = (select(numbered.c.delivery_id,
                     func.min(case((numbered.c.outcome.in_(ANSWERED_BY_A_PERSON), numbered.c.n))).label("answered"),
                     func.min(case((numbered.c.outcome == AttemptOutcome.CONFIRMED, numbered.c.n))).label("confirmed"))
              .group_by(numbered.c.delivery_id).subquery())
    grouped = session.execute(select(firsts.c.answered, firsts.c.confirmed, func.count())
                              .group_by(firsts.c.answered, firsts.c.confirmed)).all()
    voice_numbers = session.scalar(select(func.count()).select_from(Delivery).where(
        Delivery.alert_id == alert_id, Delivery.channel == Channel.VOICE)) or 0
    answered: dict[int, int] = {}
    confirmed: dict[int, int] = {}
    called = never = 0
    for answered_on, confirmed_on, count in grouped:
        called += count
        if answered_on is None:
            never += count
            continue
        answered[answered_on] = answered.get(answered_on, 0) + count
        if confirmed_on is not None:
            confirmed[confirmed_on] = confirmed.get(confirmed_on, 0) + count
    last = max([*answered, *confirmed], default=0)
    rows = tuple(AttemptRow(attempt=n, answered=answered.get(n, 0), confirmed=confirmed.get(n, 0))
                 for n in range(1, last + 1))
    return AttemptOutcomes(alert_id=alert_id, channel=Channel.VOICE, rows=rows, called=called, never_answered=never,
                           not_called=max(0, voice_numbers - called), max_attempts=alert.max_attempts)


# --- reach by zone --------------------------------------------------------------------------------
def zone_reach(session: Session, alert_id: int) -> list[ZoneReach]:
    """Per zone the alert went to (as the deliveries recorded it): numbers, reached, help requests,
    vulnerable people still to reach at the door, and the zone's geometry when it has one.
    Zones by name; people without a zone last (name None)."""
    mine = Delivery.alert_id == alert_id
    by_channel = session.execute(select(Delivery.zone, Delivery.channel, func.count(),
                                        func.count(case((Delivery.state.in_(REACHED_DELIVERY_STATES), literal(1)))))
                                 .where(mine).group_by(Delivery.zone, Delivery.channel)).all()
    if len({channel for _zone, channel, _n, _r in by_channel}) <= 1:
        # One channel: a delivery is a number (uq_delivery_once), so counting rows is counting numbers.
        reach = [(zone, count, reached_count) for zone, _channel, count, reached_count in by_channel]
    else:
        # Several: a number sent by SMS and called counts once, reached when either reached it.
        reached_number = case((Delivery.state.in_(REACHED_DELIVERY_STATES), Delivery.number_id))
        reach = session.execute(select(Delivery.zone, func.count(func.distinct(Delivery.number_id)),
                                       func.count(func.distinct(reached_number)))
                                .where(mine).group_by(Delivery.zone)).all()
    zones: dict[str | None, dict] = {name: {"recipients": recipients, "reached": reached_count, "help_requests": 0,
                                            "help_open": 0, "unreached_vulnerable": 0}
                                     for name, recipients, reached_count in reach}

    def entry(name: str | None) -> dict:
        return zones.setdefault(name, {"recipients": 0, "reached": 0, "help_requests": 0, "help_open": 0,
                                       "unreached_vulnerable": 0})

    # A help request's zone: its writer's, else the zone the alert reached that number in.
    delivery_zone = (select(func.min(Delivery.zone)).where(mine, Delivery.e164 == HelpRequest.e164)
                     .scalar_subquery())
    helps = session.execute(select(func.coalesce(Zone.name, delivery_zone),
                                   func.count(), func.count(case((HelpRequest.handled_at.is_(None), literal(1)))))
                            .select_from(HelpRequest)
                            .outerjoin(Contact, Contact.id == HelpRequest.contact_id)
                            .outerjoin(Zone, Zone.id == Contact.zone_id)
                            .where(HelpRequest.alert_id == alert_id)
                            .group_by(func.coalesce(Zone.name, delivery_zone))).all()
    for name, count, open_count in helps:
        target = entry(name)
        target["help_requests"] += count
        target["help_open"] += open_count
    for person in door_knock_list(session, alert_id, REACHED_DELIVERY_STATES):
        entry(person["zone"])["unreached_vulnerable"] += 1
    named = [name for name in zones if name is not None]
    geometries = ({name: geometry for name, geometry in session.execute(select(Zone.name, Zone.geometry).where(
        and_(Zone.name.in_(named), Zone.geometry.is_not(None))))} if named else {})
    order = sorted(named, key=str.casefold) + ([None] if None in zones else [])
    return [ZoneReach(name=name, geometry=geometries.get(name), **zones[name]) for name in order]
