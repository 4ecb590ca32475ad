"""Creating, approving, rejecting, cancelling alerts: the rules both the panel and the API follow.

The two-person rule (``[web] two_person_rule``): an alert asked for by an
operator waits for an approver, who must be someone else. An approver may
send at once, but only by giving a reason, which is kept with the alert and
in the audit log. Without the rule, whoever may send sends at once.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update

from gateway.core.alerts import WAITING_TO_GO, AlertError, AlertPreview, AlertRequest
from gateway.core.db import utcnow
from gateway.core.models import Alert
from gateway.core.models_panel import AlertApproval
from gateway.core.states import AlertState, ApprovalDecision
from web.context import Panel
from web.users import has_role

MODES = ("draft", "submit", "send_now")


class FlowError(Exception):
    """What was asked is not allowed or not possible; the message is for the operator.

    Like ``gateway.core.alerts.AlertError``: ``msgid`` (a gettext key with ``%(name)s``
    placeholders) and ``params``, so the panel shows it in the user's language
    (web.errors.error_message) while the API and the logs get the English ``str()``.
    """

    def __init__(self, msgid: str, **params: object) -> None:
        self.msgid = msgid
        self.params = params
        super().__init__(msgid % params if params else msgid)

    @classmethod
    def of(cls, error: AlertError) -> "FlowError":
        return cls(getattr(error, "msgid", str(error)), **getattr(error, "params", {}))


@dataclass
class Outcome:
    alert_id: int
    state: str            # draft | awaiting_approval | active
    preview: AlertPreview


def create_alert(p: Panel, request: AlertRequest, *, actor: str, role: str, mode: str,
                 reason: str = "") -> Outcome:
    if mode not in MODES:
        raise FlowError("unknown action %(action)s", action=repr(mode))
    if not has_role(role, "operator"):
        raise FlowError("your role cannot create alerts")
    rule = p.web.two_person_rule
    reason = reason.strip()
    request.created_by = actor
    if mode == "send_now" and rule:
        if not has_role(role, "approver"):
            raise FlowError("only an approver may send without approval")
        if not reason:
            raise FlowError("sending without a second person's approval needs a reason")
    if mode == "draft" or (mode == "submit" and rule):
        state = AlertState.DRAFT if mode == "draft" else AlertState.AWAITING_APPROVAL
        alert_id, preview = p.services.alerts.create_pending(request, state)
        with p.audit.transaction() as s:
            if state == AlertState.AWAITING_APPROVAL:
                s.add(AlertApproval(alert_id=alert_id, requested_by=actor))
            p.audit.record(s, actor, "alert.draft" if state == AlertState.DRAFT else "alert.request", alert_id,
                           text=request.text, channels=list(request.channels), target=request.target.describe(),
                           drill=request.drill, recipients=preview.recipients, **_extras(request))
        return Outcome(alert_id, state, preview)
    alert_id, preview = p.services.alerts.create(request)
    with p.audit.transaction() as s:
        if rule:
            s.add(AlertApproval(alert_id=alert_id, requested_by=actor, decision=ApprovalDecision.BYPASSED, decided_by=actor,
                                decided_at=utcnow(), reason=reason))
        p.audit.record(s, actor, "alert.send", alert_id, text=request.text, channels=list(request.channels),
                       target=request.target.describe(), drill=request.drill, recipients=preview.recipients,
                       reason=reason or None, two_person_rule=rule, **_extras(request))
    return Outcome(alert_id, AlertState.ACTIVE, preview)


def _extras(request: AlertRequest) -> dict:
    """What the audit log keeps of the optional parts: versions, time to send, follow-up."""
    extras: dict = {}
    if request.translations:
        extras["translations"] = dict(sorted(request.translations.items()))
    if request.send_at is not None:
        extras["send_at"] = request.send_at.isoformat() + "Z"
    if request.follows is not None:
        extras.update(follows=request.follows, follow_up=request.follow_up)
    return extras


def _alert(p: Panel, alert_id: int) -> Alert:
    with p.sessions() as s:
        alert = s.get(Alert, alert_id)
    if alert is None:
        raise FlowError("no alert with id %(id)s", id=alert_id)
    return alert


def submit_draft(p: Panel, alert_id: int, *, actor: str, role: str) -> str:
    """A draft goes for approval (rule on) or out (rule off). Returns the new state."""
    alert = _alert(p, alert_id)
    if alert.state != AlertState.DRAFT:
        raise FlowError("alert %(id)s is %(state)s, not a draft", id=alert_id, state=alert.state)
    if not p.web.two_person_rule:
        approve(p, alert_id, actor=actor, role=role, from_draft=True)
        return AlertState.ACTIVE
    with p.audit.transaction() as s:
        taken = s.execute(update(Alert).where(Alert.id == alert_id, Alert.state == AlertState.DRAFT)
                          .values(state=AlertState.AWAITING_APPROVAL)).rowcount
        if not taken:
            raise FlowError("alert %(id)s is no longer a draft", id=alert_id)
        s.add(AlertApproval(alert_id=alert_id, requested_by=actor))
        p.audit.record(s, actor, "alert.request", alert_id)
    return AlertState.AWAITING_APPROVAL


def approve(p: Panel, alert_id: int, *, actor: str, role: str, from_draft: bool = False) -> dict[str, int]:
    alert = _alert(p, alert_id)
    rule = p.web.two_person_rule
    if not from_draft:
        if not has_role(role, "approver"):
            raise FlowError("only an approver may approve an alert")
        if alert.state != AlertState.AWAITING_APPROVAL:
            raise FlowError("alert %(id)s is %(state)s, not awaiting approval", id=alert_id, state=alert.state)
        if rule and alert.created_by == actor:
            raise FlowError("the two-person rule: someone else must approve your alert")
    try:
        counts = p.services.alerts.release(alert_id)
    except AlertError as exc:
        raise FlowError.of(exc) from None
    with p.audit.transaction() as s:
        s.execute(update(AlertApproval).where(AlertApproval.alert_id == alert_id,
                                              AlertApproval.decision == ApprovalDecision.PENDING)
                  .values(decision=ApprovalDecision.APPROVED, decided_by=actor, decided_at=utcnow()))
        p.audit.record(s, actor, "alert.approve" if not from_draft else "alert.send", alert_id, recipients=counts)
    return counts


def reject(p: Panel, alert_id: int, *, actor: str, role: str, reason: str = "") -> None:
    if not has_role(role, "approver"):
        raise FlowError("only an approver may reject an alert")
    try:
        p.services.alerts.discard(alert_id, AlertState.REJECTED)
    except AlertError as exc:
        raise FlowError.of(exc) from None
    with p.audit.transaction() as s:
        s.execute(update(AlertApproval).where(AlertApproval.alert_id == alert_id,
                                              AlertApproval.decision == ApprovalDecision.PENDING)
                  .values(decision=ApprovalDecision.REJECTED, decided_by=actor, decided_at=utcnow(), reason=reason.strip() or None))
        p.audit.record(s, actor, "alert.reject", alert_id, reason=reason.strip() or None)


def cancel(p: Panel, alert_id: int, *, actor: str) -> int:
    alert = _alert(p, alert_id)
    try:
        if alert.state in WAITING_TO_GO:
            p.services.alerts.discard(alert_id, AlertState.CANCELLED)
            stopped = 0
        elif alert.state == AlertState.ACTIVE:
            stopped = p.services.alerts.cancel(alert_id)
        else:
            raise FlowError("alert %(id)s is %(state)s: nothing to cancel", id=alert_id, state=alert.state)
    except AlertError as exc:
        raise FlowError.of(exc) from None
    p.audit.write(actor, "alert.cancel", alert_id, deliveries_stopped=stopped)
    return stopped


def approvals(p: Panel, alert_id: int) -> list[AlertApproval]:
    with p.sessions() as s:
        return list(s.scalars(select(AlertApproval).where(AlertApproval.alert_id == alert_id)
                              .order_by(AlertApproval.id)))


def default_deadline(minutes: float) -> dt.datetime:
    return utcnow() + dt.timedelta(minutes=minutes)
