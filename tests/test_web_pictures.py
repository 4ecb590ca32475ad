"""The alert page's pictures: pictures.json behind the viewer role, in the panel's language, drawn from the DB."""
from __future__ import annotations

import json

import pytest
from defusedxml import ElementTree
from sqlalchemy import select, update

from gateway.core.db import utcnow
from gateway.core.models import Delivery, Zone
from tests.support import FakeClock
from tests.test_alert_figures import SQUARE, send
from tests.web_support import client_for, post
from web.alert_pictures import PicturesCache

pytestmark = pytest.mark.both_databases
SVG = "{http://www.w3.org/2000/svg}"


def test_the_alert_page_has_the_pictures_and_pictures_json_draws_them_from_the_database(app, panel):
    alert_id = send(app, channels="sms")
    with panel.sessions.begin() as s:
        s.scalar(select(Zone).where(Zone.name == "Fregene")).geometry = json.dumps(SQUARE)
    clock = FakeClock()
    app.extensions["allerta_pictures"] = PicturesCache(seconds=4.0, clock=clock)
    viewer = client_for(app, "viewer")
    page = viewer.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert f'data-pictures="/alerts/{alert_id}/pictures.json"' in page and "Grafici" in page
    assert 'data-picture="attempts"' not in page          # an SMS alert places no calls
    data = viewer.get(f"/alerts/{alert_id}/pictures.json").get_json()
    assert data["running"] is True and data["attempts"] is None
    reach = ElementTree.fromstring(data["reach"])
    assert reach.find(f"{SVG}title").text == "Persone raggiunte nel tempo"
    zones = ElementTree.fromstring(data["zones"])
    drawn = [g for g in zones.iter(f"{SVG}g") if "zone" in (g.get("class") or "").split()]
    assert len(drawn) == 1 and "share-0" in drawn[0].get("class")       # Fregene, nobody reached yet
    with panel.sessions.begin() as s:
        s.execute(update(Delivery).where(Delivery.alert_id == alert_id, Delivery.zone == "Fregene")
                  .values(state="delivered", sent_at=utcnow(), delivered_at=utcnow()))
    # Everyone watching within 4 seconds shares one drawing; the next one shows the change.
    assert viewer.get(f"/alerts/{alert_id}/pictures.json").get_json() == data
    clock.now += 4.0
    data = viewer.get(f"/alerts/{alert_id}/pictures.json").get_json()
    zones = ElementTree.fromstring(data["zones"])
    drawn = [g for g in zones.iter(f"{SVG}g") if "zone" in (g.get("class") or "").split()]
    assert "share-3" in drawn[0].get("class")
    assert "SMS consegnati: 2" in data["reach"]


def test_pictures_json_needs_a_signed_in_user_and_an_existing_alert_and_speaks_english_too(app, panel):
    alert_id = send(app, channels="both")
    assert app.test_client().get(f"/alerts/{alert_id}/pictures.json",
                                 headers={"Accept": "application/json"}).status_code == 401
    viewer = client_for(app, "viewer")
    assert viewer.get("/alerts/999999/pictures.json").status_code == 404
    post(viewer, "/language", {"lang": "en", "next": "/"})
    data = viewer.get(f"/alerts/{alert_id}/pictures.json").get_json()
    assert "People reached over time" in data["reach"] and "No calls in this alert yet." in data["attempts"]
