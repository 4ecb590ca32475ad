"""The dashboard: line health, capacity statement, live progress of active alerts."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from gateway.core.alerts import AlertRequest, Target
from gateway.core.db import utcnow
from gateway.core.models_ops import Alarm
from gateway.core.models import Delivery, Line
from tests.web_support import client_for, post


def _lines(panel) -> None:
    now = utcnow()
    with panel.sessions.begin() as s:
        s.add_all([
            Line(channel="sms", label="tim-1", state="up", signal=20, operator="TIM", registration="home",
                 sim_state="ready", sent_today=100, daily_cap=2000, rate_per_minute=12.0, updated_at=now),
            Line(channel="sms", label="voda-1", state="up", signal=15, operator="vodafone IT", registration="home",
                 sim_state="ready", sent_today=1995, daily_cap=2000, rate_per_minute=12.0, updated_at=now),
            Line(channel="sms", label="wind-1", state="down", last_error="<modem unplugged>", sent_today=0,
                 daily_cap=2000, updated_at=now),
            # A trunk reports only when something changes: an idle one's row is old.
            Line(channel="voice", label="pstn", state="up", in_use=1, limit=2, rate_per_minute=4.0,
                 updated_at=now - dt.timedelta(hours=2)),
        ])


def _age_lines(panel, **changes) -> None:
    """Make some lines' last report older (label=timedelta)."""
    with panel.sessions.begin() as s:
        for label, age in changes.items():
            s.execute(update(Line).where(Line.label == label.replace("_", "-")).values(updated_at=utcnow() - age))


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
    assert data["capacity"]["engine_reporting"] and not data["capacity_text"]["engine"]


def test_stale_lines_count_as_down(app, panel):
    _lines(panel)
    viewer = client_for(app, "viewer")
    # tim-1 missed its health reads (every 30 s) for 4 minutes: down, whatever it said last.
    _age_lines(panel, tim_1=dt.timedelta(minutes=4))
    data = viewer.get("/dashboard.json").get_json()
    assert data["capacity"]["sms_people"] == 5 and data["capacity"]["sms_lines_up"] == 1
    assert data["capacity"]["voice_people"] == 40  # the engine still reports: the idle trunk's state holds
    assert [line["stale"] for line in data["lines"] if line["label"] == "tim-1"] == [True]
    assert "nessun aggiornamento recente" in viewer.get("/").get_data(as_text=True)
    # No report from the engine for 4 minutes on any line: nothing counts as up, and the panel says why.
    _age_lines(panel, voda_1=dt.timedelta(minutes=4), wind_1=dt.timedelta(minutes=5))
    data = viewer.get("/dashboard.json").get_json()
    assert data["capacity"]["sms_people"] == 0 and data["capacity"]["voice_people"] == 0
    assert not data["capacity"]["engine_reporting"] and all(line["stale"] for line in data["lines"])
    html = viewer.get("/").get_data(as_text=True)
    assert "Il motore non invia aggiornamenti da più di 3 minuti" in html and "con 0 modem attivi su 3" in html
    # The compose page's ETA does not count on them either.
    operator = client_for(app, "operator")
    body = post(operator, "/alerts/preview", {"text": "Prova", "zones": "Fregene", "channels": "sms"}).get_json()
    assert body["eta_seconds"]["sms"] is None


def test_snapshot_carries_what_the_script_needs_to_add_rows(app, panel):
    viewer = client_for(app, "viewer")
    html = viewer.get("/").get_data(as_text=True)
    assert 'data-rows="alerts"' in html and 'data-rows="alarms"' in html  # present even when empty
    # Created after the page loaded: the snapshot has everything a new row shows.
    alert_id, _ = panel.services.alerts.create(AlertRequest(text="<b>Prova</b> " + "x" * 100, drill=True,
                                                            target=Target(zones=("Fregene",))))
    with panel.sessions.begin() as s:
        s.add(Alarm(kind="modem_lost", subject="tim-1", message="modem perso"))
    data = viewer.get("/dashboard.json").get_json()
    alert = data["alerts"][0]
    assert alert["id"] == alert_id and alert["url"] == f"/alerts/{alert_id}" and alert["drill"]
    assert alert["state_label"] == "Attiva" and alert["summary"].endswith("…") and len(alert["summary"]) <= 80
    assert [(a["kind"], a["subject"], a["message"]) for a in data["alarms"]] == [("modem_lost", "tim-1", "modem perso")]


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


def test_every_nodes_lines_are_shown_with_their_node_and_a_silent_nodes_count_as_down(app, panel):
    now = utcnow()
    with panel.sessions.begin() as s:
        s.add_all([
            Line(channel="sms", label="coc-1", node="coc", state="up", sent_today=0, daily_cap=2000,
                 rate_per_minute=12.0, updated_at=now),
            Line(channel="voice", label="coc-pstn", node="coc", state="up", in_use=0, limit=2, rate_per_minute=4.0,
                 updated_at=now - dt.timedelta(hours=2)),
            # The town hall's engine stopped reporting 4 minutes ago: its idle trunk is not believed either.
            Line(channel="sms", label="municipio-1", node="municipio", state="up", sent_today=0, daily_cap=2000,
                 rate_per_minute=12.0, updated_at=now - dt.timedelta(minutes=4)),
            Line(channel="voice", label="municipio-pstn", node="municipio", state="up", in_use=0, limit=2,
                 rate_per_minute=4.0, updated_at=now - dt.timedelta(hours=2)),
        ])
    viewer = client_for(app, "viewer")
    data = viewer.get("/dashboard.json").get_json()
    assert {(line["label"], line["node"], line["stale"]) for line in data["lines"]} == {
        ("coc-1", "coc", False), ("coc-pstn", "coc", False),
        ("municipio-1", "municipio", True), ("municipio-pstn", "municipio", True)}
    assert data["capacity"]["sms_people"] == 120 and data["capacity"]["voice_people"] == 40
    html = viewer.get("/").get_data(as_text=True)
    assert "<th>Nodo</th>" in html and '<td data-field="node">municipio</td>' in html
