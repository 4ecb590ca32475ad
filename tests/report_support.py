"""A realistic alert for the after-action report's tests, made the way the panel makes one.

Over the sample contacts (tests/support.py: Mario and Anna in Isola Sacra sharing a landline, Anna
vulnerable; Ion and Giulia in Fregene, Giulia vulnerable): an operator asks for an SMS and voice
alert to everyone with a poll, an approver approves it, the engine's outcomes are written as the
engine writes them (one SMS line fails and raises an alarm), citizens vote and ask for help, one
request is handled, the approver cancels what is left and an all-clear follows, approved in turn.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from gateway.core import inbox
from gateway.core.alerts import AlertRequest, Target
from gateway.core.db import utcnow
from gateway.core.models import Attempt, Delivery, Line
from gateway.core.models_citizens import HelpRequest, PollVote
from gateway.core.models_ops import Alarm
from gateway.core.polls import Poll
from web import alert_flow

TEXT = "Allerta rossa: esondazione del Tevere, salire ai piani alti"
QUESTION = "Siete al sicuro?"
OPTIONS = ("sì", "no, serve aiuto")
OPERATOR, APPROVER = "otto", "anna"
MARIO, ANNA, ION, GIULIA, LANDLINE = "+393331110001", "+393331110002", "+393207654321", "+393470000003", "+390665211234"

# (number, channel) -> (final state, [(line, outcome, error), ...] one per attempt)
OUTCOMES = {
    (MARIO, "sms"): ("delivered", [("tim-1", "sent", None)]),
    (ANNA, "sms"): ("failed", [("vodafone-2", "failed", "+CMS ERROR 38: network out of order")]),
    (ION, "sms"): ("delivered", [("tim-1", "sent", None)]),
    (MARIO, "voice"): ("confirmed", [("pstn", "confirmed", None)]),
    (ANNA, "voice"): ("failed", [("pstn", "no_answer", "no answer"), ("pstn", "no_answer", "no answer")]),
    (LANDLINE, "voice"): ("failed", [("pstn", "busy", "busy (Q.850 17 user busy)")]),
    (ION, "voice"): ("answered", [("pstn", "answered", None)]),
    # Giulia's two are still queued when the alert is cancelled.
}


def make_realistic_alert(panel) -> dict:  # noqa: ANN001 - web.context.Panel
    """The alert above; returns its id, its all-clear's and the figures a reader checks."""
    request = AlertRequest(text=TEXT, target=Target(everyone=True), channels=("sms", "voice"),
                           audio_path="/nonexistent/alert", audio_seconds=4.0, audio_source="tts",
                           poll=Poll(QUESTION, OPTIONS))
    alert_id = alert_flow.create_alert(panel, request, actor=OPERATOR, role="operator", mode="submit").alert_id
    alert_flow.approve(panel, alert_id, actor=APPROVER, role="approver")
    start = utcnow() - dt.timedelta(minutes=30)
    with panel.sessions.begin() as s:
        s.add_all([Line(channel="sms", label="tim-1", state="up", rate_per_minute=12.0, updated_at=utcnow()),
                   Line(channel="sms", label="vodafone-2", state="down", rate_per_minute=0.0,
                        last_error="SIM not registered", updated_at=utcnow()),
                   Line(channel="voice", label="pstn", state="up", rate_per_minute=30.0, updated_at=utcnow())])
        s.add(Alarm(kind="modem_lost", subject="vodafone-2", message="vodafone-2 stopped answering",
                    raised_at=start + dt.timedelta(minutes=2)))
        deliveries = {(d.e164, d.channel): d for d in s.scalars(select(Delivery).where(Delivery.alert_id == alert_id))}
        for minute, ((number, channel), (state, tries)) in enumerate(OUTCOMES.items()):
            delivery = deliveries[(number, channel)]
            at = start + dt.timedelta(minutes=minute)
            for n, (line, outcome, error) in enumerate(tries):
                s.add(Attempt(delivery_id=delivery.id, channel=channel, line=line, outcome=outcome, error=error,
                              started_at=at + dt.timedelta(seconds=30 * n), ended_at=at + dt.timedelta(seconds=30 * n + 20),
                              answered_at=at + dt.timedelta(seconds=5) if outcome in ("confirmed", "answered") else None))
            delivery.state, delivery.line, delivery.attempts = state, tries[-1][0], len(tries)
            delivery.sent_at = at
            delivery.delivered_at = at + dt.timedelta(seconds=8) if state == "delivered" else None
            delivery.last_error = tries[-1][2]
        s.add_all([PollVote(alert_id=alert_id, e164=ION, option=1), PollVote(alert_id=alert_id, e164=MARIO, option=2)])
        s.add_all([HelpRequest(alert_id=alert_id, e164=GIULIA, text="siamo bloccati al piano terra",
                               received_at=start + dt.timedelta(minutes=10)),
                   HelpRequest(alert_id=alert_id, e164=ANNA, text="aiuto, acqua in casa",
                               received_at=start + dt.timedelta(minutes=12))])
    with panel.sessions() as s:
        giulia_help = s.scalar(select(HelpRequest.id).where(HelpRequest.e164 == GIULIA))
    inbox.mark_handled(panel.audit, giulia_help, actor=OPERATOR, note="vigili del fuoco inviati")
    stopped = alert_flow.cancel(panel, alert_id, actor=APPROVER, role="approver", reason="piena passata")
    all_clear = AlertRequest(text="Cessato allarme: la piena è passata.", target=Target(), channels=("sms",),
                             follows=alert_id, follow_up="all_clear")
    all_clear_id = alert_flow.create_alert(panel, all_clear, actor=OPERATOR, role="operator",
                                           mode="submit").alert_id
    alert_flow.approve(panel, all_clear_id, actor=APPROVER, role="approver")
    return {"alert_id": alert_id, "all_clear_id": all_clear_id, "stopped": stopped}


def mark_all_reached(panel, alert_id: int) -> None:  # noqa: ANN001
    with panel.sessions.begin() as s:
        s.execute(update(Delivery).where(Delivery.alert_id == alert_id).values(state="delivered"))
