"""Emergency versus information (issue 14): defaults and validation, STOP INFO, the election lock, in the
core and the command line. Quiet hours are in tests/test_quiet_hours.py, the panel and the API in
tests/test_web_categories.py."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from sqlalchemy import func, select, update

from gateway.core.alerts import AlertError, AlertRequest, AlertService, Target
from gateway.core.audit import audit_log_for, local_actor
from gateway.core.db import utcnow
from gateway.core.elections import ElectionError, add_period, parse_moment
from gateway.core.models import Alert, Delivery, PhoneNumberRow
from gateway.core.models_cap import ElectionPeriod
from gateway.core.models_panel import AuditEntry
from gateway.shell.cli import main

ANNA = "+393331110002"     # Isola Sacra, vulnerable, sent STOP INFO in these tests


def _request(**fields) -> AlertRequest:
    return AlertRequest(**{"text": "Acqua sospesa domani dalle 9 alle 12", "target": Target(zones=("Isola Sacra",)),
                           **fields})


def _alerts(services) -> int:
    with services.sessions() as s:
        return s.scalar(select(func.count()).select_from(Alert))


def _period_now(services, description="Comunali 2027") -> None:
    now = utcnow()
    add_period(audit_log_for(services.config, services.sessions), now - dt.timedelta(days=1),
               now + dt.timedelta(days=1), description, actor="test")


# --- defaults and validation ------------------------------------------------------------------
@pytest.mark.parametrize("fields, category, cap", [
    ({}, "emergency", "Safety"),                                                    # not chosen: emergency
    ({"drill": True, "send_at": utcnow() + dt.timedelta(days=1)}, "emergency", "Safety"),   # a drill, even later
    ({"send_at": utcnow() + dt.timedelta(days=1)}, "information", None),            # scheduled: information
    ({"cap_category": "met"}, "emergency", "Met"),                                  # a CAP category names one
    ({"category": "Information"}, "information", None),
    ({"category": "emergency", "cap_category": "CBRNE"}, "emergency", "CBRNE"),
])
def test_category_defaults_and_what_is_stored(contacts, fields, category, cap):
    alert_id, _ = contacts.alerts.create(_request(**fields))
    with contacts.sessions() as s:
        alert = s.get(Alert, alert_id)
    assert (alert.category, alert.cap_category) == (category, cap)
    status = contacts.alerts.status(alert_id)
    assert (status["category"], status["cap_category"]) == (category, cap)


@pytest.mark.parametrize("fields, message", [
    ({"category": "urgente"}, "unknown category 'urgente': emergency or information"),
    ({"category": "information", "cap_category": "Met"}, "a CAP category (Met) is what an emergency is about"),
    ({"cap_category": "Weather"}, "unknown CAP category 'Weather': one of Geo, Met, Safety"),
])
def test_a_bad_category_is_refused_and_nothing_is_stored(contacts, fields, message):
    with pytest.raises(AlertError, match=message.replace("(", r"\(").replace(")", r"\)")):
        contacts.alerts.create(_request(**fields))
    assert _alerts(contacts) == 0


def test_a_follow_up_takes_the_category_of_what_it_corrects(contacts):
    original, _ = contacts.alerts.create(_request(category="information"))
    correction, _ = contacts.alerts.create(_request(text="Rettifica: dalle 10 alle 12", follows=original,
                                                    follow_up="correction"))
    with contacts.sessions() as s:
        assert s.get(Alert, correction).category == "information"


# --- STOP INFO ------------------------------------------------------------------------------------
def test_stop_info_skips_information_only(contacts):
    with contacts.sessions.begin() as s:
        s.execute(update(PhoneNumberRow).where(PhoneNumberRow.e164 == ANNA).values(opted_out_info=True))
    information = _request(category="information")
    assert contacts.alerts.preview(dataclasses.replace(information)).recipients == {"sms": 1}
    info_id, created = contacts.alerts.create(information)
    emergency_id, _ = contacts.alerts.create(_request(text="Allerta rossa: salire ai piani alti"))
    with contacts.sessions() as s:
        def numbers(alert_id):
            return set(s.scalars(select(Delivery.e164).where(Delivery.alert_id == alert_id)))
        assert numbers(info_id) == {"+393331110001"} and created.recipients == {"sms": 1}
        assert numbers(emergency_id) == {"+393331110001", ANNA}    # an emergency reaches her all the same
    # The same for a number typed with --to.
    assert contacts.alerts.preview(_request(category="information", target=Target(numbers=(ANNA,)))).recipients \
        == {"sms": 0}


# --- the election lock -----------------------------------------------------------------------------
def test_the_election_lock_refuses_information_without_a_reason_and_changes_nothing(contacts):
    _period_now(contacts)
    with pytest.raises(AlertError) as refused:
        contacts.alerts.create(_request(category="information"))
    assert "election period 'Comunali 2027'" in str(refused.value) and "law 28/2000, art. 9" in str(refused.value)
    assert _alerts(contacts) == 0
    # With an approver's reason it goes, and the reason is kept with the alert.
    alert_id, _ = contacts.alerts.create(_request(category="information", election_reason="acqua non potabile",
                                                  election_reason_by="anna"))
    with contacts.sessions() as s:
        alert = s.get(Alert, alert_id)
    assert (alert.election_reason, alert.election_reason_by) == ("acqua non potabile", "anna")
    # Emergencies go as always.
    contacts.alerts.create(_request(text="Allerta rossa: salire ai piani alti"))
    assert _alerts(contacts) == 2


def test_the_lock_looks_at_when_the_message_goes_out(contacts):
    start = utcnow() + dt.timedelta(days=2)
    add_period(audit_log_for(contacts.config, contacts.sessions), start, start + dt.timedelta(days=5),
               "Europee", actor="test")
    contacts.alerts.create(_request(send_at=start - dt.timedelta(hours=1)))     # goes before: no reason needed
    with pytest.raises(AlertError, match="'Europee'"):
        contacts.alerts.create(_request(send_at=start + dt.timedelta(hours=1)))


def test_releasing_information_during_a_period_needs_the_reason(contacts):
    alert_id, _ = contacts.alerts.create_pending(_request(category="information"))
    _period_now(contacts)
    with pytest.raises(AlertError, match="impersonal and indispensable"):
        contacts.alerts.release(alert_id)
    with contacts.sessions() as s:
        assert s.get(Alert, alert_id).state == "awaiting_approval"
        assert s.scalar(select(func.count()).select_from(Delivery)) == 0
    contacts.alerts.release(alert_id, election_reason="ordinanza sindacale", election_reason_by="anna")
    with contacts.sessions() as s:
        alert = s.get(Alert, alert_id)
    assert (alert.state, alert.election_reason_by) == ("active", "anna")


def test_moments_are_read_in_italian_time_and_a_date_alone_is_a_whole_day():
    assert parse_moment("2027-05-25", option="--from") == dt.datetime(2027, 5, 24, 22, 0)         # CEST, +2
    assert parse_moment("2027-05-25", option="--to", end_of_day=True) == dt.datetime(2027, 5, 25, 22, 0)
    assert parse_moment("2027-01-10 15:00", option="--to") == dt.datetime(2027, 1, 10, 14, 0)     # CET, +1
    with pytest.raises(ElectionError, match="--from '25/05/2027': not a date"):
        parse_moment("25/05/2027", option="--from")


# --- the command line -------------------------------------------------------------------------------
def _cli(config_path, capsys, *args) -> tuple[int, str, str]:
    code = main(["--config", str(config_path), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_asks_for_the_category_and_refuses_a_bad_one(contacts, config_path, capsys):
    send = ("alert", "send", "--sms", "--zone", "Isola Sacra", "--text", "Scuole chiuse domani")
    code, out, err = _cli(config_path, capsys, *send, "--category", "information")
    assert code == 0 and "[information]" in err
    code, out, err = _cli(config_path, capsys, *send, "--cap-category", "Fire")
    assert code == 0 and "[emergency: Fire]" in err
    code, out, err = _cli(config_path, capsys, *send, "--cap-category", "Incendio")
    assert code == 2 and "unknown CAP category 'Incendio'" in err
    with pytest.raises(SystemExit):
        main(["--config", str(config_path), *send, "--category", "urgente"])
    assert "invalid choice: 'urgente'" in capsys.readouterr().err
    code, out, err = _cli(config_path, capsys, "alert", "status", "1")
    assert "(active, information)" in out
    assert _alerts(contacts) == 2


def test_cli_elections_and_the_lock(contacts, config_path, capsys):
    today = dt.date.today()
    code, out, err = _cli(config_path, capsys, "elections", "add", "--from", str(today - dt.timedelta(days=3)),
                          "--to", str(today + dt.timedelta(days=3)), "--description", "Comunali 2027")
    assert code == 0 and "election period 1 recorded: Comunali 2027" in out
    code, out, err = _cli(config_path, capsys, "elections", "add", "--from", "2027-05-25", "--to", "2027-05-01",
                          "--description", "Rovesciato")
    assert code == 2 and "the end must be after the start" in err
    code, out, err = _cli(config_path, capsys, "elections", "list", "--json")
    assert [(p["id"], p["state"]) for p in json.loads(out)] == [(1, "in force")]

    send = ("alert", "send", "--sms", "--zone", "Isola Sacra", "--text", "Scuole chiuse domani",
            "--category", "information")
    code, out, err = _cli(config_path, capsys, *send)
    assert code == 2 and "election period 'Comunali 2027'" in err and _alerts(contacts) == 0
    code, out, err = _cli(config_path, capsys, *send, "--election-reason", "ordinanza di chiusura per neve")
    assert code == 0
    alert_id = int(out.split()[-1])
    code, out, err = _cli(config_path, capsys, "alert", "status", str(alert_id))
    assert f"sent with the reason of {local_actor()}: ordinanza di chiusura per neve" in out
    # An emergency needs nothing.
    assert _cli(config_path, capsys, "alert", "send", "--sms", "--zone", "Isola Sacra", "--text", "Neve: restate a casa")[0] == 0

    code, out, err = _cli(config_path, capsys, "elections", "revoke", "1")
    assert code == 0 and "revoked" in out
    assert _cli(config_path, capsys, "elections", "revoke", "1")[2].strip().endswith("already revoked")
    with contacts.sessions() as s:
        assert s.get(ElectionPeriod, 1).revoked_at is not None
        entries = [(e.action, e.target, json.loads(e.details or "{}")) for e in s.scalars(
            select(AuditEntry).order_by(AuditEntry.id))]
    assert [action for action, _, _ in entries] == ["election.add", "alert.send", "alert.send", "election.revoke"]
    assert entries[1][2]["election_reason"] == "ordinanza di chiusura per neve"
    assert entries[1][2]["category"] == "information"
