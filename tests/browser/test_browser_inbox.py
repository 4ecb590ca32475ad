"""Citizens' answers in a real browser: a help request appears on the dashboard without a reload, is marked
handled through the row the page's script built, and a poll's votes change live on the alert page.

The browser is tests/browser/conftest.py's. Only the panel runs (``allerta web``, waitress on 127.0.0.1): the rows the citizens' service would write
are written straight into the database, as it would, while the page is open.
"""
from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import select

from gateway.core.alerts import AlertRequest, Target
from gateway.core.audit import audit_log_for
from gateway.core.config import load_config
from gateway.core.contacts_import import import_contacts
from gateway.core.db import utcnow
from gateway.core.models import Contact, InboundSms
from gateway.core.models_citizens import HelpRequest, PollVote
from gateway.core.models_panel import AuditEntry
from gateway.core.polls import Poll
from gateway.core.services import build_services
from gateway.shell.bench import child_env
from gateway.shell.demo import wait_for_http
from tests.browser.test_browser_panel import PASSWORD, Recorder, _login, _screenshot, _stop
from tests.support import CONTACTS_CSV, write_config
from web.serve import free_port
from web.users import add_user

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def panel_only(tmp_path_factory):
    directory = tmp_path_factory.mktemp("browser-inbox")
    config_path = write_config(directory)
    services = build_services(load_config(config_path))
    add_user(services.sessions, audit_log_for(services.config, services.sessions), "otto", PASSWORD, "operator",
             actor="test")
    assert import_contacts(services.sessions, CONTACTS_CSV.encode("utf-8")).imported
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(directory / "panel.log", "w")
    web = subprocess.Popen([sys.executable, "-m", "gateway.shell.cli", "--config", str(config_path), "web",
                            "--host", "127.0.0.1", "--port", str(port), "--https-port", "0"],
                           stdout=log, stderr=subprocess.STDOUT, env=child_env())
    try:
        assert wait_for_http(base + "/login", 60, web), (directory / "panel.log").read_text()[-3000:]
        yield {"base": base, "services": services}
    finally:
        _stop(web)
        log.close()
        services.engine.dispose()


def test_a_help_request_raises_the_alarm_live_and_is_handled_from_the_dashboard(panel_only, browser):
    base, services = panel_only["base"], panel_only["services"]
    alert_id, _preview = services.alerts.create(AlertRequest(
        text="Allerta rossa.", target=Target(zones=("Isola Sacra",)), poll=Poll("Siete al sicuro?", ("sì", "no"))))
    recorder = Recorder()
    context = browser.new_context(locale="it-IT")
    context.set_default_timeout(20_000)
    recorder.attach(context)
    page = _login(context, base, "otto")
    assert page.locator("#help-requests.active").count() == 0
    page.evaluate("() => { window.__loadedOnce = true; }")

    with services.sessions.begin() as s:
        anna = s.scalar(select(Contact).where(Contact.name == "Anna Rossi"))
        anna.address = "Via della Scafa 12"
        message = InboundSms(line="modem-1", sender="+393331110002", text="AIUTO acqua al primo piano",
                             kind="help_request", alert_id=alert_id, contact_id=anna.id, handled=True)
        s.add(message)
        s.flush()
        s.add(HelpRequest(inbound_id=message.id, alert_id=alert_id, e164=message.sender, contact_id=anna.id,
                          text=message.text, received_at=utcnow()))

    page.wait_for_selector("#help-requests.active tr.help-open", timeout=30_000)
    assert page.evaluate("() => window.__loadedOnce === true")           # no reload: the poll brought it
    row = page.inner_text("#help-requests tr.help-open")
    for shown in ("Anna Rossi", "Via della Scafa 12", "Isola Sacra", "fragile", "AIUTO acqua al primo piano"):
        assert shown in row, row
    _screenshot(page, "help-alarm")
    page.fill("#help-requests tr.help-open input[name=note]", "Vigili del fuoco avvisati")
    with page.expect_navigation():
        page.click("#help-requests tr.help-open button[type=submit]")
    assert page.locator("#help-requests.active").count() == 0
    assert "segnata come gestita" in page.inner_text("p.flash.success")
    with services.sessions() as s:
        handled = s.scalar(select(HelpRequest))
        assert (handled.handled_by, handled.note) == ("otto", "Vigili del fuoco avvisati")
        assert s.scalar(select(AuditEntry).where(AuditEntry.action == "help.handled")).actor == "otto"

    # The alert page counts the poll's votes as they come.
    page.goto(f"{base}/alerts/{alert_id}")
    assert page.inner_text("#poll-results tr[data-option='2'] [data-field=votes]") == "0"
    with services.sessions.begin() as s:
        s.add(PollVote(alert_id=alert_id, e164="+393331110001", option=2))
    page.wait_for_function(
        "() => document.querySelector(\"#poll-results tr[data-option='2'] [data-field=votes]\").textContent === '1'",
        timeout=30_000)
    assert page.inner_text("#poll-results tr[data-option='2'] [data-field=percent]") == "100"
    assert page.inner_text("#poll-results [data-field=total_votes]") == "1"
    _screenshot(page, "alert-poll")
    page.goto(f"{base}/inbox/")
    _screenshot(page, "inbox")

    # Composing: the counter counts the poll's words as they are typed.
    page.goto(f"{base}/alerts/new")
    page.fill("#text", "x" * 150)
    page.wait_for_function("() => document.getElementById('counter').textContent.includes('1 segment')")
    page.click("fieldset.answers summary")
    page.fill("#poll_question", "Siete al sicuro?")
    page.fill("input[name=poll_options] >> nth=0", "sì")
    page.fill("input[name=poll_options] >> nth=1", "no")
    page.wait_for_function("() => document.getElementById('counter').textContent.includes('2 segment')")
    assert not recorder.errors, recorder.errors
    assert all(url.startswith(base) for url in recorder.requests)
    context.close()
