"""Everything the after-action report says about one alert, gathered from the database.

The mayor and the Prefecture ask, the day after, what went out, when, who approved it, whom it
reached and whom it did not, what citizens asked for and how the lines held up. This module
only gathers those facts; web/report_pdf.py lays them out (and gateway/shell turns them into
``allerta alert report``).

Cheap at 100,000 recipients: every count is a GROUP BY in SQL (one scan of the alert's
deliveries gives the reach by channel, zone and vulnerability at once, as the alert page's
counts do), and the only lists read row by row are short by nature (approvals, audit entries
of the alert, follow-ups, lines, alarms) or capped (the door-knock list and the help requests
printed; their counts are always whole).

The figures are the alert page's: the same delivery states grouped the same way
(gateway/core/states.py, DELIVERY_BUCKETS).
"""
from __future__ import annotations

import datetime as dt
import json
import statistics
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from gateway.core import capacity, inbox, line_health
from gateway.core.audit import Head, read_head
from gateway.core.door_knock import door_knock_list
from gateway.core.models import Alert, Attempt, Delivery, Line
from gateway.core.models_citizens import HelpRequest
from gateway.core.models_ops import Alarm
from gateway.core.models_panel import AlertApproval, AlertText, AuditEntry
from gateway.core.polls import poll_results
from gateway.core.states import (BUCKET_ORDER, DELIVERY_BUCKETS, REACHED_DELIVERY_STATES, AttemptOutcome, Channel,
                                 LineState)

# The door-knock list is printed in full up to this many people, or not at all (its counts by zone
# always): a first hundred of two thousand, sorted by zone, would send volunteers to one zone only; the
# whole list is the alert page's printable one. Help requests: the newest this many, every count whole
# (all are in the Inbox). Each row costs WeasyPrint about 10 ms: thousands would take minutes.
DOOR_KNOCK_PRINTED = 100
HELP_PRINTED = 100
TOP_ERRORS = 10

# A try that reached nobody: what the report counts as a line's failures for this alert.
FAILED_OUTCOMES = (AttemptOutcome.FAILED, AttemptOutcome.BUSY, AttemptOutcome.NO_ANSWER,
                   AttemptOutcome.CONGESTION, AttemptOutcome.INVALID_NUMBER, AttemptOutcome.NO_LINE,
                   AttemptOutcome.NO_ROUTE, AttemptOutcome.INTERRUPTED)


class ReportError(LookupError):
    """No such alert: ``msgid``/``params`` as gateway.core.alerts.AlertError."""

    def __init__(self, msgid: str, **params: object) -> None:
        self.msgid = msgid
        self.params = params
        super().__init__(msgid % params if params else msgid)


@dataclass
class Reach:
    """Deliveries of one slice of the alert, by bucket (queued, in_progress, sent, reached, failed, cancelled)."""
    total: int = 0
    buckets: dict[str, int] = field(default_factory=lambda: {bucket: 0 for bucket in BUCKET_ORDER})

    def add(self, state: str, count: int) -> None:
        self.total += count
        self.buckets[DELIVERY_BUCKETS.get(state, "in_progress")] += count

    @property
    def reached(self) -> int:
        return self.buckets["reached"]

    @property
    def percent_reached(self) -> float:
        return round(100.0 * self.reached / self.total, 1) if self.total else 0.0

    @property
    def percent_done(self) -> float:
        """The alert page's progress bar: the share no longer queued or being sent."""
        open_ = self.buckets["queued"] + self.buckets["in_progress"]
        return round(100.0 * (self.total - open_) / self.total, 1) if self.total else 0.0


@dataclass(frozen=True)
class Event:
    """One line of the timeline: ``kind`` names it (web/report_pdf.py words it), ``actor`` did it."""
    at: dt.datetime
    kind: str
    actor: str | None = None
    details: dict = field(default_factory=dict)


@dataclass
class LineFigures:
    label: str
    channel: str
    state: str                       # as the engine last reported it (a LineState)
    stale: bool                      # that report is too old to believe: counted as down
    rate_per_minute: float | None
    last_error: str | None
    attempts: int = 0                # for this alert
    failed: int = 0                  # of which reached nobody

    @property
    def down(self) -> bool:
        return self.stale or self.state != LineState.UP


@dataclass
class AfterAction:
    alert: Alert
    generated_at: dt.datetime
    target: dict
    versions: list[str]                        # languages of the other versions of the text
    original: Alert | None                     # the alert this one corrects or closes
    follow_ups: list[Alert]                    # corrections and all-clears of this one
    approvals: list[AlertApproval]
    timeline: list[Event]
    overall: Reach
    by_channel: dict[str, Reach]
    by_zone: dict[str, Reach]                  # "-" for deliveries without a zone
    by_vulnerability: dict[bool, Reach]
    numbers: int                               # distinct numbers the alert went to
    numbers_reached: int                       # of which reached on at least one channel
    possible_duplicates: int
    door_knock: list[dict]                     # everyone, or nobody when more than DOOR_KNOCK_PRINTED
    door_knock_total: int
    door_knock_by_zone: dict[str, int]
    help_requests: list[dict]                  # at most HELP_PRINTED, newest first
    help_total: int
    help_handled: int
    help_median_minutes: float | None          # received to handled, of those handled
    poll: dict | None
    lines: list[LineFigures]
    rates_now: dict[str, float]                # per channel: what the lines up now can do a minute
    alarms: list[Alarm]
    top_errors: list[tuple[str, int]]
    audit_head: Head

    @property
    def help_open(self) -> int:
        return self.help_total - self.help_handled

    @property
    def failed_lines(self) -> list[LineFigures]:
        """Lines down now, or about which an alarm was raised while the alert went out. A line whose
        tries failed is not on it for that alone: a busy number or an unanswered call is the
        recipient's outcome, not the line's fault (its failures are counted in ``lines``)."""
        alarmed = {alarm.subject for alarm in self.alarms}
        return [line for line in self.lines if line.down or line.label in alarmed]


def gather(s: Session, alert_id: int, *, now: dt.datetime, stale_seconds: float) -> AfterAction:
    """The report of alert ``alert_id`` as the database is at ``now``; ReportError when there is none."""
    alert = s.get(Alert, alert_id)
    if alert is None:
        raise ReportError("no alert with id %(id)s", id=alert_id)
    reach = _reach(s, alert_id)
    approvals = list(s.scalars(select(AlertApproval).where(AlertApproval.alert_id == alert_id)
                               .order_by(AlertApproval.id)))
    follow_ups = list(s.scalars(select(Alert).where(Alert.follows_alert_id == alert_id).order_by(Alert.id)))
    people = door_knock_list(s, alert_id, REACHED_DELIVERY_STATES)
    knock_by_zone: dict[str, int] = {}
    for person in people:
        knock_by_zone[person["zone"] or "-"] = knock_by_zone.get(person["zone"] or "-", 0) + 1
    helped = _help(s, alert_id)
    tries = _attempts_by_line(s, alert_id)
    lines, errors = _lines(s, alert_id, tries, now, stale_seconds)
    return AfterAction(
        alert=alert, generated_at=now, target=json.loads(alert.target or "{}"),
        versions=list(s.scalars(select(AlertText.language).where(AlertText.alert_id == alert_id)
                                .order_by(AlertText.language))),
        original=s.get(Alert, alert.follows_alert_id) if alert.follows_alert_id else None,
        follow_ups=follow_ups, approvals=approvals,
        timeline=_timeline(s, alert, approvals, follow_ups, _channel_times(tries, reach.pop("delivered"))),
        **reach,
        door_knock=people if len(people) <= DOOR_KNOCK_PRINTED else [], door_knock_total=len(people), door_knock_by_zone=knock_by_zone,
        **helped,
        poll=poll_results(s, alert, now=now),
        lines=lines, rates_now=capacity.line_rates(s.scalars(select(Line)), now, stale_seconds),
        alarms=_alarms(s, alert, now), top_errors=errors,
        audit_head=read_head(s))


def _reach(s: Session, alert_id: int) -> dict:
    """One GROUP BY over the alert's deliveries: every slice the report shows."""
    overall = Reach()
    by_channel: dict[str, Reach] = {}
    by_zone: dict[str, Reach] = {}
    by_vulnerability: dict[bool, Reach] = {True: Reach(), False: Reach()}
    delivered: dict[str, tuple[dt.datetime, dt.datetime]] = {}   # per channel: first and last SMS delivered
    rows = s.execute(select(Delivery.channel, Delivery.zone, Delivery.vulnerable, Delivery.state, func.count(),
                            func.min(Delivery.delivered_at), func.max(Delivery.delivered_at))
                     .where(Delivery.alert_id == alert_id)
                     .group_by(Delivery.channel, Delivery.zone, Delivery.vulnerable, Delivery.state)).all()
    for channel, zone, vulnerable, state, count, first_delivered, last_delivered in rows:
        if first_delivered is not None:
            delivered[channel] = _span(delivered.get(channel), first_delivered, last_delivered)
        overall.add(state, count)
        by_channel.setdefault(channel, Reach()).add(state, count)
        by_zone.setdefault(zone or "-", Reach()).add(state, count)
        by_vulnerability[bool(vulnerable)].add(state, count)
    reached = Delivery.state.in_(REACHED_DELIVERY_STATES)
    numbers, numbers_reached, duplicates = s.execute(
        select(func.count(func.distinct(Delivery.number_id)),
               func.count(func.distinct(Delivery.number_id)).filter(reached),
               func.count().filter(Delivery.possible_duplicate.is_(True)))
        .where(Delivery.alert_id == alert_id)).one()
    ordered_channels = {channel: by_channel[channel] for channel in sorted(by_channel, key=_channel_order)}
    return {"overall": overall, "by_channel": ordered_channels, "by_zone": dict(sorted(by_zone.items())),
            "by_vulnerability": by_vulnerability, "numbers": numbers or 0, "numbers_reached": numbers_reached or 0,
            "possible_duplicates": duplicates or 0, "delivered": delivered}


def _span(span: tuple | None, first: dt.datetime | None, last: dt.datetime | None) -> tuple:
    """``span`` (first, last) widened to take in ``first`` and ``last`` (either may be None)."""
    if span is None:
        return first, last
    return (min(t for t in (span[0], first) if t is not None) if span[0] or first else None,
            max(t for t in (span[1], last) if t is not None) if span[1] or last else None)


def _channel_order(channel: str) -> int:
    return [Channel.SMS, Channel.VOICE].index(channel) if channel in (Channel.SMS, Channel.VOICE) else 9


def _timeline(s: Session, alert: Alert, approvals: list[AlertApproval], follow_ups: list[Alert],
              channel_times: list[tuple]) -> list[Event]:
    """What happened to the alert, in order: its life from the audit log and its own row, the first and
    last message of each channel (``_channel_times``), the follow-ups."""
    events = [Event(alert.created_at, "created", alert.created_by)]
    # The audit log says who did what to the alert (asked, approved, sent, cancelled, exported...).
    for entry in s.scalars(select(AuditEntry).where(AuditEntry.action.like("alert.%"),
                                                    AuditEntry.target == str(alert.id)).order_by(AuditEntry.id)):
        try:
            details = json.loads(entry.details)
        except ValueError:
            details = {}
        events.append(Event(entry.at, entry.action, entry.actor, _audit_details(details)))
    audited = {event.kind for event in events}
    # An approval decided with no audit entry of its own (none is expected, but the table is the rule's
    # record): still on the timeline.
    decisions_audited = bool(audited & {"alert.approve", "alert.reject", "alert.send"})
    for approval in approvals:
        if approval.decided_at and not decisions_audited:
            events.append(Event(approval.decided_at, f"approval.{approval.decision}", approval.decided_by,
                                {"reason": approval.reason} if approval.reason else {}))
    if alert.send_at:
        events.append(Event(alert.send_at, "scheduled"))
    if alert.cancelled_at and "alert.cancel" not in audited:
        events.append(Event(alert.cancelled_at, "cancelled"))
    for channel, first, last, first_reached, last_reached in channel_times:
        events.append(Event(first, f"first.{channel}"))
        if first_reached:
            events.append(Event(first_reached, f"first_reached.{channel}"))
        if last != first:
            events.append(Event(last, f"last.{channel}"))
        if last_reached and last_reached != first_reached:
            events.append(Event(last_reached, f"last_reached.{channel}"))
    for follow_up in follow_ups:
        events.append(Event(follow_up.created_at, f"follow_up.{follow_up.follow_up or 'correction'}",
                            follow_up.created_by, {"alert": follow_up.id, "state": follow_up.state}))
    if alert.completed_at:
        events.append(Event(alert.completed_at, "completed"))
    return sorted(events, key=lambda event: event.at)


def _audit_details(details: dict) -> dict:
    """What the timeline shows of an audit entry: who and why, not the whole text again."""
    keep = ("reason", "deliveries_stopped", "recipients", "people", "bypassed_two_person_rule", "language")
    return {key: details[key] for key in keep if details.get(key) not in (None, "", [], {})}


@dataclass
class _LineTries:
    """The alert's attempts on one line (None: a try no line took) of one channel: one GROUP BY row."""
    line: str | None
    channel: str
    tries: int
    failed: int
    first: dt.datetime | None
    last: dt.datetime | None
    first_answered: dt.datetime | None
    last_answered: dt.datetime | None


def _attempts_by_line(s: Session, alert_id: int) -> list[_LineTries]:
    """One pass over the alert's attempts: per line and channel, the tries, the failures and their times."""
    failed = Attempt.outcome.in_(FAILED_OUTCOMES)
    return [_LineTries(*row) for row in s.execute(
        select(Attempt.line, Attempt.channel, func.count(), func.count().filter(failed),
               func.min(Attempt.started_at), func.max(Attempt.started_at),
               func.min(Attempt.answered_at), func.max(Attempt.answered_at))
        .join(Delivery, Delivery.id == Attempt.delivery_id)
        .where(Delivery.alert_id == alert_id).group_by(Attempt.line, Attempt.channel)).all()]


def _channel_times(tries: list[_LineTries], delivered: dict[str, tuple]) -> list[tuple]:
    """Per channel: (channel, first and last attempt started, first and last time someone was reached).

    An SMS is reached when its status report came (the delivery's delivered_at); a call when it was
    answered (the attempt's answered_at).
    """
    spans: dict[str, list] = {}
    for row in tries:
        started, answered = spans.setdefault(row.channel, [None, None])
        spans[row.channel] = [_span(started, row.first, row.last),
                              _span(answered, row.first_answered, row.last_answered)]
    result = []
    for channel, (started, answered) in spans.items():
        if started is None or started[0] is None:
            continue
        reached = delivered.get(channel, (None, None)) if channel == Channel.SMS else answered or (None, None)
        result.append((channel, started[0], started[1], *reached))
    return sorted(result, key=lambda row: _channel_order(row[0]))


def _help(s: Session, alert_id: int) -> dict:
    times = s.execute(select(HelpRequest.received_at, HelpRequest.handled_at)
                      .where(HelpRequest.alert_id == alert_id)).all()
    waits = [(handled - received).total_seconds() / 60 for received, handled in times if handled is not None]
    return {"help_requests": inbox.help_requests(s, open_only=False, alert_id=alert_id, limit=HELP_PRINTED),
            "help_total": len(times), "help_handled": len(waits),
            "help_median_minutes": round(statistics.median(waits), 1) if waits else None}


def _lines(s: Session, alert_id: int, tries: list[_LineTries], now: dt.datetime,
           stale_seconds: float) -> tuple[list[LineFigures], list[tuple[str, int]]]:
    """Every line as last reported, with its tries and failures for this alert; the commonest errors."""
    rows = list(s.scalars(select(Line).order_by(Line.channel, Line.label)))
    stale = line_health.stale_lines(rows, now, stale_seconds)
    lines = {line.label: LineFigures(line.label, line.channel, line.state, stale[line.label], line.rate_per_minute,
                                     line.last_error) for line in rows}
    for row in tries:
        if row.line is None:   # a try no line took (none free): counted in the errors, not on a line
            continue
        entry = lines.setdefault(row.line, LineFigures(row.line, row.channel, "-", True, None, None))
        entry.attempts += row.tries
        entry.failed += row.failed
    error = func.coalesce(Attempt.error, Attempt.outcome)
    errors = s.execute(select(error, func.count()).join(Delivery, Delivery.id == Attempt.delivery_id)
                       .where(Delivery.alert_id == alert_id, Attempt.outcome.in_(FAILED_OUTCOMES))
                       .group_by(error).order_by(func.count().desc()).limit(TOP_ERRORS)).all()
    return list(lines.values()), [(text, count) for text, count in errors]


def _alarms(s: Session, alert: Alert, now: dt.datetime) -> list[Alarm]:
    """Alarms about the box open at any time while the alert was going out."""
    end = alert.completed_at or alert.cancelled_at or now
    return list(s.scalars(select(Alarm).where(
        Alarm.raised_at <= end, or_(Alarm.cleared_at.is_(None), Alarm.cleared_at >= alert.created_at))
        .order_by(Alarm.raised_at)))
