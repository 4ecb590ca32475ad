"""`allerta bench web`, run for real on a small database."""
import json
import os
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.shell import bench
from gateway.core.services import build_services
from gateway.core.config import load_config
from gateway.core.models import Attempt, Contact, Delivery, Line

ROOT = Path(__file__).resolve().parent.parent
PAGES = {"dashboard", "dashboard_json", "contacts_first_page", "contact_search_name", "contact_search_number",
         "contact_search_partial_number", "contacts_zone_deep_page", "contacts_last_pages", "alert_page",
         "alert_page_deep", "alert_page_filtered", "alert_progress_json", "alert_pictures_json", "alerts_list"}


def test_bench_web_seeds_the_database_and_times_every_page(tmp_path):
    keep = tmp_path / "web"
    result = bench.run(Namespace(what="web", contacts=2000, requests=3, exports=1, reports=1, keep=str(keep)))
    json.dumps(result)  # the CLI prints it as JSON
    assert result["benchmark"] == "web" and result["contacts"] == 2000
    assert result["deliveries"] == 2000
    assert result["attempts"] == 2000 * 17 // 20 + 2000 // 20   # one per delivery that went out, two if failed
    assert set(result["pages"]) == PAGES
    for name, page in result["pages"].items():
        assert page["statuses"] == [200], (name, page)
        assert page["requests"] == 3
        assert 0 < page["median_ms"] <= page["p95_ms"] <= page["max_ms"], (name, page)
    export = result["export"]
    assert export["status"] == 200 and export["rows"] == 2000 and export["megabytes"] > 0.1
    report = result["report"]
    assert report["status"] == 200 and report["kilobytes"] > 10 and len(report["seconds"]) == 1
    assert result["report_seconds"] == max(report["seconds"]) > 0
    assert result["targets"] == {"page_p95_ms": 300.0, "export_seconds": 5.0, "report_seconds": 10.0}
    assert isinstance(result["within_targets"], bool)  # the figures at 100,000 are what the targets are about
    assert result["slowest_page"]["page"] in PAGES
    pictures = result["pictures"]
    assert {"reach_series_ms", "outcomes_by_attempt_ms", "zone_reach_ms", "render_ms", "total_ms"} <= set(pictures)
    assert pictures["runs"] == 3 and pictures["svg_kilobytes"] > 1 and pictures["total_ms"] > 0

    services = build_services(load_config(keep / "allerta.toml"))
    with services.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 2000
        states = dict(s.execute(select(Delivery.state, func.count()).where(Delivery.alert_id == 1)
                                .group_by(Delivery.state)).all())
        assert states == {"delivered": 1400, "sent": 200, "failed": 100, "pending": 300}
        assert s.scalar(select(func.count()).select_from(Attempt)) == result["attempts"]
        assert s.scalar(select(func.count()).select_from(Line)) == 5
    services.engine.dispose()


@pytest.mark.integration
def test_bench_web_cli_prints_json(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run([sys.executable, "-m", "gateway.shell.cli", "bench", "web", "--contacts", "300",
                             "--requests", "1", "--exports", "1", "--reports", "1"],
                            capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(result.stdout)
    assert data["benchmark"] == "web" and data["deliveries"] == 300 and data["report"]["status"] == 200
