"""Panel: versions in other languages, sending at a chosen time, corrections and all-clears, errors in Italian."""
from __future__ import annotations

import ast
import datetime as dt
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from gateway.core.alerts import AlertRequest, Target
from gateway.core.db import utcnow
from gateway.core.models import Alert, Contact, Delivery, PhoneNumberRow, Zone
from gateway.core.models_panel import AlertText
from tests.web_support import client_for, created_id as _created_id, post, stored_alert as _alert
from web.errors import ALERT_MESSAGES, FLOW_MESSAGES

ROOT = Path(__file__).resolve().parent.parent


def _form(**overrides) -> dict:
    form = {"text": "Allerta rossa: salire ai piani alti", "zones": "Fregene", "channels": "sms",
            "action": "send_now", "reason": "prova"}
    form.update(overrides)
    return form


def _deliveries(panel, alert_id: int) -> list[Delivery]:
    with panel.sessions() as s:
        return list(s.scalars(select(Delivery).where(Delivery.alert_id == alert_id).order_by(Delivery.e164)))


# --- versions in other languages ----------------------------------------------------------------
def test_versions_in_other_languages_are_stored_and_claimed_per_recipient(app, panel):
    approver = client_for(app, "approver")
    alert_id = _created_id(post(approver, "/alerts/new", _form(
        text_ro="Alertă roșie: urcați la etajele superioare", text_en="Red alert: go to the upper floors")))
    with panel.sessions() as s:
        versions = {v.language: v for v in s.scalars(select(AlertText).where(AlertText.alert_id == alert_id))}
    assert set(versions) == {"ro", "en"}
    assert versions["ro"].encoding == "UCS-2" and versions["en"].encoding == "GSM-7"
    # Fregene: Ion Popescu speaks Romanian, Giulia Verdi has no language (Italian).
    claimed = {c.e164: c for c in panel.services.store.claim("sms", 10)}
    assert claimed["+393207654321"].text == "Alertă roșie: urcați la etajele superioare"
    assert claimed["+393470000003"].text == "Allerta rossa: salire ai piani alti"
    html = approver.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert "Altre lingue" in html and "Romeno" in html and "etajele superioare" in html


def test_a_version_that_is_too_long_or_empty_language_is_refused(app, panel):
    approver = client_for(app, "approver")
    response = post(approver, "/alerts/new", _form(text_fr="a" * 1000))
    assert response.status_code == 400
    assert "la versione fr" in response.get_data(as_text=True)
    with panel.sessions() as s:
        assert s.scalar(select(Alert.id)) is None


def test_a_version_only_in_whitespace_is_ignored(app, panel):
    approver = client_for(app, "approver")
    alert_id = _created_id(post(approver, "/alerts/new", _form(text_de="   ")))
    with panel.sessions() as s:
        assert s.scalar(select(AlertText.id).where(AlertText.alert_id == alert_id)) is None


# --- sending at a chosen time ---------------------------------------------------------------------
def _local(at: dt.datetime) -> str:
    """A naive UTC time as the datetime-local field of a browser in Rome sends it."""
    return at.replace(tzinfo=dt.timezone.utc).astimezone(ZoneInfo("Europe/Rome")).strftime("%Y-%m-%dT%H:%M")


def test_scheduled_alert_waits_in_the_queue_until_its_time(app, panel):
    approver = client_for(app, "approver")
    send_at = (utcnow() + dt.timedelta(hours=2)).replace(second=0, microsecond=0)
    # An emergency: scheduled information would be held by quiet hours when the test runs in the evening.
    alert_id = _created_id(post(approver, "/alerts/new", _form(send_at=_local(send_at), deadline_minutes="60",
                                                               category="emergency")))
    alert = _alert(panel, alert_id)
    assert alert.send_at == send_at and alert.state == "active"
    assert alert.deadline == send_at + dt.timedelta(minutes=60)  # counted from the time it goes out
    deliveries = _deliveries(panel, alert_id)
    assert len(deliveries) == 2 and {d.next_attempt_at for d in deliveries} == {send_at}
    store = panel.services.store
    assert store.claim("sms", 10) == []                                  # not before its time
    assert store.claim("sms", 10, now=send_at - dt.timedelta(seconds=1)) == []
    assert len(store.claim("sms", 10, now=send_at)) == 2                 # the time survives any restart
    for page in (f"/alerts/{alert_id}", "/alerts/"):
        assert "programmata" in approver.get(page).get_data(as_text=True), page


def test_scheduled_alert_waiting_for_approval_keeps_its_time(app, panel):
    send_at = (utcnow() + dt.timedelta(hours=1)).replace(second=0, microsecond=0)
    alert_id = _created_id(post(client_for(app, "operator"), "/alerts/new",
                                _form(action="submit", send_at=_local(send_at), category="emergency")))
    assert _deliveries(panel, alert_id) == []
    post(client_for(app, "approver"), f"/alerts/{alert_id}/approve")
    assert {d.next_attempt_at for d in _deliveries(panel, alert_id)} == {send_at}
    # Cancelling stops a scheduled alert like any pending work.
    post(client_for(app, "operator"), f"/alerts/{alert_id}/cancel", {"reason": "rinviata"})
    assert {d.state for d in _deliveries(panel, alert_id)} == {"cancelled"}


def test_bad_times_to_send_are_refused(app, panel):
    approver = client_for(app, "approver")
    for value, expected in (("domani", "non è una data"),
                            (_local(utcnow() - dt.timedelta(hours=1)), "già passata"),
                            (_local(utcnow() + dt.timedelta(days=60)), "giorni")):
        response = post(approver, "/alerts/new", _form(send_at=value))
        assert response.status_code == 400 and expected in response.get_data(as_text=True), value
    with panel.sessions() as s:
        assert s.scalar(select(Alert.id)) is None


# --- corrections and all-clears ---------------------------------------------------------------------
@pytest.mark.integration
def test_follow_ups_go_to_exactly_the_numbers_of_the_original(app, panel):
    approver = client_for(app, "approver")
    original = _created_id(post(approver, "/alerts/new", _form(channels="both")))
    sent = {(d.e164, d.channel) for d in _deliveries(panel, original)}
    with panel.sessions.begin() as s:
        # Since then: one delivery was stopped before going out, someone moved into Fregene,
        # and Ion moved out of it. None of this changes who gets the correction.
        stopped = s.scalar(select(Delivery).where(Delivery.alert_id == original, Delivery.channel == "voice",
                                                  Delivery.e164 == "+393470000003"))
        stopped.state = "cancelled"
        fregene = s.scalar(select(Zone).where(Zone.name == "Fregene"))
        newcomer = Contact(name="Nuovo Arrivato", zone_id=fregene.id, language="it")
        newcomer.numbers.append(PhoneNumberRow(e164="+393339998877", kind="mobile"))
        s.add(newcomer)
        s.scalar(select(Contact).where(Contact.name == "Ion Popescu")).zone_id = None
    page = approver.get(f"/alerts/{original}").get_data(as_text=True)
    assert "Invia una rettifica" in page and "Invia il cessato allarme" in page
    form_page = approver.get(f"/alerts/new?follows={original}&kind=all_clear").get_data(as_text=True)
    assert "Cessato allarme: la situazione" in form_page and f'name="follows" value="{original}"' in form_page
    assert 'name="zones"' not in form_page  # no target to choose: it is the original's

    all_clear = _created_id(post(approver, "/alerts/new", _form(
        text="Cessato allarme", channels="both", follows=str(original), follow_up="all_clear", zones="Isola Sacra")))
    got = {(d.e164, d.channel) for d in _deliveries(panel, all_clear)}
    assert got == sent - {("+393470000003", "voice")}
    alert = _alert(panel, all_clear)
    assert (alert.follows_alert_id, alert.follow_up) == (original, "all_clear")
    # The Romanian speaker keeps his language in the follow-up.
    assert {d.language for d in _deliveries(panel, all_clear) if d.e164 == "+393207654321"} == {"ro"}
    page = approver.get(f"/alerts/{original}").get_data(as_text=True)
    assert f"/alerts/{all_clear}" in page and "Seguiti" in page
    assert "Cessato allarme" in approver.get(f"/alerts/{all_clear}").get_data(as_text=True)


@pytest.mark.integration
def test_follow_up_through_approval_and_on_fewer_channels(app, panel):
    approver = client_for(app, "approver")
    original = _created_id(post(approver, "/alerts/new", _form(channels="both")))
    correction = _created_id(post(client_for(app, "operator"), "/alerts/new", _form(
        text="Rettifica: la zona e' Fregene nord", action="submit", follows=str(original), follow_up="correction")))
    assert _deliveries(panel, correction) == []
    post(client_for(app, "admin"), f"/alerts/{correction}/approve")
    assert {(d.e164, d.channel) for d in _deliveries(panel, correction)} == {
        (d.e164, "sms") for d in _deliveries(panel, original) if d.channel == "sms"}


def test_follow_up_refused_when_nothing_went_out_or_channels_differ(app, panel):
    operator = client_for(app, "operator")
    draft = _created_id(post(operator, "/alerts/new", _form(action="draft")))
    response = post(operator, "/alerts/new", _form(action="draft", follows=str(draft), follow_up="correction"))
    assert response.status_code == 400 and "non è stata inviata a nessuno" in response.get_data(as_text=True)
    approver = client_for(app, "approver")
    sms_only = _created_id(post(approver, "/alerts/new", _form()))
    response = post(approver, "/alerts/new", _form(
        channels="voice", voice_source="tts", follows=str(sms_only), follow_up="correction"))
    assert response.status_code == 400 and "non è stata inviata per voce" in response.get_data(as_text=True)
    assert approver.get(f"/alerts/new?follows={sms_only}&kind=whatever").status_code == 404
    assert approver.get("/alerts/new?follows=9999&kind=correction").status_code == 404


# --- errors and approval rules in the user's language ---------------------------------------------------
def test_approval_rules_are_shown_in_italian_and_in_english(app, panel):
    approver = client_for(app, "approver")
    alert_id = _created_id(post(approver, "/alerts/new", _form(action="submit")))
    page = approver.post(f"/alerts/{alert_id}/approve", data={"csrf_token": _token(approver)}, follow_redirects=True)
    assert "regola delle due persone" in page.get_data(as_text=True)
    response = post(approver, "/alerts/new", _form(reason=""))
    assert "serve un motivo" in response.get_data(as_text=True)
    post(approver, "/language", {"lang": "en"})
    response = post(approver, "/alerts/new", _form(reason=""))
    assert "needs a reason" in response.get_data(as_text=True)
    response = post(approver, "/alerts/new", _form(zones="Atlantide"))
    assert "unknown zone: Atlantide" in response.get_data(as_text=True)


def test_states_in_messages_are_translated(app, panel):
    approver = client_for(app, "approver")
    alert_id = _created_id(post(approver, "/alerts/new", _form()))
    page = approver.post(f"/alerts/{alert_id}/approve", data={"csrf_token": _token(approver)}, follow_redirects=True)
    assert f"l&#39;allerta {alert_id} è in invio, non è in attesa di approvazione" in page.get_data(as_text=True)


def _token(client) -> str:
    html = client.get("/account").get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def _raised_msgids(path: Path, exception: str) -> set[str]:
    """The first argument of every ``raise <exception>("...")`` with a literal message."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == exception and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.add(node.args[0].value)
    return found


def test_every_gateway_and_flow_message_is_translatable():
    known = {m._args[0] for m in ALERT_MESSAGES + FLOW_MESSAGES}  # the msgid of each lazy_gettext
    raised = _raised_msgids(ROOT / "gateway" / "core" / "alerts.py", "AlertError") | \
        _raised_msgids(ROOT / "web" / "alert_flow.py", "FlowError")
    assert raised and raised - known == set()


def test_the_cli_still_gets_english(app, panel):
    try:
        panel.services.alerts.create(AlertRequest(text="x", target=Target(zones=("Atlantide",))))
    except Exception as exc:  # noqa: BLE001
        assert str(exc).startswith("unknown zone: Atlantide (known: ")
        assert exc.msgid == "unknown zone: %(names)s (known: %(known)s)" and exc.params["names"] == "Atlantide"
    else:
        raise AssertionError("an unknown zone was accepted")
