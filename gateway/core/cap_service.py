"""CAP warnings received become drafts awaiting approval; our alerts are gathered for publishing.

Every source (``allerta cap import``, ``POST /api/v1/cap``, the watched directory, the feeds)
calls ``CapReceiver.receive`` with the document's bytes and says where they came from.

- A document that breaks CAP 1.2 or our safety limits is refused (``CapRefused``, naming the
  element and the rule) and nothing is stored: there is no trustworthy identity to store it by.
- A message seen before (same sender, identifier, sent) is ignored, idempotently: a feed
  polled every five minutes, or a file copied twice, makes one draft.
- Otherwise the message is stored (cap_messages) with what it became: a draft awaiting
  approval (an alarm on the dashboard says "CAP warning from ... for ..."), a correction or an
  all-clear of the alert made from the message it references, the withdrawal of a draft still
  waiting, or nothing (refused by the alert rules, expired, Ack/Error): never silently, the
  detail and an alarm say why.
- Nothing goes out without a person's approval unless an ``[cap] auto_send`` rule names the
  sender and the message's severity reaches the rule's minimum; the audit log says so.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.core.alarms import AlarmMonitor, AlarmSettings
from gateway.core.alerts import WAITING_TO_GO, AlertError, AlertRequest, AlertService, Target
from gateway.core.audit import AuditLog
from gateway.core.cap_mapping import DraftPlan, KnownZone, cut_to_fit, plan_draft
from gateway.core.cap_out import Publication, PublishedZone, alert_reference
from gateway.core.cap_xml import SEVERITY_RANK, CapAlert, CapError, parse_cap
from gateway.core.config import Config
from gateway.core.db import utcnow
from gateway.core.models import Alert, Delivery, Zone
from gateway.core.models_cap import CapMessage
from gateway.core.models_ops import Alarm
from gateway.core.models_panel import AlertApproval, AlertText
from gateway.core.services import Services
from gateway.core.states import AlertCategory, AlertState, ApprovalDecision, Channel, DeliveryState

ALARM_KIND = "cap_warning"
# A warning that made no draft (refused, ignored) stays on the dashboard this long: seen by the next shift.
NOTICE_HOURS = 12
OUTCOME_WORDS = {"draft": "bozza in attesa di approvazione", "update": "rettifica in attesa di approvazione",
                 "cancel": "revoca", "refused": "non diventato allerta", "ignored": "ignorato"}
PUBLISHED_STATES = (AlertState.ACTIVE, AlertState.COMPLETED, AlertState.CANCELLED)


class CapRefused(Exception):
    """The document was refused and nothing was stored; ``error`` names the element and the rule."""

    def __init__(self, error: CapError) -> None:
        self.error = error
        super().__init__(str(error))


@dataclass(frozen=True)
class Received:
    outcome: str                 # draft | update | cancel | refused | ignored | seen
    message_id: int
    alert_id: int | None
    detail: str


@dataclass(frozen=True)
class CapSettings:
    max_bytes: int
    auto_send: tuple[tuple[str, str], ...]     # (sender, minimum severity)
    deadline_minutes: float
    sender: str
    sender_name: str

    @classmethod
    def from_config(cls, config: Config) -> "CapSettings":
        comune = config.general.comune
        sender = config.cap.sender or "allerta." + "-".join(
            "".join(c if c.isalnum() else " " for c in comune.lower()).split())
        return cls(max_bytes=config.cap.max_document_kb * 1024,
                   auto_send=tuple(tuple(rule.split()) for rule in config.cap.auto_send),
                   deadline_minutes=config.voice.deadline_minutes, sender=sender, sender_name=comune)


class CapReceiver:
    def __init__(self, audit: AuditLog, alerts: AlertService, alarms: AlarmMonitor, settings: CapSettings) -> None:
        self.audit = audit
        self.sessions = audit.sessions
        self.alerts = alerts
        self.alarms = alarms
        self.settings = settings

    def receive(self, data: bytes, source: str) -> Received:
        try:
            message = parse_cap(data, max_bytes=self.settings.max_bytes)
        except CapError as exc:
            raise CapRefused(exc) from None
        xml = data.decode("utf-8", errors="replace")
        with self.sessions() as s:
            seen = s.scalar(select(CapMessage).where(CapMessage.sender == message.sender,
                                                     CapMessage.identifier == message.identifier,
                                                     CapMessage.sent == message.sent))
            if seen is not None:
                return Received("seen", seen.id, seen.alert_id, f"already received ({seen.outcome})")
        actor = f"cap:{message.sender}"[:80]
        try:
            received = self._act(message, xml, source, actor)
        except IntegrityError:
            # The same message through two sources at once (the feed and the directory): the other one
            # stored it first and this whole transaction rolled back. It is simply seen.
            with self.sessions() as s:
                seen = s.scalar(select(CapMessage).where(CapMessage.sender == message.sender,
                                                         CapMessage.identifier == message.identifier,
                                                         CapMessage.sent == message.sent))
            if seen is None:
                raise
            return Received("seen", seen.id, seen.alert_id, f"already received ({seen.outcome})")
        except AlertError as exc:
            received = self._store(message, xml, source, "refused", None, f"not made into an alert: {exc}",
                                   actor=actor)
        self._alarm(message, received)
        return received

    # --- what a message becomes ------------------------------------------------------
    def _act(self, message: CapAlert, xml: str, source: str, actor: str) -> Received:
        if message.msg_type in ("Ack", "Error") or message.status in ("System", "Draft"):
            return self._store(message, xml, source, "ignored", None,
                               f"msgType {message.msg_type}, status {message.status}: nothing to tell citizens",
                               actor=actor)
        if not message.infos and message.msg_type != "Cancel":
            return self._store(message, xml, source, "ignored", None,
                               f"msgType {message.msg_type} without <info>: nothing to tell citizens", actor=actor)
        referenced = self._referenced(message)
        if message.msg_type == "Cancel":
            if referenced is None:
                return self._store(message, xml, source, "ignored", None,
                                   "Cancel of a message we never made an alert of: nothing to cancel", actor=actor)
            if referenced.state in WAITING_TO_GO:
                return self._withdraw(message, xml, source, actor, referenced, "cancel")
            if not self._went_out(referenced):
                return self._store(message, xml, source, "ignored", None, f"alert {referenced.id} never went out "
                                   f"({referenced.state}): nobody to give the all-clear to", actor=actor)
            return self._draft(message, xml, source, actor, follows=referenced, follow_up="all_clear")
        if message.msg_type == "Update" and referenced is not None:
            if referenced.state in WAITING_TO_GO:
                return self._draft(message, xml, source, actor, replaces=referenced)
            if self._went_out(referenced):
                return self._draft(message, xml, source, actor, follows=referenced, follow_up="correction")
        return self._draft(message, xml, source, actor)

    def _referenced(self, message: CapAlert) -> Alert | None:
        """The alert made from the newest message <references> names (CAP lists oldest first)."""
        with self.sessions() as s:
            for reference in reversed(message.references):
                alert_id = s.scalar(select(CapMessage.alert_id).where(
                    CapMessage.sender == reference.sender, CapMessage.identifier == reference.identifier,
                    CapMessage.sent == reference.sent, CapMessage.alert_id.is_not(None)))
                if alert_id is not None:
                    alert = s.get(Alert, alert_id)
                    s.expunge(alert)
                    return alert
        return None

    def _went_out(self, alert: Alert) -> bool:
        with self.sessions() as s:
            return s.scalar(select(Delivery.id).where(Delivery.alert_id == alert.id,
                                                      Delivery.state != DeliveryState.CANCELLED).limit(1)) is not None

    def _plan(self, message: CapAlert, drill: bool) -> DraftPlan:
        with self.sessions() as s:
            zones = [KnownZone(name, code, geometry)
                     for name, code, geometry in s.execute(select(Zone.name, Zone.code, Zone.geometry))]
        return plan_draft(message, zones, lambda text: self._fits(text, drill))

    def _fits(self, text: str, drill: bool) -> bool:
        try:
            self.alerts.plan(AlertRequest(text=text, target=Target(), drill=drill))
        except AlertError:
            return False
        return True

    def _draft(self, message: CapAlert, xml: str, source: str, actor: str, *, follows: Alert | None = None,
               follow_up: str | None = None, replaces: Alert | None = None) -> Received:
        drill = message.status in ("Exercise", "Test")
        if message.infos:
            plan = self._plan(message, drill)
        else:
            # A bare Cancel: the all-clear says which warning ends, in the words of the original.
            first_line = follows.text.splitlines()[0] if follows is not None else ""
            text, _cut = cut_to_fit(f"REVOCATO l'avviso: {first_line}", lambda t: self._fits(t, drill))
            plan = DraftPlan(text=text, translations={}, zones=(), drill=drill, deadline=None,
                             facts={"sender": message.sender, "msg_type": message.msg_type}, cap_category=None)
        now = utcnow()
        if plan.deadline is not None and plan.deadline <= now:
            return self._store(message, xml, source, "ignored", None,
                               f"expired at {plan.deadline.isoformat()}Z before it arrived", actor=actor)
        if follows is None and not plan.zones:
            unmapped = "; ".join(plan.unmapped_areas) or "the message has no <area>"
            raise AlertError("no zone matches its areas (%(areas)s)", areas=unmapped)
        channels = (Channel.SMS,)
        request = AlertRequest(text=plan.text, translations=plan.translations, target=Target(zones=plan.zones),
                               channels=channels, drill=drill, created_by=actor,
                               deadline=plan.deadline or now + dt.timedelta(minutes=self.settings.deadline_minutes),
                               follows=follows.id if follows is not None else None, follow_up=follow_up,
                               # A CAP warning is an emergency (docs/categories.md); a follow-up takes its
                               # original's category.
                               category=AlertCategory.EMERGENCY if follows is None else None,
                               cap_category=plan.cap_category if follows is None else None)
        outcome = {"correction": "update", "all_clear": "cancel"}.get(follow_up or "", "draft")
        detail = _describe(plan, follows, follow_up, replaces)
        rule = self._auto_send_rule(message, plan)
        with self.audit.transaction() as s:
            if replaces is not None:
                self.alerts.discard(replaces.id, AlertState.CANCELLED, session=s)
                s.execute(_decide(replaces.id, ApprovalDecision.REJECTED, actor, "replaced by a CAP Update"))
                self.audit.record(s, actor, "alert.cancel", replaces.id, reason="replaced by a CAP Update",
                                  identifier=message.identifier)
            alert_id, preview = self.alerts.create_pending(request, AlertState.AWAITING_APPROVAL, session=s)
            s.add(AlertApproval(alert_id=alert_id, requested_by=actor))
            self.audit.record(s, actor, "cap.draft", alert_id, source=source, text=plan.text, translations=plan.translations or None,
                              zones=list(plan.zones), drill=drill, recipients=preview.recipients,
                              unmapped_areas=list(plan.unmapped_areas) or None, follows=request.follows,
                              follow_up=follow_up, **plan.facts)
            if rule is not None:
                reason = f"[cap] auto_send rule {rule[0]} {rule[1]}: severity {plan.facts.get('severity')}"
                counts = self.alerts.release(alert_id, session=s)
                s.execute(_decide(alert_id, ApprovalDecision.BYPASSED, "cap-auto-send", reason))
                self.audit.record(s, "cap-auto-send", "cap.auto_send", alert_id, reason=reason, recipients=counts)
                detail = f"sent automatically ({reason}); {detail}"
            row = _message_row(message, xml, source, outcome, alert_id, detail)
            s.add(row)
            s.flush()
            return Received(outcome, row.id, alert_id, detail)

    def _withdraw(self, message: CapAlert, xml: str, source: str, actor: str, referenced: Alert,
                  outcome: str) -> Received:
        """A Cancel of a warning whose draft still waits: the draft is withdrawn, nobody is told."""
        detail = f"draft {referenced.id}, still awaiting approval, withdrawn: the sender cancelled its warning"
        with self.audit.transaction() as s:
            self.alerts.discard(referenced.id, AlertState.CANCELLED, session=s)
            s.execute(_decide(referenced.id, ApprovalDecision.REJECTED, actor, "cancelled by its CAP sender"))
            self.audit.record(s, actor, "alert.cancel", referenced.id, reason="cancelled by its CAP sender",
                              identifier=message.identifier)
            row = _message_row(message, xml, source, outcome, referenced.id, detail)
            s.add(row)
            s.flush()
            return Received(outcome, row.id, referenced.id, detail)

    def _store(self, message: CapAlert, xml: str, source: str, outcome: str, alert_id: int | None,
               detail: str, *, actor: str) -> Received:
        with self.audit.transaction() as s:
            row = _message_row(message, xml, source, outcome, alert_id, detail)
            s.add(row)
            s.flush()
            self.audit.record(s, actor, f"cap.{outcome}", row.id, source=source, identifier=message.identifier,
                              sent=message.sent, detail=detail)
            return Received(outcome, row.id, alert_id, detail)

    def _auto_send_rule(self, message: CapAlert, plan: DraftPlan) -> tuple[str, str] | None:
        if plan.drill or message.msg_type != "Alert":
            return None   # drills and follow-ups always wait for a person
        severity = SEVERITY_RANK.get(plan.facts.get("severity", "Unknown"), 0)
        for sender, minimum in self.settings.auto_send:
            if sender == message.sender and severity >= SEVERITY_RANK[minimum]:
                return sender, minimum
        return None

    def _alarm(self, message: CapAlert, received: Received) -> None:
        if received.outcome == "seen":
            return
        who = next((info.sender_name for info in message.infos if info.sender_name), message.sender)
        areas = ", ".join(dict.fromkeys(area.description for info in message.infos for area in info.areas))
        event = message.infos[0].event if message.infos else message.msg_type
        subject = f"cap {received.message_id}"
        # In Italian like the other alarms: it is also the SMS the on-call staff get.
        what = OUTCOME_WORDS[received.outcome]
        if received.alert_id is not None and received.outcome in ("draft", "update", "cancel"):
            what += f" {received.alert_id}"
        text = f"Avviso CAP da {who} per {areas or 'nessuna area'}: {event}. {what}: {received.detail}"
        self.alarms.raise_alarm(ALARM_KIND, subject, text)


def _describe(plan: DraftPlan, follows: Alert | None, follow_up: str | None, replaces: Alert | None) -> str:
    facts = plan.facts
    parts = [" / ".join(facts[k] for k in ("event", "severity", "urgency", "certainty") if k in facts)]
    if follows is not None:
        parts.append(f"{follow_up.replace('_', '-')} of alert {follows.id}")
    if replaces is not None:
        parts.append(f"replaces draft {replaces.id}")
    if plan.zones:
        parts.append("zones: " + ", ".join(plan.zones))
    if plan.unmapped_areas:
        parts.append("areas matching no zone: " + "; ".join(plan.unmapped_areas))
    parts += plan.notes
    return "; ".join(part for part in parts if part)


def _decide(alert_id: int, decision: ApprovalDecision, actor: str, reason: str):  # noqa: ANN202
    return (update(AlertApproval).where(AlertApproval.alert_id == alert_id,
                                        AlertApproval.decision == ApprovalDecision.PENDING)
            .values(decision=decision, decided_by=actor, decided_at=utcnow(), reason=reason))


def _message_row(message: CapAlert, xml: str, source: str, outcome: str, alert_id: int | None,
                 detail: str) -> CapMessage:
    return CapMessage(sender=message.sender[:300], identifier=message.identifier[:300], sent=message.sent[:40],
                      msg_type=message.msg_type, status=message.status, source=source[:300], alert_id=alert_id,
                      outcome=outcome, detail=detail, xml=xml)


# --- publishing ------------------------------------------------------------------------
def publication(s: Session, alert_id: int, settings: CapSettings) -> Publication | None:
    """What ``gateway.core.cap_out`` needs of one alert that went out; None if it is not published."""
    alert = s.get(Alert, alert_id)
    if alert is None or alert.state not in PUBLISHED_STATES or not alert.recipients:
        return None
    texts = {"it": alert.text} | {row.language: row.text for row in s.scalars(
        select(AlertText).where(AlertText.alert_id == alert.id).order_by(AlertText.language))}
    origin = alert
    while origin.follows_alert_id is not None and s.get(Alert, origin.follows_alert_id) is not None:
        origin = s.get(Alert, origin.follows_alert_id)
    origin_target = json.loads(origin.target)
    zone_names = [name.casefold() for name in origin_target.get("zones", ())]
    query = select(Zone) if origin_target.get("all") else select(Zone).where(
        Zone.name.in_([z.name for z in s.scalars(select(Zone)) if z.name.casefold() in zone_names]))
    zones = tuple(PublishedZone(z.name, z.code, z.geometry) for z in s.scalars(query.order_by(Zone.name)))
    area = ", ".join(z.name for z in zones) or settings.sender_name
    facts = _origin_facts(s, origin.id)
    references = ()
    followed = s.get(Alert, alert.follows_alert_id) if alert.follows_alert_id is not None else None
    if followed is not None:
        references = (alert_reference(settings.sender, followed.id, followed.created_at),)
    information = alert.category == AlertCategory.INFORMATION
    all_clear = alert.follow_up == "all_clear"
    return Publication(
        alert_id=alert.id, sender=settings.sender, sender_name=settings.sender_name, created_at=alert.created_at,
        drill=alert.drill, follow_up=alert.follow_up, references=references, texts=texts, zones=zones,
        area_description=area, deadline=alert.deadline,
        category=alert.cap_category or origin.cap_category or ("Other" if information else "Safety"),
        event=facts.get("event") or ("Informazione di pubblica utilità" if information else "Avviso di protezione civile"),
        urgency="Past" if all_clear else facts.get("urgency") or ("Expected" if information else "Immediate"),
        severity="Minor" if all_clear else facts.get("severity") or ("Minor" if information else "Severe"),
        certainty="Observed" if all_clear else facts.get("certainty") or "Likely")


def _origin_facts(s: Session, alert_id: int) -> dict[str, str]:
    """Event, urgency, severity, certainty of the CAP message an alert was made from, kept as received."""
    xml = s.scalar(select(CapMessage.xml).where(CapMessage.alert_id == alert_id).order_by(CapMessage.id).limit(1))
    if xml is None:
        return {}
    try:
        message = parse_cap(xml.encode("utf-8"), max_bytes=len(xml.encode("utf-8")))
    except CapError:
        return {}
    info = next(iter(message.infos), None)
    return {} if info is None else {"event": info.event, "urgency": info.urgency, "severity": info.severity,
                                    "certainty": info.certainty}


def published_ids(s: Session, limit: int = 100) -> list[int]:
    return list(s.scalars(select(Alert.id).where(Alert.state.in_(PUBLISHED_STATES), Alert.recipients > 0)
                          .order_by(Alert.id.desc()).limit(limit)))


def build_receiver(services: Services, audit: AuditLog) -> CapReceiver:
    """The receiver every source uses (CLI, API, watched directory, feeds), over the given services."""
    alarms = AlarmMonitor(services.sessions, services.alerts, AlarmSettings.from_config(services.config))
    return CapReceiver(audit, services.alerts, alarms, CapSettings.from_config(services.config))


def settle_alarms(sessions, *, now: dt.datetime | None = None) -> int:  # noqa: ANN001
    """Clear the CAP warnings' alarms once they need nobody: the draft was approved, rejected or
    withdrawn; a warning that made no draft (refused, ignored) after ``NOTICE_HOURS``. Returns how many."""
    now = now or utcnow()
    cleared = 0
    with sessions() as s:
        for alarm in s.scalars(select(Alarm).where(Alarm.kind == ALARM_KIND, Alarm.cleared_at.is_(None))):
            message = s.get(CapMessage, int(alarm.subject.split()[-1]))
            waiting = message is not None and message.alert_id is not None and message.outcome != "cancel" and (
                s.scalar(select(Alert.state).where(Alert.id == message.alert_id)) in WAITING_TO_GO)
            stale = now - alarm.raised_at > dt.timedelta(hours=NOTICE_HOURS)
            if not waiting and (stale or (message is not None and message.alert_id is not None)):
                alarm.cleared_at = now
                cleared += 1
        s.commit()
    return cleared
