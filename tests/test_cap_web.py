"""CAP over HTTP (web/cap.py): POST /api/v1/cap with an operator token, the published documents and feed
(off by default, only for the allowed networks), and the round trip between two Allerta instances."""
from __future__ import annotations

import json
import re
import shutil

from sqlalchemy import select

from gateway.core.alerts import AlertRequest, Target
from gateway.core.cap_xml import parse_cap
from gateway.core.models import Alert
from gateway.core.models_cap import CapMessage
from gateway.core.models_panel import AlertText
from gateway.core.states import AlertState
from gateway.shell.cap_watch import CapFeeds
from tests.cap_support import cap_document, coastal_town, receiver
from tests.web_support import client_for, open_app, post

PUBLISHING = '[cap]\npublish = true\npublish_allow = ["192.168.1.0/24"]\nsender = "protezionecivile@comune.fiumicino.example.it"\n'
RADIO = {"REMOTE_ADDR": "192.168.1.20"}


def _token(app, role: str = "operator") -> dict:
    html = post(client_for(app, "admin"), "/admin/tokens", {"name": f"cfr-{role}", "role": role}).get_data(as_text=True)
    return {"Authorization": "Bearer " + re.search(r'<code id="new-token">([^<]+)</code>', html).group(1)}


def _instance(tmp_path, panel_data_dir, name: str, extra: str = ""):
    root = tmp_path / name
    shutil.copytree(panel_data_dir, root / "data")
    app = open_app(root, extra)
    coastal_town(app.extensions["allerta"].services)
    return app


def test_the_api_makes_a_draft_and_refuses_bad_documents_naming_the_element(app, panel):
    coastal_town(panel.services)
    client, headers = app.test_client(), _token(app)
    response = client.post("/api/v1/cap", data=cap_document("allerta_meteo_idraulico.xml"), headers=headers,
                           content_type="application/cap+xml")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["outcome"] == "draft" and body["url"] == f"/alerts/{body['alert_id']}"
    again = client.post("/api/v1/cap", data=cap_document("allerta_meteo_idraulico.xml"), headers=headers)
    assert again.status_code == 200 and again.get_json()["outcome"] == "seen"
    missing = client.post("/api/v1/cap", headers=headers, data=cap_document("esercitazione.xml").replace(
        b"<event>Esercitazione: frana</event>", b""))
    assert missing.status_code == 422 and missing.get_json()["element"] == "event"
    bomb = client.post("/api/v1/cap", headers=headers, data=b'<!DOCTYPE a [<!ENTITY b "c">]><alert/>')
    assert bomb.status_code == 400 and bomb.get_json()["element"] == "!DOCTYPE"
    big = client.post("/api/v1/cap", headers=headers, data=b"<alert>" + b" " * (2 * 1024 * 1024) + b"</alert>")
    assert big.status_code == 413 and big.get_json()["field"] == "alert"
    viewer = client.post("/api/v1/cap", headers=_token(app, "viewer"), data=cap_document("esercitazione.xml"))
    assert viewer.status_code == 403
    with panel.sessions() as s:
        assert len(s.scalars(select(CapMessage)).all()) == 1
    documented = set(client.get("/api/v1/openapi.json").get_json()["paths"]["/api/v1/cap"]["post"]["responses"])
    assert {str(r.status_code) for r in (response, again, missing, bomb, big, viewer)} <= documented


def test_publishing_is_off_by_default_and_only_for_allowed_networks(app, tmp_path, panel_data_dir):
    assert app.test_client().get("/cap/feed.atom", environ_base=RADIO).status_code == 404
    town = _instance(tmp_path, panel_data_dir, "town", PUBLISHING)
    services = town.extensions["allerta"].services
    received = receiver(services).receive(cap_document("esercitazione.xml"), "file")
    client = town.test_client()
    assert client.get(f"/cap/alerts/{received.alert_id}.xml", environ_base=RADIO).status_code == 404   # not sent yet
    services.alerts.release(received.alert_id)
    assert client.get("/cap/feed.atom", environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code == 403
    assert client_for(town, "viewer").get("/cap/feed.atom").status_code == 200
    document = client.get(f"/cap/alerts/{received.alert_id}.xml", environ_base=RADIO)
    assert document.status_code == 200 and document.mimetype == "application/cap+xml"
    published = parse_cap(document.data)          # valid against our own validator
    assert (published.status, published.msg_type, published.sender) == (
        "Exercise", "Alert", "protezionecivile@comune.fiumicino.example.it")


def test_the_round_trip_between_two_instances_yields_the_same_drafts(tmp_path, panel_data_dir):
    town_a = _instance(tmp_path, panel_data_dir, "a", PUBLISHING)
    town_b = _instance(tmp_path, panel_data_dir, "b")
    a, b = town_a.extensions["allerta"].services, town_b.extensions["allerta"].services
    # In A: a multi-language warning and an exercise, approved and sent; then a correction of the first.
    heat = receiver(a).receive(cap_document("multilingua.xml"), "file").alert_id
    drill = receiver(a).receive(cap_document("esercitazione.xml"), "file").alert_id
    a.alerts.release(heat)
    a.alerts.release(drill)
    client = town_a.test_client()
    feeds = CapFeeds(receiver(b), ("http://allerta-a.local/cap/feed.atom",),
                     fetch=lambda url, limit: client.get(url, environ_base=RADIO).data)
    imported = feeds.poll_once()
    assert sorted(outcome for _url, outcome in imported) == ["draft", "draft"]
    with a.sessions() as sa, b.sessions() as sb:
        for original in (sa.get(Alert, heat), sa.get(Alert, drill)):
            copy = sb.scalar(select(Alert).join(CapMessage, CapMessage.alert_id == Alert.id).where(
                CapMessage.identifier == f"allerta-{original.id}"))
            assert copy.state == AlertState.AWAITING_APPROVAL
            assert (copy.text, copy.drill, copy.cap_category) == (original.text, original.drill, original.cap_category)
            assert json.loads(copy.target)["zones"] == json.loads(original.target)["zones"]
            versions = {sa_t.language: sa_t.text for sa_t in sa.scalars(
                select(AlertText).where(AlertText.alert_id == original.id))}
            assert versions == {t.language: t.text for t in sb.scalars(
                select(AlertText).where(AlertText.alert_id == copy.id))}
        heat_in_b = sb.scalar(select(CapMessage.alert_id).where(CapMessage.identifier == f"allerta-{heat}"))
    # B approves its copy; A corrects the original: B's feed poll makes a correction of B's copy.
    b.alerts.release(heat_in_b)
    correction, _ = a.alerts.create(AlertRequest(text="Ondata di calore: livello ridotto a 2.", target=Target(),
                                                 follows=heat, follow_up="correction"))
    assert feeds.poll_once() == [(f"http://allerta-a.local/cap/alerts/{correction}.xml", "update")]
    with b.sessions() as sb:
        made = sb.scalar(select(Alert).order_by(Alert.id.desc()).limit(1))
        assert (made.follows_alert_id, made.follow_up, made.text) == (heat_in_b, "correction",
                                                                     "Ondata di calore: livello ridotto a 2.")
    assert feeds.poll_once() == []     # nothing new: nothing fetched twice, nothing made twice


def test_the_panel_shows_zone_codes_and_geometry_and_the_warning_behind_a_draft(app, panel):
    coastal_town(panel.services)
    received = receiver(panel.services).receive(cap_document("allerta_meteo_idraulico.xml"), "file:allerta.xml")
    approver = client_for(app, "approver")
    zones = approver.get("/zones/").get_data(as_text=True)
    row = re.search(r'<tr data-zone="\d+">\s*<td><a[^>]*>Fiumicino</a></td>.*?</tr>', zones, re.S).group(0)
    assert '<td class="zone-code">058120</td>' in row and '<td class="zone-geometry">sì</td>' in row
    page = approver.get(f"/alerts/{received.alert_id}").get_data(as_text=True)
    assert "Avviso CAP" in page and "cfr@regione.lazio.example.it" in page
    assert "Allerta meteo arancione per rischio idraulico / Severe / Expected / Likely" in page
    assert "Comune di Cerveteri (ISTAT 058029)" in page
    dashboard = approver.get("/").get_data(as_text=True)
    assert "Avviso CAP da Centro Funzionale Regionale del Lazio" in dashboard
