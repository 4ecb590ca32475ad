"""Panel and API: the category asked for and shown, STOP INFO and the door-to-door list, quiet hours said
as "held until", the election lock at approval (an approver's reason, audited), the admin page and banner."""
from __future__ import annotations

import datetime as dt
import html as html_text
import json
import re

from sqlalchemy import func, select, update

from gateway.core.db import utcnow
from gateway.core.models import Alert, Delivery, PhoneNumberRow
from gateway.core.models_panel import AuditEntry
from gateway.core.quiet_hours import local_time, parse_window
from tests.web_support import client_for, created_id as _created_id, post, stored_alert as _alert

ANNA = "+393331110002"      # Isola Sacra, vulnerable


def _form(**overrides) -> dict:
    form = {"text": "Acqua sospesa domani dalle 9 alle 12", "zones": "Isola Sacra", "channels": "sms",
            "action": "send_now", "reason": "prova"}
    form.update(overrides)
    return form


def _text(response) -> str:
    """The page as a person reads it (quotes unescaped)."""
    return html_text.unescape(response.get_data(as_text=True))


def _deliveries(panel, alert_id: int) -> int:
    with panel.sessions() as s:
        return s.scalar(select(func.count()).select_from(Delivery).where(Delivery.alert_id == alert_id))


def test_the_compose_form_asks_for_the_category_in_italian_and_the_alert_shows_it(app, panel):
    approver = client_for(app, "approver")
    html = approver.get("/alerts/new").get_data(as_text=True)
    assert "Tipo di messaggio" in html and "Informazione di pubblica utilità" in html
    assert "Meteo (alluvione, tempesta, caldo)" in html
    assert 'data-category="information"' in html          # the water template is information
    default = _created_id(post(approver, "/alerts/new", _form()))
    assert (_alert(panel, default).category, _alert(panel, default).cap_category) == ("emergency", "Safety")
    chosen = _created_id(post(approver, "/alerts/new", _form(category="information", cap_category="Met")))
    assert (_alert(panel, chosen).category, _alert(panel, chosen).cap_category) == ("information", None)
    assert "Informazione di pubblica utilità" in approver.get(f"/alerts/{chosen}").get_data(as_text=True)
    assert "Emergenza" in approver.get("/alerts/").get_data(as_text=True)
    assert "tag category-information" in approver.get("/").get_data(as_text=True)      # the dashboard
    later = local_time(utcnow() + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    scheduled = _created_id(post(approver, "/alerts/new", _form(send_at=later)))
    assert _alert(panel, scheduled).category == "information"        # scheduled, not chosen: information
    refused = post(approver, "/alerts/new", _form(category="urgente"))
    assert refused.status_code == 400 and "categoria sconosciuta" in refused.get_data(as_text=True)
    with panel.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == 3


def test_stop_info_keeps_a_vulnerable_person_off_the_door_to_door_list_of_information_only(app, panel):
    with panel.sessions.begin() as s:
        s.execute(update(PhoneNumberRow).where(PhoneNumberRow.e164 == ANNA).values(opted_out_info=True))
    approver = client_for(app, "approver")
    information = _created_id(post(approver, "/alerts/new", _form(category="information")))
    emergency = _created_id(post(approver, "/alerts/new", _form(text="Allerta rossa: salire ai piani alti")))
    assert _deliveries(panel, information) == 1 and _deliveries(panel, emergency) == 2
    assert "Anna Rossi" not in approver.get(f"/alerts/{information}/vulnerable").get_data(as_text=True)
    assert "Anna Rossi" in approver.get(f"/alerts/{emergency}/vulnerable").get_data(as_text=True)


def test_information_sent_during_quiet_hours_says_held_until_the_morning(app, panel):
    # Quiet hours around the time the test runs: the panel must say when the message will go.
    now = local_time(utcnow())
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(hours=2)
    panel.services.alerts.quiet_hours = parse_window(f"{start:%H:%M}-{end:%H:%M}")
    approver = client_for(app, "approver")
    response = post(approver, "/alerts/new", _form(category="information"), follow_redirects=True)
    html = response.get_data(as_text=True)
    assert f"Trattenuto fino alle {end:%H:%M} (ore di silenzio)" in html
    assert f"trattenuto fino alle {end:%H:%M} (ore di silenzio)" in html          # on the alert page too
    emergency = post(approver, "/alerts/new", _form(text="Allerta rossa: salire ai piani alti"),
                     follow_redirects=True).get_data(as_text=True)
    assert "ore di silenzio" not in emergency


def _add_period(admin, **fields):
    today = dt.date.today()
    data = {"description": "Comunali 2027", "starts": str(today - dt.timedelta(days=2)),
            "ends": str(today + dt.timedelta(days=2)), "action": "add", **fields}
    return post(admin, "/admin/elections/", data)


def test_election_periods_are_an_admins_audited_page_and_a_banner_on_every_page(app, panel):
    admin = client_for(app, "admin")
    assert client_for(app, "approver").get("/admin/elections/").status_code == 403
    refused = _add_period(admin, ends="2020-01-01")
    assert refused.status_code == 400 and "la fine deve essere dopo l'inizio" in _text(refused)
    assert app.test_client().post("/admin/elections/", data={"action": "add"}).status_code in (400, 302)
    assert _add_period(admin).status_code == 302
    viewer = client_for(app, "viewer")
    for page in ("/", "/alerts/", "/contacts/"):
        html = viewer.get(page).get_data(as_text=True)
        assert "Periodo elettorale: Comunali 2027" in html, page
    with panel.sessions() as s:
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "election.add"))
    assert entry.actor == "ada" and json.loads(entry.details)["description"] == "Comunali 2027"
    post(admin, "/admin/elections/", {"action": "revoke", "id": "1"})
    assert "Periodo elettorale" not in viewer.get("/").get_data(as_text=True)


def test_the_election_lock_at_approval_needs_an_approvers_reason(app, panel):
    _add_period(client_for(app, "admin"))
    operator, approver = client_for(app, "operator"), client_for(app, "approver")
    # An operator may not give the reason...
    refused = post(operator, "/alerts/new", _form(action="submit", category="information", election_reason="x"))
    assert refused.status_code == 400 and "solo un approvatore" in refused.get_data(as_text=True)
    # ...but may write the message and ask for approval.
    alert_id = _created_id(post(operator, "/alerts/new", _form(action="submit", category="information")))
    page = approver.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert 'name="election_reason"' in page
    response = post(approver, f"/alerts/{alert_id}/approve", follow_redirects=True)
    assert "periodo elettorale 'Comunali 2027'" in _text(response)
    assert _alert(panel, alert_id).state == "awaiting_approval" and _deliveries(panel, alert_id) == 0
    post(approver, f"/alerts/{alert_id}/approve", {"election_reason": "interruzione idrica: salute pubblica"})
    alert = _alert(panel, alert_id)
    assert (alert.state, alert.election_reason, alert.election_reason_by) == (
        "active", "interruzione idrica: salute pubblica", "anna")
    with panel.sessions() as s:
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "alert.approve"))
    assert json.loads(entry.details)["election_reason"] == "interruzione idrica: salute pubblica"
    assert "con la motivazione di anna" in approver.get(f"/alerts/{alert_id}").get_data(as_text=True)
    # Emergencies go as always.
    emergency = _created_id(post(operator, "/alerts/new", _form(action="submit",
                                                                text="Allerta rossa: salire ai piani alti")))
    post(approver, f"/alerts/{emergency}/approve")
    assert _alert(panel, emergency).state == "active"


def _token(app, role: str) -> str:
    html = post(client_for(app, "admin"), "/admin/tokens", {"name": f"sistema {role}", "role": role})
    return re.search(r'<code id="new-token">([^<]+)</code>', html.get_data(as_text=True)).group(1)


def test_api_category_and_election_reason(app, panel):
    client = app.test_client()
    body = {"text": "Scuole chiuse domani per neve", "target": {"zones": ["Fregene"]}, "category": "information"}
    operator = {"Authorization": f"Bearer {_token(app, 'operator')}"}
    approver = {"Authorization": f"Bearer {_token(app, 'approver')}"}
    bad = client.post("/api/v1/alerts", headers=operator, json={**body, "category": "urgente"})
    assert bad.status_code == 400 and bad.get_json()["field"] == "/category"
    made = client.post("/api/v1/alerts", headers=approver, json={**body, "mode": "send_now", "reason": "r"})
    assert made.status_code == 201 and made.get_json()["category"] == "information"
    assert made.get_json()["cap_category"] is None
    _add_period(client_for(app, "admin"))
    locked = client.post("/api/v1/alerts", headers=approver, json={**body, "mode": "send_now", "reason": "r"})
    assert locked.status_code == 422 and "election period 'Comunali 2027'" in locked.get_json()["error"]
    by_operator = client.post("/api/v1/alerts", headers=operator, json={**body, "election_reason": "urgente"})
    assert by_operator.status_code == 422 and "only an approver" in by_operator.get_json()["error"]
    reasoned = client.post("/api/v1/alerts", headers=approver,
                           json={**body, "mode": "send_now", "reason": "r", "election_reason": "ordinanza"})
    assert reasoned.status_code == 201 and reasoned.get_json()["election_reason"] == "ordinanza"
    emergency = client.post("/api/v1/alerts", headers=operator,
                            json={**body, "category": "emergency", "cap_category": "Met"})
    assert emergency.status_code == 201 and emergency.get_json()["cap_category"] == "Met"
    unsaid = client.post("/api/v1/alerts", headers=operator, json={k: v for k, v in body.items() if k != "category"})
    assert (unsaid.get_json()["category"], unsaid.get_json()["cap_category"]) == ("emergency", "Safety")
    mixed = client.post("/api/v1/alerts", headers=operator, json={**body, "cap_category": "Met"})
    assert mixed.status_code == 422 and "a CAP category (Met) is what an emergency is about" in mixed.get_json()["error"]
    schema = client.get("/api/v1/openapi.json").get_json()
    properties = schema["paths"]["/api/v1/alerts"]["post"]["requestBody"]["content"]["application/json"][
        "schema"]["properties"]
    assert properties["category"]["enum"] == ["emergency", "information"]
    assert "CBRNE" in properties["cap_category"]["enum"]
