"""A poll or a confirmation request from the panel, the API and the CLI; the results on the page, the CSV and the API."""
from __future__ import annotations

import csv
import io
import json
import re

from sqlalchemy import select

from gateway.core.models import Alert
from gateway.core.models_citizens import PollVote
from gateway.core.models_panel import AlertText, AuditEntry
from gateway.shell.cli import main
from tests.web_support import client_for, post

QUESTION = "Siete al sicuro?"
OPTIONS = ["sì", "no, serve aiuto", "non sono a casa"]
SMS = "Allerta rossa a Fregene.\nSiete al sicuro? Rispondi 1 se sì, 2 se no, serve aiuto, 3 se non sono a casa."


def _token(app, role: str = "approver") -> str:
    html = post(client_for(app, "admin"), "/admin/tokens", {"name": "sala operativa", "role": role}).get_data(as_text=True)
    return re.search(r'<code id="new-token">([^<]+)</code>', html).group(1)


def _api(app, body: dict, token: str):
    return app.test_client().post("/api/v1/alerts", json=body, headers={"Authorization": f"Bearer {token}"})


def _stored(panel, alert_id: int) -> tuple:
    with panel.sessions() as s:
        alert = s.get(Alert, alert_id)
        return alert.sms_text, alert.poll_question, json.loads(alert.poll_options or "null"), alert.asks_confirmation


def _from_panel(app, **answers) -> int:
    form = {"text": "Allerta rossa a Fregene.", "zones": "Fregene", "channels": "sms", "action": "draft", **answers}
    response = post(client_for(app, "operator"), "/alerts/new", form)
    assert response.status_code == 302, re.findall(r'class="flash error"[^>]*>([^<]+)', response.get_data(as_text=True))
    return int(response.headers["Location"].rsplit("/", 1)[1])


def _from_cli(tmp_path, capsys, *args: str) -> int:
    code = main(["--config", str(tmp_path / "allerta.toml"), "alert", "send", "--sms", "--zone", "Fregene",
                 "--text", "Allerta rossa a Fregene.", *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return int(out.split()[-1])


def test_a_poll_from_the_panel_the_api_and_the_cli_is_stored_and_sent_alike(app, panel, tmp_path, capsys):
    from_panel = _from_panel(app, poll_question=f" {QUESTION} ", poll_options=[*OPTIONS, "", ""])
    response = _api(app, {"text": "Allerta rossa a Fregene.", "target": {"zones": ["Fregene"]}, "mode": "draft",
                          "poll": {"question": QUESTION, "options": OPTIONS}}, _token(app))
    assert response.status_code == 201, response.get_json()
    from_api = response.get_json()["id"]
    assert response.get_json()["poll"]["options"][1] == {"number": 2, "text": "no, serve aiuto", "votes": 0,
                                                         "percent": 0}
    from_cli = _from_cli(tmp_path, capsys, "--poll-question", QUESTION, *[a for o in OPTIONS for a in ("--poll-option", o)])
    assert main(["--config", str(tmp_path / "allerta.toml"), "alert", "status", str(from_cli)]) == 0
    assert "poll 'Siete al sicuro?': 0 votes (0 changed); 1 'sì' 0, 2 'no, serve aiuto' 0" in capsys.readouterr().out
    for alert_id in (from_panel, from_api, from_cli):
        assert _stored(panel, alert_id) == (SMS, QUESTION, OPTIONS, False), alert_id
    with panel.sessions() as s:
        details = [json.loads(e.details) for e in s.scalars(select(AuditEntry).where(
            AuditEntry.action.in_(("alert.draft", "alert.send"))).order_by(AuditEntry.id))]
    assert [d["poll"] for d in details] == [{"question": QUESTION, "options": OPTIONS, "closes_at": None}] * 3


def test_a_confirmation_request_from_the_three_entry_points(app, panel, tmp_path, capsys):
    expected = ("Allerta rossa a Fregene.\nRispondi OK per confermare.", None, None, True)
    from_panel = _from_panel(app, asks_confirmation="1")
    response = _api(app, {"text": "Allerta rossa a Fregene.", "target": {"zones": ["Fregene"]}, "mode": "draft",
                          "asks_confirmation": True, "translations": {"en": "Red alert in Fregene."}}, _token(app))
    assert response.status_code == 201 and response.get_json()["asks_confirmation"] is True
    from_cli = _from_cli(tmp_path, capsys, "--ask-confirmation")
    for alert_id in (from_panel, response.get_json()["id"], from_cli):
        assert _stored(panel, alert_id) == expected
    html = client_for(app, "viewer").get(f"/alerts/{from_panel}").get_data(as_text=True)
    assert "chiede ai cittadini di confermare" in html
    with panel.sessions() as s:
        audited = s.scalar(select(AuditEntry.details).where(AuditEntry.action == "alert.draft")
                           .order_by(AuditEntry.id.desc()))
        english = s.scalar(select(AlertText.sms_text).where(AlertText.alert_id == response.get_json()["id"]))
    assert json.loads(audited)["asks_confirmation"] is True
    assert english == "Red alert in Fregene.\nReply OK to confirm."


def test_the_api_says_which_field_of_a_poll_is_wrong(app, panel):
    token = _token(app)
    base = {"text": "Allerta.", "target": {"zones": ["Fregene"]}, "mode": "draft"}
    for poll, field, status in (({"question": "Q?", "options": ["solo"]}, "/poll/options", 400),
                                ({"question": "Q?", "options": list("abcdefghij")}, "/poll/options", 400),
                                ({"question": "Q?", "options": ["a", ""]}, "/poll/options/1", 400),
                                ({"options": ["a", "b"]}, "/poll", 400),
                                ({"question": "Q?", "options": ["a", "b"], "colour": 1}, "/poll/colour", 400),
                                ({"question": "Q?", "options": ["a", "b"], "closes_at": "domani"}, "/poll/closes_at", 400),
                                ({"question": "Q?", "options": ["a", "b"], "closes_at": "2030-01-01T10:00"},
                                 "/poll/closes_at", 400),
                                ({"question": "Q?", "options": ["a", "b"], "closes_at": "2020-01-01T10:00Z"},
                                 "/poll/closes_at", 422),
                                ({"question": "Q?", "options": ["Sì", "sì "]}, "/poll/options/1", 422),
                                ({"question": "Q?", "options": ["a", "b\nc"]}, "/poll/options/1", 422)):
        response = _api(app, {**base, "poll": poll}, token)
        assert (response.status_code, response.get_json().get("field")) == (status, field), (poll, response.get_json())
    response = _api(app, {**base, "asks_confirmation": True, "poll": {"question": "Q?", "options": ["a", "b"]}}, token)
    assert (response.status_code, response.get_json()["field"]) == (422, "/asks_confirmation")
    assert "not both" in response.get_json()["error"]
    response = _api(app, {**base, "text": "x" * 600, "poll": {"question": "Q?", "options": ["a", "b"]}}, token)
    assert response.status_code == 422 and "segments" in response.get_json()["error"]
    with panel.sessions() as s:
        assert s.scalar(select(Alert.id)) is None
    schema = app.test_client().get("/api/v1/openapi.json").get_json()
    create = schema["paths"]["/api/v1/alerts"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert create["properties"]["poll"]["properties"]["options"]["maxItems"] == 9
    assert "asks_confirmation" in create["properties"]


def test_the_panel_refuses_a_bad_poll_and_gives_the_form_back(app, panel):
    form = {"text": "Allerta.", "zones": "Fregene", "channels": "sms", "action": "draft",
            "poll_question": "Siete al sicuro?", "poll_options": ["sì", ""]}
    response = post(client_for(app, "operator"), "/alerts/new", form)
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and "da 2 a 9 opzioni, non 1" in html
    assert 'value="Siete al sicuro?"' in html and 'name="poll_options" maxlength="80" size="40" value="sì"' in html
    response = post(client_for(app, "operator"), "/alerts/new", {**form, "poll_options": ["sì", "no"],
                                                                 "asks_confirmation": "1"})
    assert response.status_code == 400 and "non entrambi" in response.get_data(as_text=True)
    with panel.sessions() as s:
        assert s.scalar(select(Alert.id)) is None


def test_the_live_counter_counts_the_poll(app):
    operator = client_for(app, "operator")
    token = re.search(r'name="csrf-token" content="([^"]+)"', operator.get("/alerts/new").get_data(as_text=True)).group(1)

    def plan(**extra):  # noqa: ANN202
        return operator.post("/alerts/sms-plan", json={"text": "x" * 150, **extra},
                             headers={"X-CSRFToken": token}).get_json()["segments"]
    assert plan() == 1
    assert plan(poll_question="Q?", poll_options=["a", "b", ""]) == 2
    assert plan(asks_confirmation=True) == 2


def test_results_with_a_changed_vote_on_the_page_the_csv_and_the_api(app, panel):
    token = _token(app)
    response = _api(app, {"text": "Allerta rossa a Fregene.", "target": {"zones": ["Fregene"]}, "mode": "send_now",
                          "reason": "piena in corso", "poll": {"question": QUESTION, "options": OPTIONS}}, token)
    assert response.status_code == 201, response.get_json()
    alert_id = response.get_json()["id"]
    ion, giulia = "+393207654321", "+393470000003"   # Fregene's two mobiles (tests/support.py)
    with panel.sessions.begin() as s:
        s.add_all([PollVote(alert_id=alert_id, e164=ion, option=2), PollVote(alert_id=alert_id, e164=giulia, option=1)])
    with panel.sessions.begin() as s:   # Giulia changes her mind: the last answer counts
        vote = s.scalar(select(PollVote).where(PollVote.e164 == giulia))
        vote.option, vote.changes = 2, 1

    html = client_for(app, "viewer").get(f"/alerts/{alert_id}").get_data(as_text=True)
    section = html.split('id="poll-results"')[1].split("</section>")[0]
    assert QUESTION in section
    votes = dict(re.findall(r'data-option="(\d)"><td>\d</td><td>[^<]+</td><td data-field="votes">(\d+)</td>', section))
    assert votes == {"1": "0", "2": "2", "3": "0"}
    assert '<strong data-field="total_votes">2</strong>' in section and '<span data-field="changed">1</span>' in section
    live = client_for(app, "viewer").get(f"/alerts/{alert_id}/progress.json").get_json()["poll"]
    assert [o["votes"] for o in live["options"]] == [0, 2, 0] and live["changed"] == 1

    rows = list(csv.DictReader(io.StringIO(client_for(app, "operator").get(
        f"/alerts/{alert_id}/export.csv").get_data(as_text=True))))
    assert {row["number"].lstrip("'"): row["poll_answer"] for row in rows} == {ion: "2 · no, serve aiuto",
                                                                   giulia: "2 · no, serve aiuto"}

    body = app.test_client().get(f"/api/v1/alerts/{alert_id}", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert [(o["number"], o["votes"]) for o in body["poll"]["options"]] == [(1, 0), (2, 2), (3, 0)]
    assert (body["poll"]["votes"], body["poll"]["changed"], body["poll"]["open"]) == (2, 1, True)


def test_an_alert_without_a_poll_keeps_its_csv_and_api_as_they_were(app, panel):
    token = _token(app)
    response = _api(app, {"text": "Allerta.", "target": {"zones": ["Fregene"]}, "mode": "send_now",
                          "reason": "prova"}, token)
    alert_id = response.get_json()["id"]
    assert response.get_json()["poll"] is None and response.get_json()["asks_confirmation"] is False
    header = client_for(app, "operator").get(f"/alerts/{alert_id}/export.csv").get_data(as_text=True).splitlines()[0]
    assert "poll_answer" not in header
    assert 'id="poll-results"' not in client_for(app, "viewer").get(f"/alerts/{alert_id}").get_data(as_text=True)
