"""The dashboard: line health, capacity statement, live progress of active alerts."""
from __future__ import annotations

from sqlalchemy import select

from gateway.alerts import AlertRequest, Target
from gateway.models import Delivery, Line
from tests.test_web_support import app, client_for, panel  # noqa: F401


def _lines(panel) -> None:
    with panel.sessions.begin() as s:
        s.add_all([
            Line(channel="sms", label="tim-1", state="up", signal=20, operator="TIM", registration="home",
                 sim_state="ready", sent_today=100, daily_cap=2000, rate_per_minute=12.0),
            Line(channel="sms", label="voda-1", state="up", signal=15, operator="vodafone IT", registration="home",
                 sim_state="ready", sent_today=1995, daily_cap=2000, rate_per_minute=12.0),
            Line(channel="sms", label="wind-1", state="down", last_error="<modem unplugged>", sent_today=0,
                 daily_cap=2000),
            Line(channel="voice", label="pstn", state="up", in_use=1, limit=2, rate_per_minute=4.0),
        ])


def test_lines_and_capacity(app, panel):
    _lines(panel)
    viewer = client_for(app, "viewer")
    html = viewer.get("/").get_data(as_text=True)
    assert "tim-1" in html and "vodafone IT" in html and "100 / 2000" in html and "1 / 2" in html
    assert "&lt;modem unplugged&gt;" in html
    # tim-1: 12/min x 10 = 120; voda-1: only 5 left today; wind-1 down. Voice: 4 calls/min x 10.
    assert "con 2 modem attivi su 3, il sistema può raggiungere circa 125 persone via SMS" in html
    assert "circa 40 chiamate" in html
    data = viewer.get("/dashboard.json").get_json()
    assert data["capacity"]["sms_people"] == 125 and data["capacity"]["voice_people"] == 40
    assert {line["label"] for line in data["lines"]} == {"tim-1", "voda-1", "wind-1", "pstn"}


def test_live_progress_of_active_alerts(app, panel):
    alert_id, _ = panel.services.alerts.create(AlertRequest(text="Prova", target=Target(zones=("Fregene",))))
    viewer = client_for(app, "viewer")
    html = viewer.get("/").get_data(as_text=True)
    assert f'data-alert="{alert_id}"' in html and 'data-poll="/dashboard.json"' in html
    data = viewer.get("/dashboard.json").get_json()
    assert data["alerts"][0]["progress"]["queued"] == 2
    with panel.sessions.begin() as s:
        for d in s.scalars(select(Delivery).where(Delivery.alert_id == alert_id)):
            d.state = "delivered"
    data = viewer.get("/dashboard.json").get_json()
    assert data["alerts"][0]["progress"]["reached"] == 2 and data["alerts"][0]["progress"]["percent"] == 100.0


def test_static_assets_are_local(app):
    client = app.test_client()
    for name in ("allerta.js", "allerta.css"):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200
        text = response.get_data(as_text=True)
        assert "http://" not in text and "https://" not in text
