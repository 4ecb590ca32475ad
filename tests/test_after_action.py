"""The after-action report's facts (gateway/core/after_action.py): what the mayor reads the day after."""
from __future__ import annotations

import pytest
from sqlalchemy import event, func, select

from gateway.core import after_action
from gateway.core.audit import audit_log_for
from gateway.core.db import utcnow
from gateway.core.models import Attempt, Delivery
from gateway.core.models_citizens import HelpRequest
from gateway.core.states import DELIVERY_BUCKETS
from gateway.shell.bench import seed_contacts
from gateway.core.alerts import AlertRequest, Target
from tests.report_support import APPROVER, GIULIA, ANNA, OPERATOR, QUESTION, make_realistic_alert
from tests.web_support import client_for
from web.progress import BUCKETS

pytestmark = pytest.mark.both_databases


def _gather(panel, alert_id: int) -> after_action.AfterAction:
    with panel.sessions() as s:
        return after_action.gather(s, alert_id, now=utcnow(), stale_seconds=180)


def test_the_report_counts_exactly_what_the_alert_page_shows(app, panel):
    alert_id = make_realistic_alert(panel)["alert_id"]
    facts = _gather(panel, alert_id)
    page = client_for(app, "viewer").get(f"/alerts/{alert_id}/progress.json").get_json()["progress"]

    assert facts.overall.total == page["total"] == 9
    assert facts.overall.percent_done == page["percent"]
    for bucket in ("queued", "in_progress", "sent", "reached", "failed", "cancelled"):
        assert facts.overall.buckets[bucket] == page[bucket], bucket
        for channel, figures in page["channels"].items():
            assert facts.by_channel[channel].buckets[bucket] == figures[bucket], (channel, bucket)
    assert list(facts.by_channel) == ["sms", "voice"]
    assert (facts.by_channel["sms"].reached, facts.by_channel["voice"].reached) == (2, 2)
    assert facts.overall.percent_reached == 44.4
    # By zone and by vulnerability: every delivery counted once in each.
    assert {zone: r.total for zone, r in facts.by_zone.items()} == {"Fregene": 4, "Isola Sacra": 5}
    assert sum(r.total for r in facts.by_vulnerability.values()) == 9
    assert (facts.by_vulnerability[True].reached, facts.by_vulnerability[False].reached) == (0, 4)
    # People, not deliveries: Mario's and Ion's numbers; the landline shared with Anna was busy.
    assert (facts.numbers, facts.numbers_reached) == (5, 2)
    assert BUCKETS is DELIVERY_BUCKETS   # one table for the page and the report


def test_the_timeline_says_who_asked_who_approved_who_cancelled_and_when_each_channel_went_out(panel):
    made = make_realistic_alert(panel)
    facts = _gather(panel, made["alert_id"])
    events = {event.kind: event for event in facts.timeline}
    assert (events["created"].actor, events["alert.request"].actor) == (OPERATOR, OPERATOR)
    assert events["alert.approve"].actor == APPROVER
    assert events["alert.cancel"].actor == APPROVER
    assert events["alert.cancel"].details == {"reason": "piena passata", "deliveries_stopped": made["stopped"]}
    assert events["follow_up.all_clear"].details == {"alert": made["all_clear_id"], "state": "active"}
    assert [event.at for event in facts.timeline] == sorted(event.at for event in facts.timeline)
    with panel.sessions() as s:
        for channel in ("sms", "voice"):
            first, last = s.execute(select(func.min(Attempt.started_at), func.max(Attempt.started_at))
                                    .join(Delivery, Delivery.id == Attempt.delivery_id)
                                    .where(Delivery.alert_id == made["alert_id"], Attempt.channel == channel)).one()
            assert (events[f"first.{channel}"].at, events[f"last.{channel}"].at) == (first, last)
    assert "first_reached.sms" in events and "first_reached.voice" in events
    # The two-person rule's record: asked by the operator, decided by someone else.
    [approval] = facts.approvals
    assert (approval.requested_by, approval.decision, approval.decided_by) == (OPERATOR, "approved", APPROVER)
    assert [f.id for f in facts.follow_ups] == [made["all_clear_id"]]
    # The all-clear's own report names the alert it closes.
    assert _gather(panel, made["all_clear_id"]).original.id == made["alert_id"]


def test_unreached_vulnerable_people_help_requests_and_the_poll(panel):
    alert_id = make_realistic_alert(panel)["alert_id"]
    facts = _gather(panel, alert_id)
    assert sorted(p["name"] for p in facts.door_knock) == ["Anna Rossi", "Giulia Verdi"]
    assert facts.door_knock_total == 2 and facts.door_knock_by_zone == {"Fregene": 1, "Isola Sacra": 1}
    assert (facts.help_total, facts.help_handled, facts.help_open) == (2, 1, 1)
    with panel.sessions() as s:
        received, handled = s.execute(select(HelpRequest.received_at, HelpRequest.handled_at)
                                      .where(HelpRequest.e164 == GIULIA)).one()
    assert facts.help_median_minutes == round((handled - received).total_seconds() / 60, 1)
    handled_row = next(h for h in facts.help_requests if h["e164"] == GIULIA)
    assert (handled_row["handled_by"], handled_row["note"]) == (OPERATOR, "vigili del fuoco inviati")
    assert next(h for h in facts.help_requests if h["e164"] == ANNA)["handled_at"] is None
    assert facts.poll["question"] == QUESTION and facts.poll["votes"] == 2


def test_lines_that_failed_are_the_ones_down_or_alarmed_not_those_whose_calls_went_unanswered(panel):
    alert_id = make_realistic_alert(panel)["alert_id"]
    facts = _gather(panel, alert_id)
    lines = {line.label: line for line in facts.lines}
    assert (lines["tim-1"].attempts, lines["tim-1"].failed) == (2, 0)
    assert (lines["vodafone-2"].attempts, lines["vodafone-2"].failed) == (1, 1)
    assert (lines["pstn"].attempts, lines["pstn"].failed) == (5, 3)   # two unanswered, one busy
    assert [line.label for line in facts.failed_lines] == ["vodafone-2"]
    assert [alarm.subject for alarm in facts.alarms] == ["vodafone-2"]
    assert facts.rates_now == {"sms": 12.0, "voice": 30.0}
    assert facts.top_errors[0] == ("no answer", 2)
    assert dict(facts.top_errors)["+CMS ERROR 38: network out of order"] == 1


def test_the_audit_head_is_the_logs(panel):
    alert_id = make_realistic_alert(panel)["alert_id"]
    facts = _gather(panel, alert_id)
    assert facts.audit_head == audit_log_for(panel.config, panel.sessions).head()
    assert facts.audit_head.count >= 5


def test_an_unknown_alert_is_a_clear_error(panel):
    with pytest.raises(after_action.ReportError, match="no alert with id 999"):
        _gather(panel, 999)


def test_gathering_runs_as_many_queries_for_many_recipients_as_for_few(panel):
    """Everything is counted in SQL: the number of statements does not grow with the recipients."""
    small = make_realistic_alert(panel)["alert_id"]
    seed_contacts(panel.services.engine, 400, ("Zona A", "Zona B"))
    big, _preview = panel.services.alerts.create(AlertRequest(text="Prova", target=Target(zones=("Zona A", "Zona B")),
                                                              created_by="test"))
    statements = []

    def count(*_args) -> None:
        statements.append(1)
    event.listen(panel.services.engine, "before_cursor_execute", count)
    try:
        _gather(panel, small)
        for_small = len(statements)
        statements.clear()
        facts = _gather(panel, big)
    finally:
        event.remove(panel.services.engine, "before_cursor_execute", count)
    assert facts.overall.total == 400 and facts.door_knock_total == 400 // 12 + 1   # queued: nobody reached yet
    assert len(statements) <= for_small


def test_the_door_knock_list_is_printed_whole_or_only_counted(panel, monkeypatch):
    """A first part of the list, sorted by zone, would send volunteers to one zone only."""
    alert_id = make_realistic_alert(panel)["alert_id"]
    monkeypatch.setattr(after_action, "DOOR_KNOCK_PRINTED", 1)
    facts = _gather(panel, alert_id)
    assert facts.door_knock == [] and facts.door_knock_total == 2
    assert facts.door_knock_by_zone == {"Fregene": 1, "Isola Sacra": 1}
