"""Zones and groups in the panel: counts, rename, merge, delete an empty one, the contact list's group filter."""
from __future__ import annotations

import json

from sqlalchemy import select

from gateway.core.alerts import AlertRequest, Target
from gateway.core.models import Contact, Group, Zone
from gateway.core.models_panel import AuditEntry, ErasedContacts
from tests.web_support import client_for, post


def _id(panel, model, name: str) -> int:
    with panel.sessions() as s:
        return s.scalar(select(model.id).where(model.name == name))


def _last_audit(panel) -> AuditEntry:
    with panel.sessions() as s:
        return s.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))


def test_zones_and_groups_are_listed_with_contacts_and_numbers(app, panel):
    html = client_for(app, "viewer").get("/zones/").get_data(as_text=True)
    isola, fregene, volontari = (_id(panel, Zone, "Isola Sacra"), _id(panel, Zone, "Fregene"),
                                 _id(panel, Group, "volontari"))
    # Isola Sacra: Mario and Anna, two mobiles and the household landline they share (one number).
    assert f'<tr data-zone="{isola}">' in html
    row = html.split(f'<tr data-zone="{isola}">')[1].split("</tr>")[0]
    assert "<td>2</td><td>3</td>" in row
    row = html.split(f'<tr data-zone="{fregene}">')[1].split("</tr>")[0]
    assert "<td>2</td><td>2</td>" in row
    row = html.split(f'<tr data-group="{volontari}">')[1].split("</tr>")[0]
    assert "<td>2</td><td>3</td>" in row  # Mario (mobile, landline) and Giulia
    assert "0 contatti non hanno una zona" in html
    # A viewer reads; the forms are for operators (and refused on the server: tests/test_web_access.py).
    assert "/rename" not in html and "/merge" not in html


def test_rename_a_zone_and_refuse_a_clash(app, panel):
    operator = client_for(app, "operator")
    zone_id = _id(panel, Zone, "Fregene")
    with panel.sessions.begin() as s:
        s.add(ErasedContacts(zone="Fregene", numbers=1))
    assert post(operator, f"/zones/zone/{zone_id}/rename", {"name": "  Fregene   Nord "}).status_code == 302
    with panel.sessions() as s:
        assert s.get(Zone, zone_id).name == "Fregene Nord"
        assert s.scalar(select(ErasedContacts.zone)) == "Fregene Nord"
    entry = _last_audit(panel)
    assert (entry.actor, entry.action, entry.target) == ("otto", "zone.rename", str(zone_id))
    assert json.loads(entry.details) == {"old": "Fregene", "new": "Fregene Nord"}
    # A future alert to the new name reaches the same people.
    _alert_id, preview = panel.services.alerts.create(AlertRequest(text="Prova", target=Target(zones=("Fregene Nord",))))
    assert preview.recipients["sms"] == 2
    # Another zone's name, in any case, is refused: that is a merge.
    response = post(operator, f"/zones/zone/{zone_id}/rename", {"name": "isola sacra"})
    assert response.status_code == 400 and "Isola Sacra esiste già" in response.get_data(as_text=True)
    assert post(operator, f"/zones/zone/{zone_id}/rename", {"name": " "}).status_code == 400
    assert post(operator, f"/zones/zone/{zone_id}/rename", {"name": "x" * 121}).status_code == 400
    assert post(operator, "/zones/zone/999999/rename", {"name": "Altrove"}).status_code == 404
    with panel.sessions() as s:
        assert s.get(Zone, zone_id).name == "Fregene Nord"


def test_merge_zones_moves_everyone(app, panel):
    operator = client_for(app, "operator")
    fregene, isola = _id(panel, Zone, "Fregene"), _id(panel, Zone, "Isola Sacra")
    response = post(operator, f"/zones/zone/{fregene}/merge", {"into": isola})
    assert response.status_code == 302
    with panel.sessions() as s:
        assert s.get(Zone, fregene) is None
        assert set(s.scalars(select(Contact.name).where(Contact.zone_id == isola))) == {
            "Mario Rossi", "Anna Rossi", "Ion Popescu", "Giulia Verdi"}
    entry = _last_audit(panel)
    assert entry.action == "zone.merge" and json.loads(entry.details) == {
        "name": "Fregene", "into": isola, "into_name": "Isola Sacra", "contacts": 2}
    assert post(operator, f"/zones/zone/{isola}/merge", {"into": isola}).status_code == 400
    assert post(operator, f"/zones/zone/{isola}/merge", {}).status_code == 400


def test_merge_groups_keeps_one_membership_per_person(app, panel):
    operator = client_for(app, "operator")
    post(operator, "/contacts/new", {"name": "Doppia", "numbers": "3330005555", "groups": "volontari, Volontari PC"})
    post(operator, "/contacts/new", {"name": "Solo PC", "numbers": "3330005556", "groups": "Volontari PC"})
    source, target = _id(panel, Group, "Volontari PC"), _id(panel, Group, "volontari")
    assert post(operator, f"/zones/group/{source}/merge", {"into": target}).status_code == 302
    with panel.sessions() as s:
        assert s.get(Group, source) is None
        members = {c.name: [g.name for g in c.groups] for c in s.scalars(select(Contact))}
    assert members["Doppia"] == ["volontari"] and members["Solo PC"] == ["volontari"]
    assert members["Mario Rossi"] == ["volontari"] and members["Ion Popescu"] == []
    assert json.loads(_last_audit(panel).details)["contacts"] == 2


def test_only_an_empty_one_can_be_deleted(app, panel):
    operator = client_for(app, "operator")
    fregene = _id(panel, Zone, "Fregene")
    response = post(operator, f"/zones/zone/{fregene}/delete")
    assert response.status_code == 400 and "ha ancora 2 contatti" in response.get_data(as_text=True)
    with panel.sessions.begin() as s:
        s.add(Zone(name="Vuota"))
        s.add(Group(name="Nessuno"))
    empty_zone, empty_group = _id(panel, Zone, "Vuota"), _id(panel, Group, "Nessuno")
    html = operator.get("/zones/").get_data(as_text=True)
    assert f"/zones/zone/{empty_zone}/delete" in html and f"/zones/zone/{fregene}/delete" not in html
    assert post(operator, f"/zones/zone/{empty_zone}/delete").status_code == 302
    assert post(operator, f"/zones/group/{empty_group}/delete").status_code == 302
    with panel.sessions() as s:
        assert s.get(Zone, empty_zone) is None and s.get(Group, empty_group) is None
        assert s.get(Zone, fregene) is not None
    entry = _last_audit(panel)
    assert entry.action == "group.delete" and json.loads(entry.details) == {"name": "Nessuno"}


def test_forms_need_the_csrf_token(app, panel):
    operator = client_for(app, "operator")
    zone_id = _id(panel, Zone, "Fregene")
    for action, data in (("rename", {"name": "Altro"}), ("merge", {"into": _id(panel, Zone, "Isola Sacra")}),
                         ("delete", {})):
        assert operator.post(f"/zones/zone/{zone_id}/{action}", data=data).status_code == 400
    with panel.sessions() as s:
        assert s.get(Zone, zone_id).name == "Fregene"


def test_hostile_names_are_escaped(app, panel):
    operator = client_for(app, "operator")
    post(operator, "/contacts/new", {"name": "X", "numbers": "3330000099", "zone": "<img src=x onerror=alert(2)>",
                                     "groups": "<script>alert(1)</script>"})
    html = operator.get("/zones/").get_data(as_text=True)
    assert "<img src=x" not in html and "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_contact_list_has_a_group_column_and_filter(app):
    viewer = client_for(app, "viewer")
    html = viewer.get("/contacts/?group=volontari").get_data(as_text=True)
    assert "Mario Rossi" in html and "Giulia Verdi" in html and "Anna Rossi" not in html
    assert "2 contatti trovati" in html and "<td>volontari</td>" in html
    assert '<option value="volontari" selected>' in html
    html = viewer.get("/contacts/?group=volontari&zone=Fregene").get_data(as_text=True)
    assert "Giulia Verdi" in html and "Mario Rossi" not in html
    assert "0 contatti trovati" in viewer.get("/contacts/?group=nessuno").get_data(as_text=True)
