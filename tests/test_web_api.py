"""The JSON API: bearer tokens (wrong, revoked, role), create an alert, progress, lines, OpenAPI."""
from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select

from gateway.core.models import Alert, Line
from gateway.core.models_panel import ApiToken
from tests.web_support import client_for, post
import pytest

# Run on SQLite and on PostgreSQL (conftest.py, tests/pg_support.py).
pytestmark = pytest.mark.both_databases


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
    for extra, status, error in (({"voice_language": "tlh"}, 400, "'tlh' is not one of"),
                                 ({"translations": ["ro"]}, 400, "is not of type 'object'"),
                                 ({"translations": {"Romeno": "x"}}, 422, "romeno is not a language code")):
        response = client.post("/api/v1/alerts", headers=_auth(token), json={**voice, **extra})
        assert response.status_code == status and error in response.get_json()["error"], extra
    with panel.sessions() as s:
        assert s.scalar(select(Alert.id)) is None
    sounds = Path(panel.config.sounds_dir)
    assert not sounds.exists() or not list(sounds.glob("*.wav"))


def test_bodies_are_checked_against_the_published_schema(app, panel):
    """{"all": "false"} once became an alert to everyone: types are JSON types, unknown fields are refused,
    and the answer names the field (a JSON pointer)."""
    client = app.test_client()
    token = _token(app, role="approver")
    base = {"text": "Allerta", "target": {"zones": ["Fregene"]}, "mode": "send_now", "reason": "prova"}
    for body, field in (({**base, "target": {"all": "false"}}, "/target/all"),
                        ({**base, "target": {"all": 1}}, "/target/all"),
                        ({**base, "drill": "no"}, "/drill"),
                        ({**base, "priority": 0}, "/priority"),
                        ({**base, "sms_fallback": "true"}, "/sms_fallback"),
                        ({**base, "channels": "sms"}, "/channels"),
                        ({**base, "target": {"zone": ["Fregene"]}}, "/target/zone"),
                        ({**base, "send_at": "2026-12-24T10:00"}, "/send_at"),
                        ({**base, "text": 42}, "/text"),
                        ({"text": "x"}, ""),
                        ([base], ""),
                        ("Allerta", "")):
        response = client.post("/api/v1/alerts", headers=_auth(token), json=body)
        assert response.status_code == 400, body
        assert response.get_json()["field"] == field, (body, response.get_json())
    response = client.post("/api/v1/alerts", headers=_auth(token), data="{not json",
                           content_type="application/json")
    assert response.status_code == 400 and "error" in response.get_json()
    with panel.sessions() as s:
        assert s.scalar(select(Alert.id)) is None  # nothing was created by any of them


def _documented(doc: dict, path: str, method: str) -> set[int]:
    return {int(code) for code in doc["paths"][path][method]["responses"]}


def test_every_answer_is_in_the_openapi_document(app, panel):
    """Each status the API gives for these requests is listed for its path in the published document."""
    client = app.test_client()
    doc = client.get("/api/v1/openapi.json").get_json()
    operator, viewer = _token(app), _token(app, role="viewer", name="cruscotto")
    good = {"text": "Allerta", "target": {"zones": ["Fregene"]}}
    answers = {("/api/v1/alerts", "post"): [
        client.post("/api/v1/alerts", headers=_auth(operator), json=good).status_code,
        client.post("/api/v1/alerts", headers=_auth(operator), json={"text": 1}).status_code,
        client.post("/api/v1/alerts", headers=_auth(operator),
                    json={"text": "x", "target": {"zones": ["Atlantide"]}}).status_code,
        client.post("/api/v1/alerts", headers=_auth(viewer), json=good).status_code,
        client.post("/api/v1/alerts", json=good).status_code],
        ("/api/v1/alerts/{id}", "get"): [
        client.get("/api/v1/alerts/1", headers=_auth(viewer)).status_code,
        client.get("/api/v1/alerts/424242", headers=_auth(viewer)).status_code,
        client.get("/api/v1/alerts/99999999999999999999", headers=_auth(viewer)).status_code],
        ("/api/v1/lines", "get"): [client.get("/api/v1/lines", headers=_auth(viewer)).status_code,
                                   client.get("/api/v1/lines").status_code],
        ("/api/v1/inbox", "get"): [client.get("/api/v1/inbox", headers=_auth(viewer)).status_code,
                                   client.get("/api/v1/inbox?kind=x", headers=_auth(viewer)).status_code,
                                   client.get("/api/v1/inbox").status_code],
        ("/api/v1/help-requests", "get"): [client.get("/api/v1/help-requests", headers=_auth(viewer)).status_code,
                                           client.get("/api/v1/help-requests").status_code]}
    assert set(answers["/api/v1/alerts", "post"]) == {201, 400, 422, 403, 401}
    for (path, method), statuses in answers.items():
        assert set(statuses) <= _documented(doc, path, method), (path, statuses)


def test_lines(app, panel):
    with panel.sessions.begin() as s:
        s.add(Line(channel="sms", label="tim-1", state="up", signal=21, operator="TIM", sent_today=10,
                   daily_cap=1000, rate_per_minute=12.0))
    body = app.test_client().get("/api/v1/lines", headers=_auth(_token(app, role="viewer"))).get_json()
    assert body["lines"][0]["label"] == "tim-1" and body["lines"][0]["signal"] == 21


def test_openapi_document(app):
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {"/api/v1/alerts", "/api/v1/alerts/{id}", "/api/v1/lines", "/api/v1/inbox",
                                 "/api/v1/help-requests", "/api/v1/cap"}
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    routes = {rule.rule.replace("<int:alert_id>", "{id}") for rule in app.url_map.iter_rules()
              if rule.rule.startswith("/api/v1/") and not rule.rule.endswith("openapi.json")}
    assert routes == set(doc["paths"])
