"""Creating, approving, rejecting, cancelling alerts: the rules both the panel and the API follow.

The two-person rule (``[web] two_person_rule``): an alert asked for by an
operator waits for an approver, who is neither the person who wrote it nor the
one who asked for its approval. An approver may send at once, but only by
giving a reason, which is kept with the alert ("bypassed") and in the audit
log. Without the rule, whoever may send sends at once.

During an election period (law 28/2000, art. 9; gateway/core/elections.py) an information message
goes out only with an approver's reason that it is impersonal and indispensable: the approver gives
it when approving (or when sending at once); an operator's information alert may be written and
submitted, never sent without it. The reason is kept with the alert and in the audit entry.

A draft belongs to its author: only they submit it or throw it away, unless
they share it, and then any operator may. Nobody, admins included, submits an
unshared draft of someone else's: it may be half written. Who may cancel is
``may_cancel``. Each change is committed together with its audit entry, in one
transaction: neither exists without the other.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.core.alerts import WAITING_TO_GO, AlertError, AlertPreview, AlertRequest, answers_audited
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
                 reason: str = "", shared: bool = False) -> Outcome:
    """``shared``: a draft other operators may submit or cancel too (see the module's docstring)."""
    if mode not in MODES:
        raise FlowError("unknown action %(action)s", action=repr(mode))
    if not has_role(role, "operator"):
        raise FlowError("your role cannot create alerts")
    rule = p.web.two_person_rule
    reason = reason.strip()
    shared = shared and mode == "draft"
    request.created_by = actor
    _election_reason_from(request, actor=actor, role=role)
    if mode == "send_now" and rule:
        if not has_role(role, "approver"):
            raise FlowError("only an approver may send without approval")
        if not reason:
            raise FlowError("sending without a second person's approval needs a reason")
    if mode == "draft" or (mode == "submit" and rule):
        state = AlertState.DRAFT if mode == "draft" else AlertState.AWAITING_APPROVAL
        with p.audit.transaction() as s:
            alert_id, preview = p.services.alerts.create_pending(request, state, session=s)
            if shared:
                s.get(Alert, alert_id).shared = True
            if state == AlertState.AWAITING_APPROVAL:
                s.add(AlertApproval(alert_id=alert_id, requested_by=actor))
            p.audit.record(s, actor, "alert.draft" if state == AlertState.DRAFT else "alert.request", alert_id,
                           text=request.text, channels=list(request.channels), target=request.target.describe(),
                           drill=request.drill, recipients=preview.recipients, shared=shared or None,
                           **_extras(request))
        return Outcome(alert_id, state, preview)
    with p.audit.transaction() as s:
        alert_id, preview = p.services.alerts.create(request, session=s)
        if rule:
            s.add(AlertApproval(alert_id=alert_id, requested_by=actor, decision=ApprovalDecision.BYPASSED, decided_by=actor,
                                decided_at=utcnow(), reason=reason))
        p.audit.record(s, actor, "alert.send", alert_id, text=request.text, channels=list(request.channels),
                       target=request.target.describe(), drill=request.drill, recipients=preview.recipients,
                       reason=reason or None, two_person_rule=rule, bypassed_two_person_rule=rule,
                       **_extras(request))
    return Outcome(alert_id, AlertState.ACTIVE, preview)


def _election_reason_from(request: AlertRequest, *, actor: str, role: str) -> None:
    """Only an approver's election-period reason counts: theirs is recorded as given by them."""
    request.election_reason = (request.election_reason or "").strip() or None
    if request.election_reason is None:
        request.election_reason_by = None
        return
    if not has_role(role, "approver"):
        raise FlowError("only an approver may give the election-period reason (law 28/2000, art. 9): "
                        "submit the alert and an approver gives it when approving")
    request.election_reason_by = actor


def _extras(request: AlertRequest) -> dict:
    """What the audit log keeps of the optional parts: category, election-period reason, versions,
    time to send, follow-up."""
    extras: dict = {"category": request.category, "cap_category": request.cap_category}
    if request.election_reason:
        extras["election_reason"] = request.election_reason
    if request.translations:
        extras["translations"] = dict(sorted(request.translations.items()))
    if request.send_at is not None:
        extras["send_at"] = request.send_at.isoformat() + "Z"
    if request.follows is not None:
        extras.update(follows=request.follows, follow_up=request.follow_up)
    extras.update(answers_audited(request))
    return extras


def _alert(p: Panel, alert_id: int, session: Session | None = None) -> Alert:
    if session is not None:
        alert = session.get(Alert, alert_id)
    else:
        with p.sessions() as s:
            alert = s.get(Alert, alert_id)
    if alert is None:
        raise FlowError("no alert with id %(id)s", id=alert_id)
    return alert


def may_change_draft(alert: Alert, *, actor: str, role: str) -> bool:
    """Submit it, cancel it, share it: its author, or any operator once the author shared it."""
    return has_role(role, "operator") and (alert.created_by == actor or alert.shared)


def _pending_request(s: Session, alert_id: int) -> AlertApproval | None:
    """The request for approval an approver would answer (who asked, and when)."""
    return s.scalar(select(AlertApproval).where(AlertApproval.alert_id == alert_id,
                                                AlertApproval.decision == ApprovalDecision.PENDING)
                    .order_by(AlertApproval.id.desc()).limit(1))


def share_draft(p: Panel, alert_id: int, *, actor: str, shared: bool) -> None:
    """The author lets other operators submit or cancel their draft (``shared``), or stops."""
    with p.audit.transaction() as s:
        alert = _alert(p, alert_id, s)
        if alert.state != AlertState.DRAFT:
            raise FlowError("alert %(id)s is %(state)s, not a draft", id=alert_id, state=alert.state)
        if alert.created_by != actor:
            raise FlowError("only the author of a draft may share it")
        alert.shared = shared
        p.audit.record(s, actor, "alert.share" if shared else "alert.unshare", alert_id)


def submit_draft(p: Panel, alert_id: int, *, actor: str, role: str, election_reason: str = "") -> str:
    """A draft goes for approval (rule on) or out (rule off). Returns the new state."""
    alert = _alert(p, alert_id)
    if alert.state != AlertState.DRAFT:
        raise FlowError("alert %(id)s is %(state)s, not a draft", id=alert_id, state=alert.state)
    if not may_change_draft(alert, actor=actor, role=role):
        raise FlowError("this draft belongs to %(author)s: only they may submit it, unless they share it",
                        author=alert.created_by)
    if not p.web.two_person_rule:
        approve(p, alert_id, actor=actor, role=role, from_draft=True, election_reason=election_reason)
        return AlertState.ACTIVE
    with p.audit.transaction() as s:
        taken = s.execute(update(Alert).where(Alert.id == alert_id, Alert.state == AlertState.DRAFT)
                          .values(state=AlertState.AWAITING_APPROVAL)).rowcount
        if not taken:
            raise FlowError("alert %(id)s is no longer a draft", id=alert_id)
        # Who asked, and when (requested_at): that person may not approve it either.
        s.add(AlertApproval(alert_id=alert_id, requested_by=actor))
        p.audit.record(s, actor, "alert.request", alert_id)
    return AlertState.AWAITING_APPROVAL


def approve(p: Panel, alert_id: int, *, actor: str, role: str, from_draft: bool = False,
            election_reason: str = "") -> dict[str, int]:
    """Send an alert awaiting approval (or, ``from_draft``, a draft without the two-person rule).
    ``election_reason``: the approver's reason, needed for information during an election period."""
    rule = p.web.two_person_rule
    election_reason = election_reason.strip()
    if election_reason and not has_role(role, "approver"):
        raise FlowError("only an approver may give the election-period reason (law 28/2000, art. 9): "
                        "submit the alert and an approver gives it when approving")
    with p.audit.transaction() as s:
        alert = _alert(p, alert_id, s)
        if not from_draft:
            if not has_role(role, "approver"):
                raise FlowError("only an approver may approve an alert")
            if alert.state != AlertState.AWAITING_APPROVAL:
                raise FlowError("alert %(id)s is %(state)s, not awaiting approval", id=alert_id, state=alert.state)
            if rule and alert.created_by == actor:
                raise FlowError("the two-person rule: someone else must approve your alert")
            asked = _pending_request(s, alert_id)
            if rule and asked is not None and asked.requested_by == actor:
                raise FlowError("the two-person rule: you asked for this approval, someone else must give it")
        try:
            counts = p.services.alerts.release(alert_id, session=s, election_reason=election_reason,
                                               election_reason_by=actor)
        except AlertError as exc:
            raise FlowError.of(exc) from None
        s.execute(update(AlertApproval).where(AlertApproval.alert_id == alert_id,
                                              AlertApproval.decision == ApprovalDecision.PENDING)
                  .values(decision=ApprovalDecision.APPROVED, decided_by=actor, decided_at=utcnow()))
        p.audit.record(s, actor, "alert.approve" if not from_draft else "alert.send", alert_id, recipients=counts,
                       election_reason=election_reason or None)
    return counts


def reject(p: Panel, alert_id: int, *, actor: str, role: str, reason: str = "") -> None:
    if not has_role(role, "approver"):
        raise FlowError("only an approver may reject an alert")
    with p.audit.transaction() as s:
        try:
            p.services.alerts.discard(alert_id, AlertState.REJECTED, session=s)
        except AlertError as exc:
            raise FlowError.of(exc) from None
        s.execute(update(AlertApproval).where(AlertApproval.alert_id == alert_id,
                                              AlertApproval.decision == ApprovalDecision.PENDING)
                  .values(decision=ApprovalDecision.REJECTED, decided_by=actor, decided_at=utcnow(), reason=reason.strip() or None))
        p.audit.record(s, actor, "alert.reject", alert_id, reason=reason.strip() or None)


def may_cancel(alert: Alert, requested_by: str | None, *, actor: str, role: str) -> bool:
    """Who may stop an alert.

    A draft: whoever may change it (its author; any operator once shared) and admins, who clear
    what a departed operator left. Waiting for approval or being sent: its author, the person who
    asked for its approval, approvers and admins; a plain operator never stops someone else's
    live alert (an approver's included): they ask an approver.
    """
    if has_role(role, "admin"):
        return True
    if alert.state == AlertState.DRAFT:
        return may_change_draft(alert, actor=actor, role=role)
    return has_role(role, "approver") or (has_role(role, "operator") and actor in (alert.created_by, requested_by))


def cancel(p: Panel, alert_id: int, *, actor: str, role: str, reason: str = "") -> int:
    """Stop an alert, recording who and why; a reason is needed unless it is one's own draft."""
    reason = reason.strip()
    with p.audit.transaction() as s:
        alert = _alert(p, alert_id, s)
        if alert.state not in (*WAITING_TO_GO, AlertState.ACTIVE):
            raise FlowError("alert %(id)s is %(state)s: nothing to cancel", id=alert_id, state=alert.state)
        asked = _pending_request(s, alert_id)
        if not may_cancel(alert, asked.requested_by if asked else None, actor=actor, role=role):
            raise FlowError("only its author, an approver or an administrator may cancel alert %(id)s",
                            id=alert_id)
        own_draft = alert.state == AlertState.DRAFT and alert.created_by == actor
        if not reason and not own_draft:
            raise FlowError("say why the alert is cancelled")
        state = alert.state
        try:
            if state in WAITING_TO_GO:
                p.services.alerts.discard(alert_id, AlertState.CANCELLED, session=s)
                stopped = 0
            else:
                stopped = p.services.alerts.cancel(alert_id, session=s)
        except AlertError as exc:
            raise FlowError.of(exc) from None
        p.audit.record(s, actor, "alert.cancel", alert_id, deliveries_stopped=stopped, reason=reason or None,
                       was=state)
    return stopped


def approvals(p: Panel, alert_id: int) -> list[AlertApproval]:
    with p.sessions() as s:
        return list(s.scalars(select(AlertApproval).where(AlertApproval.alert_id == alert_id)
                              .order_by(AlertApproval.id)))


def default_deadline(minutes: float) -> dt.datetime:
    return utcnow() + dt.timedelta(minutes=minutes)
