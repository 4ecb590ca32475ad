"""NUL and the other control characters: refused in alert texts, contact names and zone names (issue 10)."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from gateway.core.alerts import AlertError, AlertRequest, Target
from gateway.core.contacts_csv import parse_contacts_csv
from gateway.core.control_chars import control_characters
from gateway.core.models import Alert, Contact, Zone
from gateway.core.zones import Kind, ZoneError, rename
from gateway.shell.cli import main
from tests.web_support import client_for, post


def _count(panel_or_services, model) -> int:
    with panel_or_services.sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_control_characters_are_named_once_each_and_line_breaks_pass():
    assert control_characters("a\x00b\x1b\x00c\x7f\x85") == "U+0000, U+001B, U+007F, U+0085"
    assert control_characters("due righe\r\nuna\tcolonna") == ""
    assert control_characters("a\nb", allowed="") == "U+000A"


def test_an_alert_text_or_version_with_a_nul_is_refused(contacts):
    with pytest.raises(AlertError, match="U\\+0000"):
        contacts.alerts.create(AlertRequest(text="Allerta\x00 rossa", target=Target(everyone=True)))
    with pytest.raises(AlertError, match="the en version: the text contains control characters"):
        contacts.alerts.create(AlertRequest(text="Allerta", target=Target(everyone=True),
                                            translations={"en": "Red\x00 alert"}))
    assert _count(contacts, Alert) == 0


def test_the_panel_refuses_a_nul_in_an_alert(app, panel):
    response = post(client_for(app, "operator"), "/alerts/new",
                    {"text": "Allerta\x00 rossa", "zones": "Fregene", "channels": "sms", "action": "submit"})
    assert response.status_code == 400 and "caratteri di controllo (U+0000)" in response.get_data(as_text=True)
    assert _count(panel, Alert) == 0


def test_the_api_refuses_a_nul_in_an_alert(app, panel):
    html = post(client_for(app, "admin"), "/admin/tokens", {"name": "meteo", "role": "operator"}).get_data(as_text=True)
    token = re.search(r'<code id="new-token">([^<]+)</code>', html).group(1)
    response = app.test_client().post("/api/v1/alerts", headers={"Authorization": f"Bearer {token}"},
                                      json={"text": "Allerta\x00", "target": {"zones": ["Fregene"]}})
    assert response.status_code == 422 and "U+0000" in response.get_json()["error"]
    assert _count(panel, Alert) == 0


def test_the_cli_refuses_a_control_character_in_an_alert(contacts, config_path, capsys):
    # A NUL cannot travel in argv; an escape can.
    assert main(["--config", str(config_path), "alert", "send", "--sms", "--all", "--text", "Allerta\x1b[2J"]) != 0
    assert "control characters (U+001B)" in capsys.readouterr().err
    assert _count(contacts, Alert) == 0


def test_the_panel_refuses_a_nul_in_a_contact_name(app, panel):
    before = _count(panel, Contact)
    response = post(client_for(app, "operator"), "/contacts/new", {"name": "Mario\x00 Bianchi",
                                                                   "numbers": "333 111 0077"})
    assert response.status_code == 400 and "caratteri di controllo (U+0000)" in response.get_data(as_text=True)
    response = post(client_for(app, "operator"), "/contacts/new", {"name": "Mario Bianchi", "zone": "Fregene\x00",
                                                                   "numbers": "333 111 0077"})
    assert response.status_code == 400 and "zone" in response.get_data(as_text=True)
    assert _count(panel, Contact) == before


def test_an_imported_row_with_a_nul_is_rejected_with_its_line():
    # A few stray control characters in a list of people (a file where they are more than 1% of the
    # text is refused whole, as binary).
    others = "".join(f"Persona {i};333 111 {i:04d};Fregene\n" for i in range(10))
    parsed = parse_contacts_csv(("nome;cellulare;zona\nLucia;333 111 0098;Fregene\nMario\x00;333 111 0099;Fregene\n"
                                 "Anna;333 111 0097;Isola\x01Sacra\n" + others).encode())
    assert parsed.fatal is None and [c.name for c in parsed.contacts][:2] == ["Lucia", "Persona 0"]
    assert [(e.line, e.column) for e in parsed.errors] == [(3, "nome"), (4, "zona")]
    assert "U+0000" in parsed.errors[0].reason and "U+0001" in parsed.errors[1].reason


def test_a_zone_cannot_be_renamed_with_a_control_character(app, panel):
    with panel.sessions() as s:
        zone_id = s.scalar(select(Zone.id).where(Zone.name == "Fregene"))
    with pytest.raises(ZoneError, match="U\\+0000"):
        rename(panel.audit, Kind.ZONE, zone_id, "Fre\x00gene", actor="otto")
    with panel.sessions() as s:
        assert s.get(Zone, zone_id).name == "Fregene"
