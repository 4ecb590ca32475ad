"""The alert page's pictures in a real browser (Debian's Chromium through Playwright): they appear and
update while the alert runs, with no CSP violation and no request to another origin.

The panel (``allerta web``, waitress on 127.0.0.1) runs for real; the alert's progress is written into
the database by the test while the page is open, as the engine would write it, so each update is known
exactly: Fregene reached first, then Isola Sacra, calls answered on the first and second call.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, update

from gateway.core.alerts import AlertRequest, Target
from gateway.core.audit import audit_log_for
from gateway.core.config import load_config
from gateway.core.contacts_import import import_contacts
from gateway.core.db import utcnow
from gateway.core.models import Alert, Attempt, Delivery, Line, Zone
from gateway.core.services import build_services
from gateway.core.states import AlertState, AttemptOutcome, Channel, DeliveryState, LineState
from gateway.shell.bench import child_env
from gateway.shell.demo import wait_for_http
from tests.browser.test_browser_panel import PASSWORD, Recorder, _login, _screenshot, _stop
from tests.support import CONTACTS_CSV, write_config
from web.serve import free_port
from web.users import add_user

pytestmark = pytest.mark.browser

VIEWER = "vera"


def square(lon: float, lat: float) -> str:
    ring = [[lon, lat], [lon + 0.05, lat], [lon + 0.05, lat + 0.05], [lon, lat + 0.05], [lon, lat]]
    return json.dumps({"type": "Polygon", "coordinates": [ring]})


@pytest.fixture(scope="module")
def panel_only(tmp_path_factory):
    """The panel alone on 127.0.0.1 over a database with the sample contacts, zones with geometry,
    one SMS line up and an alert by SMS and voice to Fregene and Isola Sacra, nothing sent yet."""
    directory = tmp_path_factory.mktemp("pictures")
    config_path = write_config(directory)
    services = build_services(load_config(config_path))
    audit = audit_log_for(services.config, services.sessions)
    add_user(services.sessions, audit, VIEWER, PASSWORD, "viewer", actor="test")
    assert import_contacts(services.sessions, CONTACTS_CSV.encode("utf-8")).imported
    alert_id, _ = services.alerts.create(AlertRequest(text="Allerta: piena del Tevere, salire ai piani alti",
                                                      target=Target(zones=("Fregene", "Isola Sacra"))))
    with services.sessions.begin() as s:
        s.scalar(select(Zone).where(Zone.name == "Fregene")).geometry = square(12.20, 41.85)
        s.scalar(select(Zone).where(Zone.name == "Isola Sacra")).geometry = square(12.25, 41.80)
        # Voice deliveries beside the SMS ones (rendering speech would need espeak-ng: not what is tested).
        s.get(Alert, alert_id).channels = "sms,voice"
        sms = list(s.scalars(select(Delivery).where(Delivery.alert_id == alert_id)))
        s.add_all(Delivery(alert_id=alert_id, number_id=d.number_id, e164=d.e164, channel=Channel.VOICE,
                           zone=d.zone, vulnerable=d.vulnerable) for d in sms)
        s.add(Line(channel=Channel.SMS, label="sim-1", state=LineState.UP, rate_per_minute=6.0, updated_at=utcnow()))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(directory / "panel.log", "w")
    web = subprocess.Popen([sys.executable, "-m", "gateway.shell.cli", "--config", str(config_path), "web",
                            "--host", "127.0.0.1", "--port", str(port), "--https-port", "0"],
                           stdout=log, stderr=subprocess.STDOUT, env=child_env())
    try:
        assert wait_for_http(base + "/login", 60, web), (directory / "panel.log").read_text()[-3000:]
        yield {"base": base, "port": port, "services": services, "alert_id": alert_id}
    finally:
        _stop(web)
        log.close()
        services.engine.dispose()


def reach_zone(services, alert_id: int, zone: str, *, calls: list[str]) -> None:
    """What the engine would write: the zone's SMS delivered, its calls made with these outcomes in turn."""
    now = utcnow()
    with services.sessions.begin() as s:
        s.execute(update(Delivery).where(Delivery.alert_id == alert_id, Delivery.zone == zone,
                                         Delivery.channel == Channel.SMS)
                  .values(state=DeliveryState.DELIVERED, sent_at=now, delivered_at=now, updated_at=now))
        for delivery in s.scalars(select(Delivery).where(Delivery.alert_id == alert_id, Delivery.zone == zone,
                                                         Delivery.channel == Channel.VOICE)):
            for outcome in calls:
                s.add(Attempt(delivery_id=delivery.id, channel=Channel.VOICE, outcome=outcome, started_at=now))
            delivery.state = calls[-1]
            delivery.sent_at = delivery.updated_at = now
            delivery.delivered_at = now if calls[-1] == AttemptOutcome.CONFIRMED else None
        s.execute(update(Line).values(updated_at=now))   # the line's report stays fresh: the ETA has a rate


def zone_class(page, zone: str) -> str:  # noqa: ANN001
    """The share class of a zone as drawn on the map (its <g class="zone share-N">)."""
    return page.evaluate("""(name) => {
        for (const g of document.querySelectorAll('#alert-pictures svg.zone-map g.zone')) {
            if (g.querySelector('title').textContent.startsWith(name + ':')) return g.getAttribute('class');
        }
        return null;
    }""", zone)


def test_the_reach_curve_the_calls_and_the_map_appear_and_update_live_with_the_csp_kept_and_nothing_foreign(
        panel_only, browser):
    base, services, alert_id = panel_only["base"], panel_only["services"], panel_only["alert_id"]
    recorder = Recorder()
    context = browser.new_context(locale="it-IT", viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(30_000)
    recorder.attach(context)
    # Runs before the page's own scripts (through DevTools, not an inline script): every CSP violation.
    context.add_init_script("window.__violations = [];"
                            "document.addEventListener('securitypolicyviolation', e => window.__violations.push("
                            "e.violatedDirective + ' ' + e.blockedURI));")
    page = _login(context, base, VIEWER)
    page.goto(f"{base}/alerts/{alert_id}")
    page.wait_for_selector("#alert-pictures [data-picture=reach] svg.reach-curve")
    page.wait_for_selector("#alert-pictures [data-picture=zones] svg.zone-map g.zone")
    page.wait_for_selector("#alert-pictures [data-picture=attempts] svg.attempts")
    assert page.locator("#alert-pictures svg.reach-curve path.curve").count() == 0     # nothing out yet
    assert "share-0" in zone_class(page, "Fregene") and "share-0" in zone_class(page, "Isola Sacra")
    drawn = int(page.get_attribute("#alert-pictures", "data-drawn"))

    # Fregene is reached: its SMS delivered, its calls answered on the 1st call and confirmed.
    reach_zone(services, alert_id, "Fregene", calls=[AttemptOutcome.CONFIRMED])
    page.wait_for_function("(before) => Number(document.getElementById('alert-pictures').dataset.drawn) > before"
                           " && document.querySelector('#alert-pictures svg.zone-map g.zone.share-3') !== null",
                           arg=drawn, timeout=60_000)
    assert "share-3" in zone_class(page, "Fregene") and "share-0" in zone_class(page, "Isola Sacra")
    assert page.locator("#alert-pictures svg.reach-curve path.curve.sms_delivered").count() == 1
    assert "SMS consegnati: 2 / 4" in page.inner_text("#alert-pictures [data-picture=reach]")
    assert page.locator("#alert-pictures svg.attempts rect.bar").count() == 2          # the 1st call only

    # Then Isola Sacra: answered on the 2nd call. The same page, not reloaded, draws it.
    page.evaluate("() => { window.__notReloaded = true; }")
    reach_zone(services, alert_id, "Isola Sacra", calls=[AttemptOutcome.NO_ANSWER, AttemptOutcome.ANSWERED])
    page.wait_for_function("() => document.querySelectorAll('#alert-pictures svg.zone-map g.zone.share-3')"
                           ".length === 2", timeout=60_000)
    assert "SMS consegnati: 4 / 4" in page.inner_text("#alert-pictures [data-picture=reach]")
    page.wait_for_function("() => document.querySelectorAll('#alert-pictures svg.attempts rect.bar').length === 4")
    assert page.evaluate("() => window.__notReloaded === true")
    _screenshot(page, "alert-pictures")

    # The alert ends: the page draws it once more and stops asking.
    with services.sessions.begin() as s:
        s.get(Alert, alert_id).state = AlertState.COMPLETED
    page.wait_for_function("() => !document.querySelector('#alert-pictures svg.reach-curve line.now')",
                           timeout=60_000)
    asked = len([u for u in recorder.requests if "/pictures.json" in u])
    time.sleep(6)   # longer than the page's 5 s interval: no new request may come (an absence, not a duration)
    assert len([u for u in recorder.requests if "/pictures.json" in u]) == asked
    violations = page.evaluate("() => window.__violations")
    context.close()

    origin = f"http://127.0.0.1:{panel_only['port']}"
    foreign = [url for url in recorder.requests
               if not (url.startswith(origin + "/") or url.split(":", 1)[0] in ("data", "blob", "about"))]
    assert recorder.requests and not foreign, foreign
    assert {urlsplit(url).netloc for url in recorder.requests if url.startswith("http")} == {urlsplit(origin).netloc}
    assert violations == [] and not recorder.errors, (violations, recorder.errors)
