"""Composing, approving, sending, following and exporting alerts from the panel."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import subprocess

import pytest
from sqlalchemy import func, select, update

from gateway.core.db import utcnow
from gateway.core.models import Alert, Contact, Delivery, Line, PhoneNumberRow
from gateway.core.models_panel import AlertApproval, AuditEntry
from gateway.shell.cli import main as cli_main
from tests.support import needs_audio_tools
from tests.web_support import client_for, csrf_token, make_app, post

# Run on SQLite and on PostgreSQL (conftest.py, tests/pg_support.py).
pytestmark = pytest.mark.both_databases


def _sms_form(**overrides) -> dict:
    form = {"text": "Allerta rossa: salire ai piani alti", "zones": "Fregene", "channels": "sms",
            "action": "submit"}
    form.update(overrides)
    return form


def _deliveries(panel, alert_id: int) -> int:
    with panel.sessions() as s:
        return s.scalar(select(func.count()).select_from(Delivery).where(Delivery.alert_id == alert_id))


def _alert(panel, alert_id: int) -> Alert:
    with panel.sessions() as s:
        return s.get(Alert, alert_id)


def _created_id(response) -> int:
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    return int(response.location.rstrip("/").rsplit("/", 1)[1])


def test_sms_counter_reports_encoding_segments_and_fix(app):
    client = client_for(app, "operator")
    token = csrf_token(client, "/alerts/new")
    plan = client.post("/alerts/sms-plan", json={"text": "L’acqua sale – state a casa…"},
                       headers={"X-CSRFToken": token}).get_json()
    assert plan["encoding"] == "UCS-2" and plan["segments"] == 1
    assert set(plan["culprits"]) == {"’", "–", "…"}
    assert plan["fixed"] == "L'acqua sale - state a casa..."
    fixed = client.post("/alerts/sms-plan", json={"text": plan["fixed"]}, headers={"X-CSRFToken": token}).get_json()
    assert fixed["encoding"] == "GSM-7" and fixed["fixed"] is None and fixed["culprits"] == []
    long = client.post("/alerts/sms-plan", json={"text": "a" * 161}, headers={"X-CSRFToken": token}).get_json()
    assert long["segments"] == 2 and not long["too_long"]
    huge = client.post("/alerts/sms-plan", json={"text": "a" * 800}, headers={"X-CSRFToken": token}).get_json()
    assert huge["too_long"]
    # A voice-only text is not an SMS: no segment limit; with the SMS fallback it is one.
    for channels, too_long in (("voice", False), ("voice_fallback", True), ("both", True)):
        spoken = client.post("/alerts/sms-plan", json={"text": "a" * 800, "channels": channels},
                             headers={"X-CSRFToken": token}).get_json()
        assert spoken["too_long"] is too_long, channels
    drill = client.post("/alerts/sms-plan", json={"text": "a" * 150, "drill": True},
                        headers={"X-CSRFToken": token}).get_json()
    assert drill["segments"] == 2  # the drill prefix counts
    emoji = client.post("/alerts/sms-plan", json={"text": "ciao 🌊"}, headers={"X-CSRFToken": token}).get_json()
    assert "error" in emoji


def test_preview_counts_recipients_and_eta(app, panel):
    with panel.sessions.begin() as s:
        s.add(Line(channel="sms", label="tim-1", state="up", rate_per_minute=12.0, updated_at=utcnow()))
    client = client_for(app, "operator")
    body = post(client, "/alerts/preview", {"text": "Prova", "zones": ["Fregene", "Isola Sacra"],
                                            "channels": "both"}).get_json()
    assert body["recipients"] == {"sms": 4, "voice": 5}  # the household landline is one number
    assert body["eta_seconds"]["sms"] == 20  # 4 one-segment SMS at 12 a minute
    assert body["eta_seconds"]["voice"] is None  # no trunk up
    bad = post(client, "/alerts/preview", {"text": "Prova", "zones": "Atlantide", "channels": "sms"})
    assert bad.status_code == 400 and "Atlantide" in bad.get_json()["error"]


def test_two_person_rule_operator_waits_for_another_approver(app, panel):
    operator = client_for(app, "operator")
    alert_id = _created_id(post(operator, "/alerts/new", _sms_form()))
    assert _alert(panel, alert_id).state == "awaiting_approval"
    assert _deliveries(panel, alert_id) == 0  # nothing goes out before approval
    assert post(operator, f"/alerts/{alert_id}/approve").status_code == 403
    approver = client_for(app, "approver")
    page = approver.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert "Approva e invia" in page
    assert post(approver, f"/alerts/{alert_id}/approve").status_code == 302
    alert = _alert(panel, alert_id)
    assert alert.state == "active" and alert.recipients == 2
    assert _deliveries(panel, alert_id) == 2
    # A second approval does not fan out twice.
    post(approver, f"/alerts/{alert_id}/approve")
    assert _deliveries(panel, alert_id) == 2
    with panel.sessions() as s:
        approval = s.scalar(select(AlertApproval).where(AlertApproval.alert_id == alert_id))
        assert (approval.requested_by, approval.decision, approval.decided_by) == ("otto", "approved", "anna")
        actions = list(s.scalars(select(AuditEntry.action).where(AuditEntry.target == str(alert_id))))
    assert actions == ["alert.request", "alert.approve"]


def test_approver_cannot_approve_own_alert(app, panel):
    approver = client_for(app, "approver")
    alert_id = _created_id(post(approver, "/alerts/new", _sms_form()))
    assert _alert(panel, alert_id).state == "awaiting_approval"
    post(approver, f"/alerts/{alert_id}/approve")
    assert _alert(panel, alert_id).state == "awaiting_approval"
    admin = client_for(app, "admin")  # someone else
    post(admin, f"/alerts/{alert_id}/approve")
    assert _alert(panel, alert_id).state == "active"


def test_send_now_needs_an_approver_and_a_reason(app, panel):
    operator = client_for(app, "operator")
    response = post(operator, "/alerts/new", _sms_form(action="send_now", reason="urgent"))
    assert response.status_code == 400
    approver = client_for(app, "approver")
    response = post(approver, "/alerts/new", _sms_form(action="send_now"))
    assert response.status_code == 400 and "reason" in response.get_data(as_text=True)
    with panel.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == 0
    alert_id = _created_id(post(approver, "/alerts/new", _sms_form(action="send_now",
                                                                   reason="argine rotto, non c'è tempo")))
    assert _alert(panel, alert_id).state == "active" and _deliveries(panel, alert_id) == 2
    with panel.sessions() as s:
        approval = s.scalar(select(AlertApproval).where(AlertApproval.alert_id == alert_id))
        assert approval.decision == "bypassed" and approval.reason == "argine rotto, non c'è tempo"


def test_without_two_person_rule_an_operator_sends_at_once(tmp_path):
    app = make_app(tmp_path, "[web]\ntwo_person_rule = false\n")
    panel = app.extensions["allerta"]
    alert_id = _created_id(post(client_for(app, "operator"), "/alerts/new", _sms_form()))
    assert _alert(panel, alert_id).state == "active" and _deliveries(panel, alert_id) == 2


def test_draft_then_submit_then_reject(app, panel):
    operator = client_for(app, "operator")
    alert_id = _created_id(post(operator, "/alerts/new", _sms_form(action="draft")))
    assert _alert(panel, alert_id).state == "draft"
    post(operator, f"/alerts/{alert_id}/submit")
    assert _alert(panel, alert_id).state == "awaiting_approval"
    post(client_for(app, "approver"), f"/alerts/{alert_id}/reject", {"reason": "testo sbagliato"})
    assert _alert(panel, alert_id).state == "rejected" and _deliveries(panel, alert_id) == 0


def test_cancel_stops_pending_deliveries(app, panel):
    approver = client_for(app, "approver")
    alert_id = _created_id(post(approver, "/alerts/new", _sms_form(action="send_now", reason="esercizio")))
    post(approver, f"/alerts/{alert_id}/cancel", {"reason": "fine esercizio"})
    with panel.sessions() as s:
        states = set(s.scalars(select(Delivery.state).where(Delivery.alert_id == alert_id)))
    assert states == {"cancelled"} and _alert(panel, alert_id).state == "cancelled"


def test_compose_errors_are_shown_and_nothing_is_stored(app, panel):
    operator = client_for(app, "operator")
    # The engine's errors are shown in the panel's language (Italian by default): web/errors.py.
    for form, expected in ((_sms_form(text=""), "vuoto"), (_sms_form(zones="Atlantide"), "Atlantide"),
                           (_sms_form(text="a" * 1000), "segmenti SMS"), (_sms_form(max_attempts="many"), "max_attempts"),
                           ({"text": "x", "channels": "sms", "action": "submit"}, "nessun destinatario")):
        response = post(operator, "/alerts/new", form)
        assert response.status_code == 400, form
        assert expected in response.get_data(as_text=True), form
    with panel.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == 0


def test_hostile_text_is_escaped(app, panel):
    approver = client_for(app, "approver")
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    alert_id = _created_id(post(approver, "/alerts/new", _sms_form(text=hostile, action="send_now", reason="r")))
    for path in (f"/alerts/{alert_id}", "/alerts/", "/"):
        html = approver.get(path).get_data(as_text=True)
        assert "<script>alert" not in html and "<img src=x" not in html, path
        assert "&lt;script&gt;alert(" in html, path


def _send_to_fregene(app) -> int:
    approver = client_for(app, "approver")
    return _created_id(post(approver, "/alerts/new", _sms_form(action="send_now", reason="r")))


def test_alert_page_progress_filters_and_attempts(app, panel):
    alert_id = _send_to_fregene(app)
    with panel.sessions.begin() as s:
        first = s.scalar(select(Delivery).where(Delivery.alert_id == alert_id).order_by(Delivery.id))
        first.state = "delivered"
        first_id = first.id
    viewer = client_for(app, "viewer")
    progress = viewer.get(f"/alerts/{alert_id}/progress.json").get_json()["progress"]
    assert progress["total"] == 2 and progress["reached"] == 1 and progress["queued"] == 1
    assert progress["percent"] == 50.0
    html = viewer.get(f"/alerts/{alert_id}?state=reached").get_data(as_text=True)
    assert "1 destinatari" in html
    html = viewer.get(f"/alerts/{alert_id}?zone=Fregene&channel=sms").get_data(as_text=True)
    assert "2 destinatari" in html
    assert viewer.get(f"/alerts/{alert_id}/deliveries/{first_id}").status_code == 200
    assert viewer.get(f"/alerts/{alert_id}/deliveries/999999").status_code == 404
    assert viewer.get("/alerts/999999").status_code == 404


def test_csv_export_neutralises_formulas(app, panel):
    with panel.sessions.begin() as s:
        giulia = s.scalar(select(Contact).where(Contact.name == "Giulia Verdi"))
        giulia.name = '=HYPERLINK("http://evil","click")'
    alert_id = _send_to_fregene(app)
    response = client_for(app, "operator").get(f"/alerts/{alert_id}/export.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0][:4] == ["delivery", "number", "channel", "state"]
    assert len(rows) == 3
    names = {row[10] for row in rows[1:]}
    assert "'=HYPERLINK(\"http://evil\",\"click\")" in names
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    assert {row[1] for row in rows[1:]} == {"'+393470000003", "'+393207654321"}


def test_printable_list_of_vulnerable_people_not_reached(app, panel):
    with panel.sessions.begin() as s:
        s.scalar(select(Contact).where(Contact.name == "Giulia Verdi")).address = "Via <b>del Porto</b> 3"
    alert_id = _send_to_fregene(app)
    operator = client_for(app, "operator")
    html = operator.get(f"/alerts/{alert_id}/vulnerable").get_data(as_text=True)
    assert "Giulia Verdi" in html and "Via &lt;b&gt;del Porto&lt;/b&gt; 3" in html
    assert "Ion Popescu" not in html  # not vulnerable
    with panel.sessions.begin() as s:
        for d in s.scalars(select(Delivery).where(Delivery.alert_id == alert_id)):
            d.state = "delivered"
    html = operator.get(f"/alerts/{alert_id}/vulnerable").get_data(as_text=True)
    assert "Giulia Verdi" not in html


def test_a_person_reached_on_one_number_is_not_on_the_printable_list(app, panel):
    with panel.sessions.begin() as s:
        giulia = s.scalar(select(Contact).where(Contact.name == "Giulia Verdi"))
        giulia.numbers.append(PhoneNumberRow(e164="+393470000099", kind="mobile"))  # a second mobile
    alert_id = _send_to_fregene(app)
    operator = client_for(app, "operator")
    html = operator.get(f"/alerts/{alert_id}/vulnerable").get_data(as_text=True)
    assert "Giulia Verdi" in html and "+393470000003" in html and "+393470000099" in html
    with panel.sessions.begin() as s:
        s.execute(update(Delivery).where(Delivery.alert_id == alert_id, Delivery.e164 == "+393470000099")
                  .values(state="delivered"))
    # Her other mobile is still queued, but she got the message: nobody needs to knock on her door.
    html = operator.get(f"/alerts/{alert_id}/vulnerable").get_data(as_text=True)
    assert "Giulia Verdi" not in html and "+393470000003" not in html


def _voice_form(**overrides) -> dict:
    return _sms_form(channels="voice", action="send_now", reason="r", **overrides)


@pytest.mark.integration
def test_bad_uploads_are_refused_clearly(app, panel):
    approver = client_for(app, "approver")
    cases = [
        ({"audio": (io.BytesIO(b"MZ\x90\x00"), "virus.exe")}, "non supportato"),
        ({"audio": (io.BytesIO(b""), "vuoto.wav")}, "vuoto"),
        ({"audio": (io.BytesIO(b"this is not audio at all" * 10), "finto.wav")}, "non si può usare"),
        ({}, "Scegli una registrazione"),
    ]
    for files, expected in cases:
        data = _voice_form(voice_source="upload", **files)
        response = post(approver, "/alerts/new", data, content_type="multipart/form-data")
        assert response.status_code == 400, expected
        assert expected in response.get_data(as_text=True), expected
    with panel.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == 0


def test_upload_too_large(tmp_path):
    app = make_app(tmp_path, "[web]\nmax_upload_mb = 1\n")
    approver = client_for(app, "approver")
    data = _voice_form(voice_source="upload", audio=(io.BytesIO(b"\0" * (2 * 1024 * 1024)), "grande.wav"))
    response = post(approver, "/alerts/new", data, content_type="multipart/form-data")
    assert response.status_code == 413
    assert "troppo grande" in response.get_data(as_text=True)


@pytest.mark.integration
@needs_audio_tools
def test_voice_alert_from_an_uploaded_recording(app, panel, tmp_path):
    wav = tmp_path / "messaggio.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", str(wav), "synth", "1.5", "sine", "440"], check=True)
    approver = client_for(app, "approver")
    data = _voice_form(voice_source="upload", audio=(io.BytesIO(wav.read_bytes()), "messaggio.wav"))
    alert_id = _created_id(post(approver, "/alerts/new", data, content_type="multipart/form-data"))
    alert = _alert(panel, alert_id)
    assert alert.audio_source == "recording" and 1.4 < alert.audio_seconds < 1.6
    audio = approver.get(f"/alerts/{alert_id}/audio.wav")
    assert audio.status_code == 200 and audio.data[:4] == b"RIFF"


@pytest.mark.integration
@needs_audio_tools
def test_voice_alert_with_synthesised_speech(app, panel):
    approver = client_for(app, "approver")
    alert_id = _created_id(post(approver, "/alerts/new", _voice_form(voice_source="tts", voice_language="it")))
    alert = _alert(panel, alert_id)
    assert alert.audio_source == "tts" and alert.audio_seconds > 1
    assert _deliveries(panel, alert_id) == 2  # Fregene: two mobiles, both callable


def test_templates_use_real_accented_letters_and_stay_gsm7():
    from gateway.core.sms_text import plan_sms
    from web.alerts import TEMPLATES
    # è and à are in the GSM-7 alphabet: "e'" for è only looks like a typewriter, it saves nothing.
    assert "è tornata alla normalità" in TEMPLATES["all_clear"] and "corretto è:" in TEMPLATES["correction"]
    for name, text in TEMPLATES.items():
        assert not re.search(r"[aeiou]'([\s.,:;]|$)", text), name  # an accent typed as an apostrophe
        assert plan_sms(text, transliterate_typographic=False).encoding == "GSM-7", name


def test_cli_status_and_the_alert_page_show_the_same_eta(app, panel, capsys):
    """`allerta alert status` and the panel's alert page read one ETA (gateway.core.capacity)."""
    alert_id = _send_to_fregene(app)
    with panel.sessions.begin() as s:
        first = s.scalar(select(Delivery).where(Delivery.alert_id == alert_id).order_by(Delivery.id))
        first.state = "delivered"
        # Half a segment a minute, and a modem whose row is too old to count.
        s.add_all([Line(channel="sms", label="tim-1", state="up", rate_per_minute=0.5, updated_at=utcnow()),
                   Line(channel="sms", label="voda-1", state="up", rate_per_minute=30.0,
                        updated_at=utcnow() - dt.timedelta(minutes=10))])
    viewer = client_for(app, "viewer")

    def cli_status() -> tuple[dict, str]:
        config = ["--config", panel.config.path, "alert", "status", str(alert_id)]
        assert cli_main([*config, "--json"]) == 0
        status = json.loads(capsys.readouterr().out)
        assert cli_main(config) == 0
        return status, capsys.readouterr().out

    status, text = cli_status()
    page = viewer.get(f"/alerts/{alert_id}/progress.json").get_json()["progress"]["channels"]
    assert status["channels"]["sms"]["eta_seconds"] == page["sms"]["eta_seconds"] == 120   # 1 SMS at 0.5 a minute
    assert "ETA 120 s" in text and 'data-field="eta">2 min<' in viewer.get(f"/alerts/{alert_id}").get_data(as_text=True)

    # No line left that counts: neither can estimate.
    with panel.sessions.begin() as s:
        s.execute(update(Line).where(Line.label == "tim-1").values(state="down"))
    status, text = cli_status()
    page = viewer.get(f"/alerts/{alert_id}/progress.json").get_json()["progress"]["channels"]
    assert status["channels"]["sms"]["eta_seconds"] is None and page["sms"]["eta_seconds"] is None
    assert "ETA unknown: no line up" in text and page["sms"]["eta"] == "nessuna linea attiva: stima impossibile"

    # Nothing left to send: both say done.
    with panel.sessions.begin() as s:
        s.execute(update(Delivery).where(Delivery.alert_id == alert_id).values(state="delivered"))
    status, text = cli_status()
    page = viewer.get(f"/alerts/{alert_id}/progress.json").get_json()["progress"]["channels"]
    assert status["eta_seconds"] == status["channels"]["sms"]["eta_seconds"] == page["sms"]["eta_seconds"] == 0
    assert "ETA done" in text and page["sms"]["eta"] == "-"


def test_a_vulnerable_person_who_wrote_stop_is_on_the_door_knock_list_of_every_alert_for_their_zone(app, panel):
    with panel.sessions.begin() as s:
        giulia = s.scalar(select(Contact).where(Contact.name == "Giulia Verdi"))
        for number in giulia.numbers:
            number.opted_out, number.opted_out_via = True, "sms"
    alert_id = _send_to_fregene(app)
    with panel.sessions() as s:
        assert "+393470000003" not in set(s.scalars(select(Delivery.e164).where(Delivery.alert_id == alert_id)))
    html = client_for(app, "operator").get(f"/alerts/{alert_id}/vulnerable").get_data(as_text=True)
    assert "Giulia Verdi" in html and "ha scritto STOP" in html
    with panel.sessions.begin() as s:
        s.execute(update(Delivery).where(Delivery.alert_id == alert_id).values(state="delivered"))
    # Everyone the alert went to got it; she could not be sent it: still a door to knock on.
    html = client_for(app, "operator").get(f"/alerts/{alert_id}/vulnerable").get_data(as_text=True)
    assert "Giulia Verdi" in html
