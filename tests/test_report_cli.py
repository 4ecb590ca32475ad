"""``allerta alert report ID --out FILE`` run as a command: the PDF's text (pdftotext, poppler-utils) holds the
figures the alert page shows, the approver's name and the audit head, in Italian and in English."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from gateway.core.audit import audit_log_for
from tests.engine_harness import allerta
from tests.report_support import APPROVER, OPERATOR, make_realistic_alert
from tests.web_support import client_for, make_app

pytestmark = pytest.mark.integration


def _pdf_text(path) -> str:
    if not shutil.which("pdftotext"):
        pytest.fail("pdftotext not installed: apt-get install poppler-utils")
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True,
                          timeout=60).stdout
    return re.sub(r"[ \t]+", " ", text)


@pytest.fixture
def town(tmp_path):
    """The realistic alert over the sample contacts, in a panel over tmp_path (and its allerta.toml)."""
    app = make_app(tmp_path)
    panel = app.extensions["allerta"]
    made = make_realistic_alert(panel)
    page = client_for(app, "viewer").get(f"/alerts/{made['alert_id']}/progress.json").get_json()["progress"]
    return {"app": app, "panel": panel, "config": tmp_path / "allerta.toml", "page": page, **made}


def _rows(text: str, first_cell: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.strip().startswith(first_cell)]


def test_the_pdf_in_italian_holds_the_alert_pages_figures_the_approver_and_the_audit_head(town, tmp_path):
    out = tmp_path / "rapporto.pdf"
    printed = allerta(town["config"], "alert", "report", str(town["alert_id"]), "--out", str(out)).stdout
    assert out.read_bytes().startswith(b"%PDF-") and oct(out.stat().st_mode & 0o777) == "0o600"
    head = audit_log_for(town["panel"].config, town["panel"].sessions).head()
    assert f"audit head {head.line()}" in printed   # the report's own entry is the head
    text = _pdf_text(out)

    assert "Rapporto finale" in text and f"Allerta {town['alert_id']}" in text
    page = town["page"]
    # The progress table, channel by channel, with the page's numbers in the page's order.
    for channel, name in (("sms", "SMS"), ("voice", "Voce")):
        c = page["channels"][channel]
        expected = [str(c[key]) for key in ("total", "queued", "in_progress", "sent", "reached", "failed",
                                            "cancelled")]
        assert [row[1:8] for row in _rows(text, name) if len(row) >= 9][0] == expected, channel
    assert f"{page['reached']} ({round(100 * page['reached'] / page['total'], 1)}%)" in text
    assert f"{page['percent']}%" in text
    # Who asked and who approved (the two-person rule), who cancelled and why.
    approval = text.split("Approvazione (regola delle due persone)")[1].split("Raggiungimento")[0]
    assert OPERATOR in approval and APPROVER in approval and "Approvata" in approval
    assert "piena passata" in text and "Cessato allarme" in text
    # The audit head, short and whole, and the command that checks it.
    assert f'allerta audit verify --head "{head.line()}"' in text and head.digest in text
    # The people at the door, the help requests and the line that failed.
    assert "Giulia Verdi" in text and "vigili" in text and "vodafone-2" in text


def test_the_pdf_in_english_and_an_unknown_alert(town, tmp_path):
    out = tmp_path / "report.pdf"
    allerta(town["config"], "alert", "report", str(town["alert_id"]), "--out", str(out), "--language", "en")
    text = _pdf_text(out)
    for words in ("After-action report", "Timeline", "Approved and sent", "Vulnerable people not reached",
                  "Help requests", "Lines that failed", APPROVER):
        assert words in text, words
    sms = town["page"]["channels"]["sms"]
    assert [row[1:3] for row in _rows(text, "SMS") if len(row) >= 9][0] == [str(sms["total"]), str(sms["queued"])]
    missing = allerta(town["config"], "alert", "report", "999", "--out", str(tmp_path / "none.pdf"), check=False)
    assert missing.returncode == 2 and "no alert with id 999" in missing.stderr
    assert not (tmp_path / "none.pdf").exists()


def test_the_panels_download_is_the_same_report(town, tmp_path):
    """A viewer's copy: the same figures, the door-knock list counted by zone without names."""
    response = client_for(town["app"], "viewer").get(f"/alerts/{town['alert_id']}/report.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    path = tmp_path / "panel.pdf"
    path.write_bytes(response.data)
    text = _pdf_text(path)
    sms = town["page"]["channels"]["sms"]
    assert [row[1:8] for row in _rows(text, "SMS") if len(row) >= 9][0] == [
        str(sms[key]) for key in ("total", "queued", "in_progress", "sent", "reached", "failed", "cancelled")]
    door_knock = text.split("Persone fragili non raggiunte\n")[-1].split("Richieste di aiuto")[0]
    assert "copia di questo rapporto per gli operatori" in door_knock and "Giulia Verdi" not in door_knock
