"""CAP end to end through the real path: `allerta zones import-geojson` and `allerta cap import` as
processes, town A's panel serving its feed over TCP (waitress), town B's feed reader fetching it
with its real HTTP client."""
from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest
from sqlalchemy import select
from waitress.server import create_server

from gateway.core.config import load_config
from gateway.core.contacts_import import import_contacts
from gateway.core.models import Alert
from gateway.core.services import build_services
from gateway.shell.cap_watch import CapFeeds
from tests.cap_support import CAP_DATA, PEOPLE_CSV, receiver
from tests.support import write_config
from web.app import create_app

pytestmark = pytest.mark.integration


def _allerta(config, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.shell.cli", "--config", str(config), *argv],
                          capture_output=True, text=True, timeout=60, check=False)


def _town(root, extra: str = ""):
    (root / "data").mkdir(parents=True)
    config = write_config(root, extra)
    zones = _allerta(config, "zones", "import-geojson", str(CAP_DATA / "zones.geojson"), "--name-property", "COMUNE",
                     "--code-property", "PRO_COM_T")
    assert zones.returncode == 0, zones.stderr
    assert import_contacts(build_services(load_config(config)).sessions, PEOPLE_CSV.encode()).imported
    return config


def test_a_warning_imported_by_town_a_reaches_town_b_through_a_s_feed_over_http(tmp_path):
    config_a = _town(tmp_path / "a", '[cap]\npublish = true\npublish_allow = ["127.0.0.1/32"]\n')
    config_b = _town(tmp_path / "b")
    imported = _allerta(config_a, "cap", "import", str(CAP_DATA / "esercitazione.xml"))
    assert imported.returncode == 0 and "\ndraft (alert 1): Esercitazione: frana" in imported.stdout, imported.stderr
    services_a = build_services(load_config(config_a))
    services_a.alerts.release(1)                      # an approver approved it
    server = create_server(create_app(services_a), host="127.0.0.1", port=0)
    threading.Thread(target=server.run, daemon=True).start()
    try:
        services_b = build_services(load_config(config_b))
        feed = f"http://127.0.0.1:{server.effective_port}/cap/feed.atom"
        assert CapFeeds(receiver(services_b), (feed,)).poll_once() == [
            (f"http://127.0.0.1:{server.effective_port}/cap/alerts/1.xml", "draft")]
    finally:
        server.close()
    with services_a.sessions() as sa, services_b.sessions() as sb:
        original, copy = sa.get(Alert, 1), sb.scalar(select(Alert))
        assert (copy.text, copy.drill, json.loads(copy.target)["zones"]) == (original.text, True, ["Ladispoli"])
        assert copy.state == "awaiting_approval"
