"""The after-action report in the panel: the button, who may download it, its language, its audit entry,
and a PDF built offline (web/report_pdf.py)."""
from __future__ import annotations

import json

import pytest
from flask_babel import force_locale
from sqlalchemy import select
from weasyprint.urls import FatalURLFetchingError

from gateway.core import after_action
from gateway.core.alerts import AlertRequest, Target
from gateway.core.db import utcnow
from gateway.core.models_panel import AuditEntry
from tests.report_support import APPROVER, make_realistic_alert
from tests.web_support import client_for, post
from web import alert_flow
from web.pdf_layout import STATIC_DIR, _LocalFetcher, html_to_pdf
from web.report_pdf import render_report, rendering_app


def _html(panel, alert_id: int, language: str, *, with_names: bool = True) -> str:
    with rendering_app().app_context(), panel.sessions() as s:
        facts = after_action.gather(s, alert_id, now=utcnow(), stale_seconds=180)
        with force_locale(language):
            return render_report(s, facts, panel.config, actor="vera", language=language, with_names=with_names)


def test_the_alert_page_offers_the_report_to_a_viewer_who_gets_a_pdf(app, panel):
    alert_id = make_realistic_alert(panel)["alert_id"]
    viewer = client_for(app, "viewer")
    assert f'href="/alerts/{alert_id}/report.pdf"' in viewer.get(f"/alerts/{alert_id}").get_data(as_text=True)
    response = viewer.get(f"/alerts/{alert_id}/report.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF-")
    assert f'filename="allerta-{alert_id}-report.pdf"' in response.headers["Content-Disposition"]
    # Made by whom, in which language, and whether names were in it: on the audit log.
    with panel.sessions() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "alert.report")).one()
    assert (entry.actor, entry.target, json.loads(entry.details)) == ("vera", str(alert_id),
                                                                      {"language": "it", "names": False})


def test_the_report_needs_a_signed_in_user_and_an_existing_alert(app, panel):
    alert_id = make_realistic_alert(panel)["alert_id"]
    anonymous = app.test_client().get(f"/alerts/{alert_id}/report.pdf")
    assert anonymous.status_code == 302 and "/login" in anonymous.location
    assert client_for(app, "viewer").get("/alerts/999/report.pdf").status_code == 404
    with panel.sessions() as s:
        assert s.scalar(select(AuditEntry.id).where(AuditEntry.action == "alert.report")) is None


def test_the_report_is_worded_in_italian_and_in_english(panel):
    alert_id = make_realistic_alert(panel)["alert_id"]
    italian = _html(panel, alert_id, "it")
    for words in ("Rapporto finale", "Cronologia", "Approvata e inviata", "Persone fragili non raggiunte",
                  "Richieste di aiuto", "Linee guaste", "Annullata", "Cessato allarme"):
        assert words in italian, words
    english = _html(panel, alert_id, "en")
    for words in ("After-action report", "Timeline", "Approved and sent", "Vulnerable people not reached",
                  "Help requests", "Lines that failed", "All clear"):
        assert words in english, words
    assert "Rapporto finale" not in english and "After-action report" not in italian


def test_the_door_knock_names_are_for_operators_only(panel):
    alert_id = make_realistic_alert(panel)["alert_id"]
    with_names = _html(panel, alert_id, "en")
    without = _html(panel, alert_id, "en", with_names=False)
    door_knock = lambda html: html.split('class="door-knock"')[1].split("</section>")[0]  # noqa: E731
    assert "Giulia Verdi" in door_knock(with_names) and "Anna Rossi" in door_knock(with_names)
    assert "Giulia Verdi" not in door_knock(without) and "Anna Rossi" not in door_knock(without)
    assert "operators' copy" in door_knock(without)


def test_an_operator_downloads_the_copy_with_names(app, panel):
    alert_id = make_realistic_alert(panel)["alert_id"]
    assert client_for(app, "operator").get(f"/alerts/{alert_id}/report.pdf").status_code == 200
    with panel.sessions() as s:
        details = json.loads(s.scalar(select(AuditEntry.details).where(AuditEntry.action == "alert.report")))
    assert details["names"] is True


def test_the_pdf_fetches_nothing_from_outside(tmp_path):
    fetcher = _LocalFetcher()
    outside = tmp_path / "secret.txt"   # a readable file outside the static folder: refused for where it is
    outside.write_text("not for the report")
    for url in ("http://127.0.0.1:9/logo.png", "https://example.org/font.woff", outside.as_uri(),
                "ftp://127.0.0.1/x", f"file://{STATIC_DIR}/../app.py", f"file://{STATIC_DIR}/%2E%2E/app.py"):
        with pytest.raises(FatalURLFetchingError):
            fetcher.fetch(url)
    assert fetcher.fetch("data:text/plain,ciao").read() == b"ciao"
    assert fetcher.fetch((STATIC_DIR / "report.css").as_uri()).read().startswith(b"/*")
    # A document naming an outside image fails instead of fetching it.
    with pytest.raises(FatalURLFetchingError):
        html_to_pdf('<p>x</p><img src="http://127.0.0.1:9/logo.png">')
    assert html_to_pdf('<p>ciao</p><img src="data:image/svg+xml,%3Csvg xmlns=%22http://www.w3.org/2000/svg%22/%3E">'
                       ).startswith(b"%PDF-")


def test_the_approvers_name_and_the_audit_head_are_in_the_report(panel):
    alert_id = make_realistic_alert(panel)["alert_id"]
    html = _html(panel, alert_id, "it")
    with panel.sessions() as s:
        last = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert f"{last.id} {last.hash[:16]}" in html and last.hash in html
    approval = html.split('class="approval"')[1].split("</section>")[0]
    assert APPROVER in approval


def test_a_user_reading_the_panel_in_english_gets_the_report_in_english(app, panel):
    alert_id = make_realistic_alert(panel)["alert_id"]
    viewer = client_for(app, "viewer")
    post(viewer, "/language", {"lang": "en", "next": "/"})
    assert viewer.get(f"/alerts/{alert_id}/report.pdf").status_code == 200
    with panel.sessions() as s:
        details = json.loads(s.scalar(select(AuditEntry.details).where(AuditEntry.action == "alert.report")))
    assert details == {"language": "en", "names": False}


def test_a_draft_and_an_alert_sent_alone_have_their_reports_too(panel):
    draft = alert_flow.create_alert(panel, AlertRequest(text="Bozza", target=Target(zones=("Fregene",))),
                                    actor="otto", role="operator", mode="draft").alert_id
    html = _html(panel, draft, "en")
    assert "Nothing queued: the alert has not been sent." in html and "Saved as a draft" in html
    alone = alert_flow.create_alert(panel, AlertRequest(text="Subito", target=Target(zones=("Fregene",))),
                                    actor="anna", role="approver", mode="send_now", reason="argine rotto").alert_id
    approval = _html(panel, alone, "en").split('class="approval"')[1].split("</section>")[0]
    assert "Sent without approval" in approval and "argine rotto" in approval


def test_too_many_people_to_list_are_counted_and_sent_to_the_printable_list(panel, monkeypatch):
    alert_id = make_realistic_alert(panel)["alert_id"]
    monkeypatch.setattr(after_action, "DOOR_KNOCK_PRINTED", 1)
    door_knock = _html(panel, alert_id, "en").split('class="door-knock"')[1].split("</section>")[0]
    assert "Too many people to list here (2)" in door_knock and "Giulia Verdi" not in door_knock
    assert "Fregene" in door_knock and "Isola Sacra" in door_knock
