"""The panel in a real browser: Playwright for Python driving Debian's Chromium.

Everything is real and local: the modem simulator on pseudo-terminals, the
PBX simulator over AMI/TCP, the engine (``allerta run``) and the panel
(``allerta web``, waitress) on 127.0.0.1. An operator signs in, imports a CSV,
drafts an SMS + voice alert for a zone and asks for approval; an approver
approves it and watches the live progress reach 100 %; the CSV export is
downloaded; the panel is switched to English. Every request the pages made
is recorded and must go to the panel's own origin. Screenshots of the main
pages are saved under ``test-artifacts/screenshots/``.

No browser is ever downloaded: ``apt-get install -y chromium`` and
``pip install playwright`` (the test extra) are what these tests need, and
they FAIL (never skip) when either is missing.
"""
from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from asterisk.pbx_simulator.harness import PbxSimulatorProcess
from gateway.core.alerts import AlertRequest, Target
from gateway.shell.bench import child_env
from gateway.core.services import build_services
from gateway.core.config import load_config
from gateway.shell.demo import wait_for_http
from web.serve import free_port
from gateway.core.models import Alert, Contact, Delivery, Line
from modem.simulator.harness import SimulatorProcess
from gateway.core.audit import audit_log_for
from web.users import add_user

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
DOWNLOADS = ROOT / "test-artifacts" / "downloads"
CHROMIUM = os.environ.get("ALLERTA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SECRET = "browser-test-secret"
PASSWORD = "correct horse battery"
OPERATOR, APPROVER = "otto", "anna"
ZONE = "Isola Sacra"
ALERT_TEXT = "Prova di allerta: piena del Tevere, salire ai piani alti."
POPULATION = {"seed": 11, "answer": 0.9, "busy": 0.1, "no_answer": 0, "invalid_number": 0, "voicemail": 0,
              "congestion": 0, "press_1": 1.0, "ring_seconds": [1, 3], "listen_seconds": [3, 8]}


def _playwright():
    """sync_playwright, or a failure that says how to install what is missing (never a skip)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright for Python is missing: pip install playwright (or pip install -e '.[test]'). "
                    "No browser download is needed: the tests drive Debian's Chromium.", pytrace=False)
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium fonts-liberation (Debian's Chromium; "
                    "the tests never download a browser).", pytrace=False)
    return sync_playwright


def residents_csv() -> bytes:
    """What an office exports: 24 people in the zone (mobiles, landlines, a household), 6 elsewhere, 1 bad row."""
    rows = ["nome;cognome;cellulare;telefono;zona;lingua;fragile"]
    for i in range(24):
        mobile = f"333 41{i:05d}" if i % 4 != 3 else ""
        landline = f"06 6581{i:04d}" if i % 4 in (2, 3) else ""
        rows.append(f"Persona;Isola {i};{mobile};{landline};{ZONE};{'ro' if i == 5 else 'it'};"
                    f"{'sì' if i % 6 == 0 else 'no'}")
    for i in range(6):
        rows.append(f"Persona;Fregene {i};347 52{i:05d};;Fregene;it;no")
    rows.append("Numero;Sbagliato;12;;Fregene;it;no")
    return ("\n".join(rows) + "\n").encode("utf-8")


def write_config(directory: Path, pbx_port: int, links: list[str]) -> Path:
    modems = "".join(f'\n[[modems]]\nlabel = "sim-{i + 1}"\nport = "{link}"\nper_minute = 6000\n'
                     for i, link in enumerate(links))
    path = directory / "allerta.toml"
    path.write_text(f"""[general]
comune = "Comune di Fiumicino"
data_dir = "{directory / 'data'}"
[engine]
poll_interval = 0.1
health_interval = 2
[retry]
initial_delay = 0.2
max_delay = 2
send_timeout = 10
[asterisk]
enabled = true
port = {pbx_port}
secret = "{SECRET}"
[[trunks]]
name = "pstn"
dial = "PJSIP/{{number}}@pstn"
max_channels = 4
calls_per_second = 20
caller_id = "+390665210000"
{modems}""", encoding="utf-8")
    return path


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Simulators, engine and panel on 127.0.0.1; yields what the test needs to reach them."""
    directory = tmp_path_factory.mktemp("browser")
    with SimulatorProcess(count=2, link_dir=directory / "links", latency_median=0.05, latency_sigma=0.2,
                          report_delay=0.2, log=directory / "modems.jsonl") as modems, \
            PbxSimulatorProcess(directory / "pbx", trunks={"pstn": 4}, population=POPULATION, time_scale=0.05,
                                secret=SECRET) as pbx:
        config_path = write_config(directory, pbx.port, [m["link"] for m in modems.modems])
        services = build_services(load_config(config_path))
        audit = audit_log_for(services.config, services.sessions)
        add_user(services.sessions, audit, OPERATOR, PASSWORD, "operator", actor="test")
        add_user(services.sessions, audit, APPROVER, PASSWORD, "approver", actor="test")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        engine_log, web_log = open(directory / "engine.log", "w"), open(directory / "panel.log", "w")
        cli = [sys.executable, "-m", "gateway.shell.cli", "--config", str(config_path)]
        engine = subprocess.Popen(cli + ["run"], stdout=engine_log, stderr=subprocess.STDOUT, env=child_env())
        web = subprocess.Popen(cli + ["web", "--host", "127.0.0.1", "--port", str(port), "--https-port", "0"],
                               stdout=web_log, stderr=subprocess.STDOUT, env=child_env())
        try:
            assert wait_for_http(base + "/login", 60, web), (directory / "panel.log").read_text()[-3000:]
            yield {"base": base, "port": port, "services": services, "directory": directory, "pbx": pbx,
                   "modems": modems, "engine": engine, "web": web}
        finally:
            _stop(web)
            _stop(engine)
            engine_log.close()
            web_log.close()
            services.engine.dispose()


class Recorder:
    """Every request, console error and page error of a browser context."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.errors: list[str] = []

    def attach(self, context) -> None:  # noqa: ANN001
        context.on("request", lambda request: self.requests.append(request.url))
        context.on("response", lambda response: response.status >= 400 and self.errors.append(
            f"HTTP {response.status} for {response.url}"))
        context.on("page", self._page)

    def _page(self, page) -> None:  # noqa: ANN001
        page.on("console", lambda message: message.type == "error" and self.errors.append(
            f"{message.text} ({message.location.get('url')})"))
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))


def _screenshot(page, name: str) -> None:  # noqa: ANN001
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _login(context, base: str, username: str):  # noqa: ANN001, ANN202
    page = context.new_page()
    page.goto(base + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    assert urlsplit(page.url).path == "/", page.url
    return page


def _lines_reported(services) -> int:
    with services.sessions() as s:
        return s.scalar(select(func.count()).select_from(Line))


def test_operator_drafts_approver_approves_progress_reaches_100_export_english_all_local(stack, browser):
    base, services = stack["base"], stack["services"]
    recorder = Recorder()
    operator_context = browser.new_context(locale="it-IT", viewport={"width": 1280, "height": 900},
                                           accept_downloads=True)
    approver_context = browser.new_context(locale="it-IT", viewport={"width": 1280, "height": 900},
                                           accept_downloads=True)
    for context in (operator_context, approver_context):
        context.set_default_timeout(20_000)
        recorder.attach(context)

    # --- the operator signs in: the dashboard, in Italian by default, with the lines the engine reported.
    page = _login(operator_context, base, OPERATOR)
    assert page.locator("html").get_attribute("lang") == "it"
    assert page.locator("header nav").get_by_text("Cruscotto").count() == 1
    # The dashboard updates the rows of the lines it was loaded with; lines the engine reports
    # afterwards (a slow start on a busy machine) appear at the next load.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _lines_reported(services) < 3:
        time.sleep(0.2)
    page.reload()
    page.wait_for_function("() => document.querySelectorAll('tr[data-line]').length >= 3", timeout=30_000)
    _screenshot(page, "dashboard")

    # --- imports a CSV: a preview with the rejected row, then the import.
    page.goto(base + "/contacts/import")
    csv_path = stack["directory"] / "anagrafe.csv"
    csv_path.write_bytes(residents_csv())
    page.set_input_files("input[name=file]", str(csv_path))
    with page.expect_navigation():
        page.click("form[action$='/contacts/import'] button[type=submit]")
    assert "anagrafe.csv" in page.inner_text("main h2")
    assert page.locator("table.errors tbody tr").count() == 1          # line 32: the bad number
    assert "32" in page.inner_text("table.errors tbody tr")
    with page.expect_navigation():
        page.click("form[action$='/contacts/import/confirm'] button[type=submit]")
    assert "30" in page.inner_text("p.flash.success"), page.inner_text("main")
    with services.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 30
    page.goto(base + "/contacts/?zone=" + ZONE.replace(" ", "+"))
    assert page.locator("main table.grid tbody tr").count() == 24
    _screenshot(page, "contacts")

    # --- drafts an SMS + voice alert for the zone; the live counter and the recipients preview answer.
    page.goto(base + "/alerts/new")
    fix = page.locator("#fix-typography")
    page.fill("#text", "L’acqua sale – salire ai piani alti")     # typographic apostrophe and dash
    page.wait_for_function("() => document.getElementById('counter').textContent.includes('UCS-2')")
    assert fix.is_visible()                                             # the one-click fix is offered
    fix.click()
    page.wait_for_function("() => document.getElementById('counter').textContent.includes('GSM-7')")
    assert page.input_value("#text") == "L'acqua sale - salire ai piani alti"
    assert fix.is_hidden()
    page.fill("#text", ALERT_TEXT)
    page.wait_for_function("() => document.getElementById('counter').textContent.includes('GSM-7')")
    assert fix.is_hidden()
    # A version in another language has the same live counter and fix as the main text.
    page.click("fieldset.translations summary:has-text('(en)')")
    page.fill("#text_en", "Flood “alert”")
    page.wait_for_function("() => document.querySelector('[data-counter-for=text_en]').textContent.includes('UCS-2')")
    page.click("[data-fix-for=text_en]")
    page.wait_for_function("() => document.querySelector('[data-counter-for=text_en]').textContent.includes('GSM-7')")
    assert page.input_value("#text_en") == 'Flood "alert"'
    page.fill("#text_en", "")
    page.wait_for_function("() => document.querySelector('[data-counter-for=text_en]').textContent === ''")
    page.check("input[name=drill]")
    page.check(f"input[name=zones][value='{ZONE}']")
    page.check("input[name=channels][value=both]")
    page.fill("input[name=max_attempts]", "3")
    page.fill("input[name=voice_interval]", "1")
    page.fill("input[name=voice_cap]", "4")
    # Recipients and ETA are counted again on their own as targets and channels change, next to the send
    # buttons: after choosing the zone and both channels the counts for both appear, nothing pressed.
    page.wait_for_function("() => document.querySelectorAll('#preview-result li[data-channel]').length === 2")
    preview = page.inner_text("#preview-result")
    assert "SMS: 18 destinatari ·" in preview and "Voce: 30 destinatari ·" in preview, preview  # 30 with landlines
    _screenshot(page, "compose")
    # The counts are asked again after every change (leaving a field is one): leave the last field and let
    # the last answer land before clicking, so the click does not race a redraw of the page.
    page.locator("input[name=voice_cap]").blur()
    page.wait_for_timeout(600)   # past the page's 400 ms debounce; not a timing assertion
    page.wait_for_load_state("networkidle")
    with page.expect_navigation(timeout=60_000):                       # renders the speech with espeak-ng
        page.click("button[name=action][value=submit]")
    assert "/alerts/" in page.url
    alert_id = int(urlsplit(page.url).path.rstrip("/").rsplit("/", 1)[1])
    assert page.inner_text("h1 [data-field=state]") == "In attesa di approvazione"
    assert page.locator("form[action$='/approve']").count() == 0       # an operator cannot approve
    with services.sessions() as s:
        assert s.get(Alert, alert_id).state == "awaiting_approval"
        assert s.scalar(select(func.count()).select_from(Delivery).where(Delivery.alert_id == alert_id)) == 0

    # --- the approver approves it and watches the live progress reach 100 % (no reload).
    approver = _login(approver_context, base, APPROVER)
    approver.goto(f"{base}/alerts/{alert_id}")
    assert approver.locator("p audio").count() == 1                     # the voice message can be heard
    # and every other language among the recipients has its own version (gateway/core/voice_messages.py)
    assert approver.locator("ul.versions li audio").count() >= 1
    with approver.expect_navigation():
        approver.click(f"form[action$='/alerts/{alert_id}/approve'] button[type=submit]")
    assert approver.inner_text("h1 [data-field=state]") == "Attiva"
    assert float(approver.inner_text("[data-poll-alert] p [data-field=percent]")) < 100
    approver.evaluate("() => { window.__loadedOnce = true; }")
    approver.wait_for_function("() => document.getElementById('alert-progress').value >= 100", timeout=90_000)
    assert approver.evaluate("() => window.__loadedOnce === true")            # updated live, not by reloading
    assert float(approver.inner_text("[data-poll-alert] p [data-field=percent]")) == 100
    for channel in ("sms", "voice"):
        row = approver.locator(f"tr[data-channel={channel}]")
        assert row.locator("[data-field=queued]").inner_text() == "0"
        assert row.locator("[data-field=in_progress]").inner_text() == "0"
    approver.reload()
    _screenshot(approver, "alert")
    with services.sessions() as s:
        states = dict(s.execute(select(Delivery.channel, func.count()).where(Delivery.alert_id == alert_id)
                                .group_by(Delivery.channel)).all())
    assert states == {"sms": 18, "voice": 30}
    assert len({c["number"] for c in stack["pbx"].calls()}) == 30

    # --- downloads the CSV export: every delivery of the alert, one row each.
    with approver.expect_download() as download_info:
        approver.click(f"a[href$='/alerts/{alert_id}/export.csv']")
    download = download_info.value
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    saved = DOWNLOADS / download.suggested_filename
    download.save_as(str(saved))
    rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))
    assert len(rows) == 48 and {r["channel"] for r in rows} == {"sms", "voice"}
    assert {r["zone"] for r in rows} == {ZONE}
    assert all(r["state"] in ("sent", "delivered", "confirmed", "answered", "voicemail", "failed") for r in rows)

    # --- switches to English: stored on the user, every page in English from now on.
    with approver.expect_navigation():
        approver.click("button[name=lang][value=en]")
    assert approver.locator("html").get_attribute("lang") == "en"
    assert approver.locator("header nav").get_by_text("Dashboard").count() == 1
    assert approver.get_by_text("Download CSV").count() == 1
    approver.goto(base + "/")
    assert approver.locator("h1").first.inner_text() == "Dashboard"
    # An alert drafted after the page loaded appears without a reload (the rows are rebuilt from the
    # snapshot); awaiting approval, it sends nothing.
    late_id, _ = services.alerts.create_pending(AlertRequest(text="<b>Late</b> alert", target=Target(zones=(ZONE,))))
    approver.wait_for_selector(f"#active-alerts tr[data-alert='{late_id}']", timeout=15_000)
    late_row = approver.inner_text(f"#active-alerts tr[data-alert='{late_id}']")
    assert "<b>Late</b> alert" in late_row and "Awaiting approval" in late_row, late_row
    _screenshot(approver, "dashboard-en")

    operator_context.close()
    approver_context.close()

    # --- nothing but the panel's own origin was ever asked for, and no script error or CSP violation.
    origin = f"http://127.0.0.1:{stack['port']}"
    foreign = [url for url in recorder.requests
               if not (url.startswith(origin + "/") or url.split(":", 1)[0] in ("data", "blob", "about"))]
    assert recorder.requests and not foreign, foreign
    assert not recorder.errors, recorder.errors
    for name in ("dashboard", "contacts", "compose", "alert"):
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 5_000
