"""CAP warnings received (gateway/core/cap_service.py): a draft awaiting approval with an alarm, never
sent alone unless a rule says so; the same message ignored the second time; updates and cancels
following the alert made from the message they reference; refusals storing nothing."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from gateway.core.cap_service import CapRefused, settle_alarms
from gateway.core.config import load_config
from gateway.core.db import utcnow
from gateway.core.models import Alert, Delivery
from gateway.core.models_cap import CapMessage
from gateway.core.models_ops import Alarm
from gateway.core.models_panel import AlertApproval, AlertText, AuditEntry
from gateway.core.services import build_services
from gateway.core.states import AlertState, ApprovalDecision
from tests.cap_support import cap_document, coastal_town, receiver
from tests.support import write_config


@pytest.fixture
def town(services):
    coastal_town(services)
    return services


def _alert(services, alert_id: int) -> Alert:
    with services.sessions() as s:
        return s.get(Alert, alert_id)


def _count(services, model) -> int:
    with services.sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_a_regional_warning_becomes_a_draft_awaiting_approval_with_an_alarm(town):
    received = receiver(town).receive(cap_document("allerta_meteo_idraulico.xml"), "file:allerta.xml")
    assert received.outcome == "draft"
    alert = _alert(town, received.alert_id)
    assert alert.state == AlertState.AWAITING_APPROVAL and not alert.drill
    assert json.loads(alert.target)["zones"] == ["Fiumicino", "Roma", "Ladispoli"]
    assert (alert.category, alert.cap_category) == ("emergency", "Met")
    assert alert.deadline.isoformat() == "2099-10-15T21:59:00"
    assert alert.created_by == "cap:cfr@regione.lazio.example.it"
    assert "Comune di Cerveteri (ISTAT 058029)" in received.detail     # reported, not dropped
    assert "Severe" in received.detail and "Expected" in received.detail
    with town.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Delivery)) == 0        # nothing sent
        assert s.scalar(select(AlertApproval.decision).where(AlertApproval.alert_id == alert.id)) == "pending"
        alarm = s.scalar(select(Alarm).where(Alarm.kind == "cap_warning"))
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "cap.draft"))
    assert alarm.message.startswith("Avviso CAP da Centro Funzionale Regionale del Lazio per "
                                    "Bacini costieri nord (Zona B), Comune di Cerveteri: Allerta meteo arancione "
                                    f"per rischio idraulico. bozza in attesa di approvazione {alert.id}: ")
    assert json.loads(entry.details)["severity"] == "Severe"


def test_the_same_message_twice_is_ignored_idempotently(town):
    cap = receiver(town)
    first = cap.receive(cap_document("allerta_meteo_idraulico.xml"), "feed")
    again = cap.receive(cap_document("allerta_meteo_idraulico.xml"), "inbox")
    assert (again.outcome, again.alert_id, again.message_id) == ("seen", first.alert_id, first.message_id)
    assert _count(town, Alert) == 1 and _count(town, CapMessage) == 1 and _count(town, Alarm) == 1


def test_a_refused_document_stores_nothing(town):
    before = (_count(town, CapMessage), _count(town, Alert), _count(town, AuditEntry))
    with pytest.raises(CapRefused) as refused:
        receiver(town).receive(cap_document("allerta_meteo_idraulico.xml").replace(b"cap:1.2", b"cap:1.1"), "api")
    assert "<alert>: the namespace must be" in str(refused.value)
    assert (_count(town, CapMessage), _count(town, Alert), _count(town, AuditEntry)) == before


def test_languages_become_versions_and_an_exercise_a_drill(town):
    cap = receiver(town)
    multi = cap.receive(cap_document("multilingua.xml"), "file")
    with town.sessions() as s:
        versions = dict(s.execute(select(AlertText.language, AlertText.text).where(
            AlertText.alert_id == multi.alert_id)).all())
    assert sorted(versions) == ["de", "en"] and _alert(town, multi.alert_id).text.startswith("Ondata di calore")
    drill = cap.receive(cap_document("esercitazione.xml"), "file")
    alert = _alert(town, drill.alert_id)
    assert alert.drill and alert.sms_text.startswith("[ESERCITAZIONE] Frana sulla SP1")


def test_an_area_matching_no_zone_is_refused_with_the_reason_and_an_alarm(services):
    received = receiver(services).receive(cap_document("allerta_meteo_idraulico.xml"), "file")
    assert received.outcome == "refused" and received.alert_id is None
    assert "no zone matches its areas (Bacini costieri nord (Zona B) (ISTAT 058120" in received.detail
    with services.sessions() as s:
        assert "non diventato allerta: not made into an alert" in s.scalar(
            select(Alarm.message).where(Alarm.kind == "cap_warning"))


def test_an_update_of_a_draft_still_waiting_replaces_it_and_a_cancel_withdraws_the_replacement(town):
    cap = receiver(town)
    first = cap.receive(cap_document("allerta_meteo_idraulico.xml"), "file")
    update = cap.receive(cap_document("aggiornamento.xml"), "file")
    assert update.outcome == "draft" and f"replaces draft {first.alert_id}" in update.detail
    assert _alert(town, first.alert_id).state == AlertState.CANCELLED
    cancel = cap.receive(cap_document("revoca.xml"), "file")
    assert (cancel.outcome, cancel.alert_id) == ("cancel", update.alert_id)
    assert _alert(town, update.alert_id).state == AlertState.CANCELLED
    assert _count(town, Delivery) == 0


def test_an_update_and_a_cancel_of_a_warning_that_went_out_are_a_correction_and_an_all_clear(town):
    cap = receiver(town)
    first = cap.receive(cap_document("allerta_meteo_idraulico.xml"), "file")
    town.alerts.release(first.alert_id)       # an approver approved it
    update = cap.receive(cap_document("aggiornamento.xml"), "file")
    correction = _alert(town, update.alert_id)
    assert (update.outcome, correction.follows_alert_id, correction.follow_up) == ("update", first.alert_id,
                                                                                  "correction")
    assert correction.state == AlertState.AWAITING_APPROVAL
    cancel = cap.receive(cap_document("revoca.xml"), "file")
    all_clear = _alert(town, cancel.alert_id)
    # The cancel names both messages; the newest that made an alert still waiting is the update's...
    assert cancel.outcome == "cancel"
    assert all_clear.id == correction.id and all_clear.state == AlertState.CANCELLED


def test_a_cancel_after_everything_went_out_is_an_all_clear_draft(town):
    cap = receiver(town)
    first = cap.receive(cap_document("allerta_meteo_idraulico.xml"), "file")
    town.alerts.release(first.alert_id)
    cancel = cap.receive(cap_document("revoca.xml"), "file")
    all_clear = _alert(town, cancel.alert_id)
    assert (cancel.outcome, all_clear.follows_alert_id, all_clear.follow_up, all_clear.state) == (
        "cancel", first.alert_id, "all_clear", AlertState.AWAITING_APPROVAL)
    assert all_clear.text.startswith("Cessata allerta per rischio idraulico")


def test_nothing_is_sent_alone_unless_a_rule_names_the_sender_and_the_severity_is_reached(tmp_path, town):
    # The same database as ``town``'s, under a configuration with a rule.
    low = build_services(load_config(write_config(tmp_path, '[cap]\nauto_send = ["cfr@regione.lazio.example.it Extreme"]\n')))
    assert receiver(low).receive(cap_document("allerta_meteo_idraulico.xml"), "file").outcome == "draft"
    assert _alert(low, 1).state == AlertState.AWAITING_APPROVAL          # Severe < Extreme: waits
    (tmp_path / "allerta.toml").write_text((tmp_path / "allerta.toml").read_text().replace("Extreme", "Severe"))
    high = build_services(load_config(tmp_path / "allerta.toml"))
    received = receiver(high).receive(cap_document("solo_poligono.xml").replace(
        b"protocollo.prefrm@pec.interno.example.it", b"cfr@regione.lazio.example.it"), "file")
    alert = _alert(high, received.alert_id)
    assert alert.state == AlertState.ACTIVE and alert.recipients == 2   # both people in Fiumicino
    assert received.detail.startswith("sent automatically ([cap] auto_send rule cfr@regione.lazio.example.it Severe")
    with high.sessions() as s:
        approval = s.scalar(select(AlertApproval).where(AlertApproval.alert_id == alert.id))
        assert (approval.decision, approval.decided_by) == (ApprovalDecision.BYPASSED, "cap-auto-send")
        assert s.scalar(select(AuditEntry.actor).where(AuditEntry.action == "cap.auto_send")) == "cap-auto-send"


def test_the_alarm_clears_once_the_draft_is_decided_and_a_refusal_s_after_a_shift(town):
    cap = receiver(town)
    draft = cap.receive(cap_document("allerta_meteo_idraulico.xml"), "file")
    refused = cap.receive(cap_document("solo_poligono.xml").replace(b"41.76,12.22 41.76,12.28 41.80,12.28 41.80,12.22 "
                                                                    b"41.76,12.22", b"45,9 45,9.1 45.1,9.1 45,9"), "file")
    assert refused.outcome == "refused"
    assert settle_alarms(town.sessions) == 0                    # both still need someone
    town.alerts.release(draft.alert_id)
    assert settle_alarms(town.sessions) == 1
    assert settle_alarms(town.sessions, now=utcnow() + dt.timedelta(hours=13)) == 1
    with town.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Alarm).where(Alarm.cleared_at.is_(None))) == 0


def test_a_cancel_of_a_warning_whose_draft_was_rejected_tells_nobody(town):
    cap = receiver(town)
    first = cap.receive(cap_document("allerta_meteo_idraulico.xml"), "file")
    town.alerts.discard(first.alert_id)                     # an approver rejected it
    cancel = cap.receive(cap_document("revoca.xml"), "file")
    assert (cancel.outcome, cancel.alert_id) == ("ignored", None)
    assert f"alert {first.alert_id} never went out (rejected)" in cancel.detail
    assert _count(town, Alert) == 1


def test_the_same_message_through_two_sources_at_once_makes_one_draft(town, monkeypatch):
    cap, other = receiver(town), receiver(town)
    original = cap._act

    def the_other_source_wins_the_race(*args, **kwargs):
        other.receive(cap_document("allerta_meteo_idraulico.xml"), "feed")     # lands between our check and insert
        return original(*args, **kwargs)

    monkeypatch.setattr(cap, "_act", the_other_source_wins_the_race)
    received = cap.receive(cap_document("allerta_meteo_idraulico.xml"), "inbox")
    assert received.outcome == "seen"
    assert _count(town, Alert) == 1 and _count(town, CapMessage) == 1


def test_a_message_with_nothing_to_say_is_recorded_as_ignored(town):
    document = cap_document("aggiornamento.xml")
    bare = document[:document.index(b"<info>")] + b"</alert>"
    received = receiver(town).receive(bare, "file")
    assert (received.outcome, received.alert_id) == ("ignored", None)
    assert received.detail == "msgType Update without <info>: nothing to tell citizens"
    assert _count(town, Alert) == 0 and _count(town, CapMessage) == 1


def test_a_bare_cancel_of_a_warning_that_went_out_names_the_warning_it_ends(town):
    cap = receiver(town)
    first = cap.receive(cap_document("allerta_meteo_idraulico.xml"), "file")
    town.alerts.release(first.alert_id)
    document = cap_document("revoca.xml")
    cancel = cap.receive(document[:document.index(b"<info>")] + b"</alert>", "file")
    assert cancel.outcome == "cancel"
    assert _alert(town, cancel.alert_id).text == ("REVOCATO l'avviso: Allerta ARANCIONE per rischio idraulico "
                                                  "dalle 00:00 del 15/10")
