"""The JSON API: bearer tokens (wrong, revoked, role), create an alert, progress, lines, OpenAPI."""
from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select

from gateway.core.models import Alert, Line
from gateway.core.models_panel import ApiToken
from tests.web_support import client_for, post


def _token(app, role: str = "operator", name: str = "protezione civile") -> str:
    admin = client_for(app, "admin")
    html = post(admin, "/admin/tokens", {"name": name, "role": role}).get_data(as_text=True)
    return re.search(r'<code id="new-token">([^<]+)</code>', html).group(1)


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_only_the_hash_is_stored(app, panel):
    token = _token(app)
    with panel.sessions() as s:
        row = s.scalar(select(ApiToken))
    assert token not in (row.token_hash, row.prefix) and len(row.token_hash) == 64
    html = client_for(app, "admin").get("/admin/tokens").get_data(as_text=True)
    assert token not in html  # shown once, never again


def test_missing_wrong_and_revoked_tokens(app, panel):
    client = app.test_client()
    assert client.get("/api/v1/lines").status_code == 401
    assert client.get("/api/v1/lines", headers=_auth("allerta_not-a-real-token")).status_code == 401
    assert client.get("/api/v1/lines", headers={"Authorization": "Basic Zm9vOmJhcg=="}).status_code == 401
    token = _token(app)
    assert client.get("/api/v1/lines", headers=_auth(token)).status_code == 200
    with panel.sessions() as s:
        token_id = s.scalar(select(ApiToken.id))
    post(client_for(app, "admin"), "/admin/tokens", {"action": "revoke", "id": token_id})
    response = client.get("/api/v1/lines", headers=_auth(token))
    assert response.status_code == 401 and response.get_json()["error"] == "invalid or revoked token"


def test_viewer_token_cannot_create_alerts(app):
    token = _token(app, role="viewer")
    response = app.test_client().post("/api/v1/alerts", headers=_auth(token),
                                      json={"text": "x", "target": {"zones": ["Fregene"]}})
    assert response.status_code == 403


def test_create_alert_and_read_progress(app, panel):
    client = app.test_client()
    token = _token(app, role="operator")
    response = client.post("/api/v1/alerts", headers=_auth(token),
                           json={"text": "Allerta meteo", "channels": ["sms"], "target": {"zones": ["Fregene"]},
                                 "drill": True})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["state"] == "awaiting_approval"  # the two-person rule applies to systems too
    assert body["recipients_by_channel"] == {"sms": 2} and body["text"].startswith("[ESERCITAZIONE]")
    alert_id = body["id"]
    approver = _token(app, role="approver", name="sala operativa")
    response = client.post("/api/v1/alerts", headers=_auth(approver),
                           json={"text": "Evacuare", "target": {"numbers": ["333 111 0001"]}, "mode": "send_now",
                                 "reason": "frana in corso"})
    assert response.status_code == 201 and response.get_json()["state"] == "active"
    status = client.get(f"/api/v1/alerts/{response.get_json()['id']}", headers=_auth(token)).get_json()
    assert status["progress"]["total"] == 1 and status["progress"]["queued"] == 1
    assert client.get(f"/api/v1/alerts/{alert_id}", headers=_auth(token)).get_json()["state"] == "awaiting_approval"
    assert client.get("/api/v1/alerts/9999", headers=_auth(token)).status_code == 404


def test_bad_alert_requests(app):
    client = app.test_client()
    token = _token(app)
    for body in ([1, 2], {"target": {"zones": ["Fregene"]}}, {"text": "x", "target": {"zones": ["Atlantide"]}},
                 {"text": "x", "target": {"zones": "Fregene"}}, {"text": "x", "channels": ["fax"],
                                                                 "target": {"all": True}}):
        response = client.post("/api/v1/alerts", headers=_auth(token), json=body)
        assert response.status_code in (400, 422), body
        assert "error" in response.get_json()


def test_bad_voice_requests_store_nothing(app, panel):
    client = app.test_client()
    token = _token(app)
    voice = {"text": "Allerta", "channels": ["voice"], "target": {"zones": ["Fregene"]}}
    for extra, error in (({"voice_language": "tlh"}, "no voice for language 'tlh'; supported: ar, de, en"),
                         ({"translations": ["ro"]}, "translations must be an object of language codes and texts"),
                         ({"translations": {"Romeno": "x"}}, "romeno is not a language code")):
        response = client.post("/api/v1/alerts", headers=_auth(token), json={**voice, **extra})
        assert response.status_code == 422 and error in response.get_json()["error"], extra
    with panel.sessions() as s:
        assert s.scalar(select(Alert.id)) is None
    sounds = Path(panel.config.sounds_dir)
    assert not sounds.exists() or not list(sounds.glob("*.wav"))


def test_lines(app, panel):
    with panel.sessions.begin() as s:
        s.add(Line(channel="sms", label="tim-1", state="up", signal=21, operator="TIM", sent_today=10,
                   daily_cap=1000, rate_per_minute=12.0))
    body = app.test_client().get("/api/v1/lines", headers=_auth(_token(app, role="viewer"))).get_json()
    assert body["lines"][0]["label"] == "tim-1" and body["lines"][0]["signal"] == 21


def test_openapi_document(app):
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {"/api/v1/alerts", "/api/v1/alerts/{id}", "/api/v1/lines"}
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    routes = {rule.rule.replace("<int:alert_id>", "{id}") for rule in app.url_map.iter_rules()
              if rule.rule.startswith("/api/v1/") and not rule.rule.endswith("openapi.json")}
    assert routes == set(doc["paths"])
