"""The panel's Inbox: what citizens wrote, an operator's reply (checked, queued, audited), help requests as alarms."""
from __future__ import annotations

import datetime as dt
import json
import re

from sqlalchemy import select

from gateway.core.alerts import AlertRequest, Target
from gateway.core.db import utcnow
from gateway.core.models import Contact, InboundSms
from gateway.core.models_citizens import HelpRequest, SmsReply
from gateway.core.models_panel import AuditEntry
from gateway.core.states import InboundKind, ReplyReason, ReplyState
from tests.web_support import client_for, csrf_token, post

MARIO, ANNA = "+393331110001", "+393331110002"   # tests/support.py's CONTACTS_CSV: Anna is vulnerable


def _alert(panel, text: str = "Allerta rossa: salire ai piani alti.") -> int:
    alert_id, _preview = panel.services.alerts.create(
        AlertRequest(text=text, target=Target(zones=("Isola Sacra",)), created_by="otto"))
    return alert_id


def _inbound(s, sender: str, text: str, *, minutes_ago: float = 0, **columns) -> InboundSms:
    """A message as the receiving side and the citizens' service leave it."""
    row = InboundSms(line="modem-1", sender=sender, text=text,
                     received_at=utcnow() - dt.timedelta(minutes=minutes_ago), handled=True, **columns)
    s.add(row)
    s.flush()
    return row


def _seed(panel) -> dict:
    alert_id = _alert(panel)
    with panel.sessions.begin() as s:
        anna = s.scalar(select(Contact).where(Contact.name == "Anna Rossi"))
        stop = _inbound(s, MARIO, "STOP", minutes_ago=30, kind=InboundKind.COMMAND, outcome="opted out")
        vote = _inbound(s, "+393203334444", "2", minutes_ago=20, kind=InboundKind.POLL_ANSWER,
                        outcome="vote 2", alert_id=alert_id)
        odd = _inbound(s, "+393475556666", "che succede?", minutes_ago=10, kind=InboundKind.UNRECOGNISED,
                       outcome="commands sent", incomplete=True, parts=2)
        help_sms = _inbound(s, ANNA, "AIUTO siamo bloccati al piano terra", minutes_ago=5,
                            kind=InboundKind.HELP_REQUEST, outcome="help request raised", alert_id=alert_id,
                            contact_id=anna.id)
        request = HelpRequest(inbound_id=help_sms.id, alert_id=alert_id, e164=ANNA, contact_id=anna.id,
                              text=help_sms.text, received_at=help_sms.received_at)
        s.add(request)
        s.add(SmsReply(e164=ANNA, text="Abbiamo ricevuto la richiesta. Se è in pericolo di vita chiami il 112.",
                       reason=ReplyReason.HELP_REQUEST, inbound_id=help_sms.id, state=ReplyState.SENT))
        s.flush()
        return {"alert": alert_id, "stop": stop.id, "vote": vote.id, "odd": odd.id, "help_sms": help_sms.id,
                "help": request.id}


def _rows(html: str) -> list[str]:
    return re.findall(r'data-message="(\d+)"', html)


def test_the_inbox_lists_every_message_newest_first_with_what_was_made_of_it(app, panel):
    ids = _seed(panel)
    html = client_for(app, "viewer").get("/inbox/").get_data(as_text=True)
    assert _rows(html) == [str(ids[k]) for k in ("help_sms", "odd", "vote", "stop")]
    row = html.split(f'data-message="{ids["help_sms"]}"')[1].split("</tr>")[0]
    assert ANNA in row and "Anna Rossi" in row and "Richiesta di aiuto" in row
    assert f'href="/alerts/{ids["alert"]}"' in row and "help request raised" in row and "modem-1" in row
    # The name comes from the contact list even when the service did not link the contact.
    assert "Mario Rossi" in html.split(f'data-message="{ids["stop"]}"')[1].split("</tr>")[0]
    odd = html.split(f'data-message="{ids["odd"]}"')[1].split("</tr>")[0]
    assert "incompleto" in odd and "Non riconosciuto" in odd
    assert 'href="/inbox/"' in html.split("<nav>")[1].split("</nav>")[0]  # the menu entry


def test_the_inbox_filters_by_kind_and_by_sender(app, panel):
    ids = _seed(panel)
    viewer = client_for(app, "viewer")
    for kind, expected in (("help_request", "help_sms"), ("command", "stop"), ("poll_answer", "vote"),
                           ("unrecognised", "odd")):
        assert _rows(viewer.get(f"/inbox/?kind={kind}").get_data(as_text=True)) == [str(ids[expected])], kind
    assert _rows(viewer.get("/inbox/?sender=333 111 0001").get_data(as_text=True)) == [str(ids["stop"])]
    assert _rows(viewer.get(f"/inbox/?alert={ids['alert']}").get_data(as_text=True)) == \
        [str(ids["help_sms"]), str(ids["vote"])]
    assert viewer.get("/inbox/?kind=bogus").status_code == 400


def test_the_inbox_pages_like_the_other_lists(app, panel):
    with panel.sessions.begin() as s:
        for n in range(55):
            _inbound(s, MARIO, f"messaggio {n}", minutes_ago=100 - n, kind=InboundKind.UNRECOGNISED)
    viewer = client_for(app, "viewer")
    first = viewer.get("/inbox/").get_data(as_text=True)
    second = viewer.get("/inbox/?page=2").get_data(as_text=True)
    assert len(_rows(first)) == 50 and len(_rows(second)) == 5
    assert "messaggio 54" in first and "messaggio 0" in second
    assert viewer.get("/inbox/?page=99999999999999999999999").status_code == 400


def test_an_operator_reply_is_queued_audited_and_shown_in_the_conversation(app, panel):
    ids = _seed(panel)
    operator = client_for(app, "operator")
    response = post(operator, f"/inbox/{ids['odd']}/reply", {"text": "  Allerta meteo in corso, restate in casa. "})
    assert response.status_code == 302
    with panel.sessions() as s:
        reply = s.scalar(select(SmsReply).where(SmsReply.e164 == "+393475556666"))
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "inbox.reply"))
    assert (reply.text, reply.reason, reply.state, reply.created_by, reply.inbound_id) == \
        ("Allerta meteo in corso, restate in casa.", ReplyReason.OPERATOR, ReplyState.PENDING, "otto", ids["odd"])
    assert (entry.actor, entry.target) == ("otto", str(ids["odd"]))
    assert json.loads(entry.details) == {"reply": reply.id, "to": "+393475556666",
                                         "text": "Allerta meteo in corso, restate in casa."}
    html = operator.get(f"/inbox/{ids['odd']}").get_data(as_text=True)
    assert "Risposta in coda" in html
    talk = html.split('class="grid conversation"')[1].split("</table>")[0]
    assert talk.index("che succede?") < talk.index("restate in casa") and "In coda" in talk and "otto" in talk
    # The help request's conversation shows the automatic answer with its state.
    talk = operator.get(f"/inbox/{ids['help_sms']}").get_data(as_text=True).split('class="grid conversation"')[1]
    assert "chiami il 112" in talk and "Inviato" in talk


def test_a_reply_needs_the_csrf_token_and_the_operator_role(app, panel):
    ids = _seed(panel)
    operator = client_for(app, "operator")
    assert operator.post(f"/inbox/{ids['odd']}/reply", data={"text": "ciao"}).status_code == 400
    viewer = client_for(app, "viewer")
    assert post(viewer, f"/inbox/{ids['odd']}/reply", {"text": "ciao"}).status_code == 403
    assert 'action="/inbox/%s/reply"' % ids["odd"] not in viewer.get(f"/inbox/{ids['odd']}").get_data(as_text=True)
    assert post(operator, "/inbox/999999/reply", {"text": "ciao"}).status_code == 404
    with panel.sessions() as s:
        assert s.scalar(select(SmsReply).where(SmsReply.reason == ReplyReason.OPERATOR)) is None
        assert s.scalar(select(AuditEntry).where(AuditEntry.action == "inbox.reply")) is None


def test_a_bad_reply_is_refused_with_the_reason_and_nothing_is_queued(app, panel):
    ids = _seed(panel)
    operator = client_for(app, "operator")
    for text, reason in (("   ", "la risposta è vuota"), ("x" * 500, "la risposta richiede 4 SMS, al massimo 3"),
                         ("Ok 👍", "non può essere inviata via SMS")):
        response = post(operator, f"/inbox/{ids['odd']}/reply", {"text": text})
        html = response.get_data(as_text=True)
        assert response.status_code == 400 and "La risposta non è stata inviata" in html and reason in html, text
    assert "x" * 500 in post(operator, f"/inbox/{ids['odd']}/reply", {"text": "x" * 500}).get_data(as_text=True)
    with panel.sessions.begin() as s:
        bank = _inbound(s, "BancaXY", "Il suo codice è 1234", kind=InboundKind.IGNORED)
    html = post(operator, f"/inbox/{bank.id}/reply", {"text": "ciao"}).get_data(as_text=True)
    assert "BancaXY non è un numero di telefono" in html
    with panel.sessions() as s:
        assert s.scalar(select(SmsReply).where(SmsReply.reason == ReplyReason.OPERATOR)) is None
        assert s.scalar(select(AuditEntry).where(AuditEntry.action == "inbox.reply")) is None


def _help_row(html: str, help_id: int) -> str:
    return html.split(f'data-help="{help_id}"')[1].split("</tr>")[0]


def test_a_help_request_is_a_red_alarm_on_the_dashboard_and_the_alert_page(app, panel):
    ids = _seed(panel)
    with panel.sessions.begin() as s:
        anna = s.scalar(select(Contact).where(Contact.name == "Anna Rossi"))
        anna.address, anna.needs = "Via della Scafa 12", "text_only"
    viewer = client_for(app, "viewer")
    for path in ("/", f"/alerts/{ids['alert']}"):
        html = viewer.get(path).get_data(as_text=True)
        assert 'class="help-alarm active"' in html, path
        row = _help_row(html, ids["help"])
        for shown in ("Anna Rossi", ANNA, "Via della Scafa 12", "Isola Sacra", "fragile", "solo testo",
                      "AIUTO siamo bloccati al piano terra"):
            assert shown in row, (path, shown)
        assert f'<tr data-help="{ids["help"]}" class="help-open">' in html
        assert "/handled" not in row  # a viewer sees the alarm, an operator handles it
    snapshot = viewer.get("/dashboard.json").get_json()["help_requests"]
    assert [(h["id"], h["name"], h["address"], h["zone"], h["vulnerable"], h["needs"]) for h in snapshot] == \
        [(ids["help"], "Anna Rossi", "Via della Scafa 12", "Isola Sacra", True, "text_only")]
    assert snapshot[0]["handled_url"] == f"/inbox/help/{ids['help']}/handled"
    assert viewer.get(f"/alerts/{ids['alert']}/progress.json").get_json()["help_requests"][0]["id"] == ids["help"]
    assert 'action="/inbox/help/%s/handled"' % ids["help"] in client_for(app, "operator").get("/").get_data(as_text=True)


def test_marking_a_help_request_handled_is_audited_and_ends_the_alarm(app, panel):
    ids = _seed(panel)
    operator = client_for(app, "operator")
    path = f"/inbox/help/{ids['help']}/handled"
    assert operator.post(path, data={"note": "x"}).status_code == 400                     # no CSRF token
    assert post(client_for(app, "viewer"), path, {"note": "x"}).status_code == 403         # a viewer
    response = post(operator, path, {"note": "Vigili del fuoco sul posto", "next": "/"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/")
    with panel.sessions() as s:
        request = s.get(HelpRequest, ids["help"])
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "help.handled"))
    assert (request.handled_by, request.note) == ("otto", "Vigili del fuoco sul posto") and request.handled_at
    assert (entry.actor, entry.target) == ("otto", str(ids["help"]))
    assert json.loads(entry.details) == {"e164": ANNA, "alert": ids["alert"], "note": "Vigili del fuoco sul posto"}
    dashboard = operator.get("/").get_data(as_text=True)
    assert f'data-help="{ids["help"]}"' not in dashboard and 'class="help-alarm active"' not in dashboard
    assert operator.get("/dashboard.json").get_json()["help_requests"] == []
    # The alert page and the message keep it, handled, as history.
    alert_page = operator.get(f"/alerts/{ids['alert']}").get_data(as_text=True)
    assert "Vigili del fuoco sul posto" in _help_row(alert_page, ids["help"]) and "help-alarm active" not in alert_page
    assert "gestita da otto" in _help_row(operator.get(f"/inbox/{ids['help_sms']}").get_data(as_text=True),
                                          ids["help"])
    # Twice is refused, with who did it; the chain has one entry.
    html = post(operator, path, {"note": "di nuovo"}, follow_redirects=True).get_data(as_text=True)
    assert "già stata gestita da otto" in html
    assert post(operator, "/inbox/help/999999/handled", {}).status_code == 404
    with panel.sessions() as s:
        assert len(s.scalars(select(AuditEntry).where(AuditEntry.action == "help.handled")).all()) == 1


def test_an_outside_next_is_not_followed(app, panel):
    ids = _seed(panel)
    response = post(client_for(app, "operator"), f"/inbox/help/{ids['help']}/handled", {"next": "//evil.example/"})
    assert response.headers["Location"].endswith("/inbox/")


def test_inbox_pages_have_no_inline_script_or_style(app, panel):
    ids = _seed(panel)
    operator = client_for(app, "operator")
    for path in ("/inbox/", f"/inbox/{ids['help_sms']}", "/", f"/alerts/{ids['alert']}"):
        html = operator.get(path).get_data(as_text=True)
        assert "<style" not in html and not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        tags = re.sub(r'"[^"]*"', '""', "".join(re.findall(r"<[^>]+>", html)))
        assert not re.search(r"\s(style|on[a-z]+)=", tags), path
    assert csrf_token(operator, "/inbox/")


def _token(app, role: str = "viewer") -> str:
    html = post(client_for(app, "admin"), "/admin/tokens", {"name": "sala operativa", "role": role}).get_data(as_text=True)
    return re.search(r'<code id="new-token">([^<]+)</code>', html).group(1)


def test_the_api_lists_messages_and_open_help_requests(app, panel):
    ids = _seed(panel)
    client, headers = app.test_client(), {"Authorization": f"Bearer {_token(app)}"}
    body = client.get("/api/v1/inbox?limit=2", headers=headers).get_json()
    assert body["total"] == 4 and [m["id"] for m in body["messages"]] == [ids["help_sms"], ids["odd"]]
    assert body["messages"][0]["help_request_id"] == ids["help"] and body["messages"][0]["name"] == "Anna Rossi"
    body = client.get("/api/v1/inbox?limit=2&page=2", headers=headers).get_json()
    assert [m["id"] for m in body["messages"]] == [ids["vote"], ids["stop"]]
    body = client.get(f"/api/v1/inbox?kind=poll_answer&alert={ids['alert']}", headers=headers).get_json()
    assert [m["id"] for m in body["messages"]] == [ids["vote"]]
    for query, field in (("kind=spam", "kind"), ("limit=0", "limit"), ("limit=x", "limit"), ("page=0", "page")):
        response = client.get(f"/api/v1/inbox?{query}", headers=headers)
        assert (response.status_code, response.get_json()["field"]) == (400, field), query
    (help_request,) = client.get("/api/v1/help-requests", headers=headers).get_json()["help_requests"]
    assert (help_request["id"], help_request["name"], help_request["zone"], help_request["vulnerable"]) == \
        (ids["help"], "Anna Rossi", "Isola Sacra", True)
    post(client_for(app, "operator"), f"/inbox/help/{ids['help']}/handled", {})
    assert client.get("/api/v1/help-requests", headers=headers).get_json()["help_requests"] == []
    (handled,) = client.get("/api/v1/help-requests?all=true", headers=headers).get_json()["help_requests"]
    assert handled["handled_by"] == "otto"
