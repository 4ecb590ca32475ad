"""``allerta bench web``: server time of the panel's pages over a seeded database.

Seeds a throwaway SQLite database with bulk core inserts (``--contacts``
contacts in 8 zones with one mobile each, an SMS alert to every one of them
with its deliveries in a realistic mix of states and one attempt per
delivery that went out, a few smaller alerts, the lines of a small box),
then signs in with Flask's test client and times each page
``--requests`` times in the process, as the server sees it (no network, no
browser): dashboard, contact search, alert page, its pictures, the CSV export
of the big alert and its after-action report (the PDF of /alerts/ID/report.pdf);
then the time of each figure behind the pictures and of drawing them (``pictures``).

Targets (issue 4): p95 under 300 ms for pages, export of 100,000 rows under 5 s;
(issue 16) the after-action report of the 100,000-recipient alert under 10 s.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import re
import statistics
import time

from sqlalchemy import String, case, cast, func, insert, literal, select, update

from gateway.core.alerts import AlertRequest, Target
from gateway.core.config import load_config
from gateway.core.db import utcnow
from gateway.core.alert_figures import outcomes_by_attempt, reach_series, zone_reach
from gateway.core.models import Attempt, Delivery, Line, Zone
from gateway.core.services import build_services
from gateway.shell.bench import BENCH_ZONES, seed_contacts, work_dir, write_config
from web.alert_pictures import PicturesCache
from web.app import create_app
from web.pictures import attempts_svg, reach_curve_svg, zone_map_svg
from web.users import add_user

PAGE_TARGET_MS = 300.0
SEND_SPREAD_SECONDS = 3600
EXPORT_TARGET_SECONDS = 5.0
REPORT_TARGET_SECONDS = 10.0
PASSWORD = "misura-pannello-42"
BENCH_TEXT = "Allerta: esondazione in corso, salire ai piani alti"


def _percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _figures(samples: list[float]) -> dict:
    return {"median_ms": round(statistics.median(samples) * 1000, 1),
            "p95_ms": round(_percentile(samples, 0.95) * 1000, 1),
            "max_ms": round(max(samples) * 1000, 1), "requests": len(samples)}


def seed(services, contacts: int, *, small_alerts: int = 5) -> dict:  # noqa: ANN001
    """Contacts, one big alert with a delivery per contact and its attempts, smaller alerts, lines."""
    started = time.perf_counter()
    seed_contacts(services.engine, contacts)
    alert_id, _preview = services.alerts.create(AlertRequest(text=BENCH_TEXT, target=Target(everyone=True),
                                                             created_by="bench"))
    for i in range(small_alerts):
        services.alerts.create(AlertRequest(text=f"{BENCH_TEXT} ({i + 1})", created_by="bench",
                                            target=Target(zones=(BENCH_ZONES[i % len(BENCH_ZONES)],))))
    now = utcnow()
    d = Delivery.__table__.c
    # Sent over the last hour, in id order, each delivered 20 s later: the reach curve has a shape to draw.
    sent_at = func.datetime(now.strftime("%Y-%m-%d %H:%M:%S"),
                            cast(d.id * SEND_SPREAD_SECONDS // contacts - SEND_SPREAD_SECONDS, String) + " seconds")
    delivered_at = func.datetime(sent_at, "+20 seconds")
    # 70 % delivered, 10 % sent (waiting for the report), 5 % failed after 2 attempts, 15 % still queued.
    bucket = d.id % 20
    state = case((bucket < 14, "delivered"), (bucket < 16, "sent"), (bucket == 16, "failed"), else_="pending")
    went_out = bucket < 17
    with services.engine.begin() as conn:
        conn.execute(update(Delivery.__table__).where(d.alert_id == alert_id).values(
            state=state,
            line=case((went_out, literal("sim-") + cast(d.id % 4 + 1, String)), else_=None),
            attempts=case((bucket == 16, 2), (went_out, 1), else_=0),
            submissions=case((bucket == 16, 2), (went_out, 1), else_=0),
            parts_total=case((went_out, 1), else_=0),
            parts_delivered=case((bucket < 14, 1), else_=0),
            sent_at=case((went_out, sent_at), else_=None),
            delivered_at=case((bucket < 14, delivered_at), else_=None),
            last_error=case((bucket == 16, "CMS ERROR 500: unknown error"), else_=None),
            updated_at=now))
        attempt_columns = ["delivery_id", "channel", "line", "started_at", "ended_at", "outcome", "error"]
        a = Attempt.__table__
        outcome = case((d.state == "delivered", "delivered"), (d.state == "sent", "sent"), else_="failed")
        conn.execute(insert(a).from_select(attempt_columns, select(
            d.id, d.channel, d.line, d.sent_at, d.delivered_at, outcome, d.last_error)
            .where(d.alert_id == alert_id, d.state != "pending").order_by(d.id)))
        conn.execute(insert(a).from_select(attempt_columns, select(
            d.id, d.channel, d.line, d.sent_at, d.sent_at, literal("failed"), d.last_error)
            .where(d.alert_id == alert_id, d.state == "failed").order_by(d.id)))
        conn.execute(insert(Line.__table__), [
            {"channel": "sms", "label": f"sim-{i + 1}", "state": "up", "port": f"/dev/allerta/modem-{i + 1}",
             "signal": 20 + i, "registration": "home", "operator": "I TIM", "sim_state": "ready",
             "sent_today": contacts // 4, "daily_cap": contacts, "rate_per_minute": 20.0, "updated_at": now}
            for i in range(4)])
        conn.execute(insert(Line.__table__).values(channel="voice", label="pstn", state="up", in_use=12, limit=30,
                                                   rate_per_minute=60.0, updated_at=now))
        for i, name in enumerate(BENCH_ZONES):  # a 4 x 2 grid of squares: the zone map draws every zone
            lon, lat = 12.2 + 0.05 * (i % 4), 41.8 + 0.05 * (i // 4)
            ring = [[lon, lat], [lon + 0.05, lat], [lon + 0.05, lat + 0.05], [lon, lat + 0.05], [lon, lat]]
            conn.execute(update(Zone.__table__).where(Zone.__table__.c.name == name).values(
                geometry=json.dumps({"type": "Polygon", "coordinates": [ring]})))
        deliveries = conn.scalar(select(func.count()).select_from(Delivery.__table__).where(d.alert_id == alert_id))
        attempts = conn.scalar(select(func.count()).select_from(a))
    return {"alert_id": alert_id, "deliveries": deliveries, "attempts": attempts,
            "seconds": round(time.perf_counter() - started, 2)}


def _login(client, username: str) -> None:  # noqa: ANN001
    html = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)
    response = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
    if response.status_code != 302:
        raise RuntimeError(f"bench: cannot sign in ({response.status_code})")


def _time(client, url: str) -> tuple[float, int, int]:  # noqa: ANN001
    started = time.perf_counter()
    response = client.get(url)
    body = response.get_data()  # a streamed response is produced here, inside the timing
    return time.perf_counter() - started, response.status_code, len(body)


def time_pictures(app, services, alert_id: int, runs: int) -> dict:  # noqa: ANN001
    """Median time of each figure of the alert's pictures (gateway.core.alert_figures) and of drawing
    the three as SVG (web.pictures), in Italian as the panel draws them."""
    figures = {"reach_series": reach_series, "outcomes_by_attempt": outcomes_by_attempt, "zone_reach": zone_reach}
    drawers = {"reach_series": reach_curve_svg, "outcomes_by_attempt": attempts_svg, "zone_reach": zone_map_svg}
    samples: dict[str, list[float]] = {name: [] for name in [*figures, "render"]}
    size = 0
    with app.test_request_context("/", headers={"Accept-Language": "it"}):
        for _ in range(runs):
            made = {}
            with services.sessions() as s:
                for name, figure in figures.items():
                    started = time.perf_counter()
                    made[name] = figure(s, alert_id)
                    samples[name].append(time.perf_counter() - started)
            started = time.perf_counter()
            size = sum(len(str(drawers[name](value))) for name, value in made.items())
            samples["render"].append(time.perf_counter() - started)
    medians = {f"{name}_ms": round(statistics.median(values) * 1000, 1) for name, values in samples.items()}
    total = sum(statistics.median(values) for values in samples.values())
    return {**medians, "total_ms": round(total * 1000, 1), "svg_kilobytes": round(size / 1000, 1), "runs": runs}


def bench_web(contacts: int, *, requests: int = 30, exports: int = 3, reports: int = 2,
              keep: str | None = None) -> dict:
    if contacts < 100 or requests < 1 or exports < 1 or reports < 1:
        raise ValueError("--contacts must be at least 100, --requests, --exports and --reports at least 1")
    rng = random.Random(7)
    with work_dir(keep, "allerta-bench-web-") as tmp:
        config_path = write_config(tmp, [])
        services = build_services(load_config(config_path))
        seeded = seed(services, contacts)
        alert_id = seeded["alert_id"]
        app = create_app(services)
        # Every request draws the pictures afresh: the page's 4-second sharing between viewers is not timed.
        app.extensions["allerta_pictures"] = PicturesCache(seconds=0.0)
        add_user(services.sessions, app.extensions["allerta"].audit, "bench", PASSWORD, "operator", actor="bench")
        client = app.test_client()
        _login(client, "bench")
        pages_count = max(1, contacts // 50)
        delivery_pages = max(1, seeded["deliveries"] // 50)
        pages = {
            "dashboard": lambda: "/",
            "dashboard_json": lambda: "/dashboard.json",
            "contacts_first_page": lambda: "/contacts/",
            "contact_search_name": lambda: f"/contacts/?q=Residente+{rng.randrange(1, contacts)}",
            "contact_search_number": lambda: f"/contacts/?q={3335000000 + rng.randrange(contacts)}",
            "contact_search_partial_number": lambda: f"/contacts/?q=50{rng.randrange(1000):03d}",
            "contacts_zone_deep_page": lambda: (f"/contacts/?zone={BENCH_ZONES[rng.randrange(8)].replace(' ', '+')}"
                                                f"&page={rng.randrange(1, max(2, pages_count // 8))}"),
            "contacts_last_pages": lambda: f"/contacts/?page={rng.randrange(max(1, pages_count - 20), pages_count + 1)}",
            "alert_page": lambda: f"/alerts/{alert_id}",
            "alert_page_deep": lambda: f"/alerts/{alert_id}?page={rng.randrange(1, delivery_pages + 1)}",
            "alert_page_filtered": lambda: (f"/alerts/{alert_id}?state=failed&zone="
                                            f"{BENCH_ZONES[rng.randrange(8)].replace(' ', '+')}"),
            "alert_progress_json": lambda: f"/alerts/{alert_id}/progress.json",
            "alert_pictures_json": lambda: f"/alerts/{alert_id}/pictures.json",
            "alerts_list": lambda: "/alerts/",
        }
        results: dict[str, dict] = {}
        for name, make_url in pages.items():
            _time(client, make_url())  # warm-up: templates compiled, SQLite pages cached
            samples, statuses = [], set()
            for _ in range(requests):
                seconds, status, _size = _time(client, make_url())
                samples.append(seconds)
                statuses.add(status)
            results[name] = {**_figures(samples), "example": make_url(), "statuses": sorted(statuses)}
        export_samples, export_bytes, export_status = [], 0, 0
        for _ in range(exports):
            seconds, export_status, export_bytes = _time(client, f"/alerts/{alert_id}/export.csv")
            export_samples.append(seconds)
        # The first report is timed too: its fonts are loaded then, as on a box's first report of the day.
        # CPU seconds too: on a shared machine the wall time measures the neighbours as much as the report.
        report_samples, report_cpu, report_bytes, report_status = [], [], 0, 0
        for _ in range(reports):
            cpu = time.process_time()
            seconds, report_status, report_bytes = _time(client, f"/alerts/{alert_id}/report.pdf")
            report_cpu.append(time.process_time() - cpu)
            report_samples.append(seconds)
        pictures = time_pictures(app, services, alert_id, max(1, min(requests, 10)))
        services.engine.dispose()
    slowest = max(results, key=lambda name: results[name]["p95_ms"])
    pages_ok = all(r["p95_ms"] < PAGE_TARGET_MS and r["statuses"] == [200] for r in results.values())
    export_seconds = statistics.median(export_samples)
    report_seconds = max(report_samples)
    return {
        "benchmark": "web",
        "contacts": contacts,
        "deliveries": seeded["deliveries"],
        "attempts": seeded["attempts"],
        "seed_seconds_not_measured": seeded["seconds"],
        "requests_per_page": requests,
        "pages": results,
        "export": {"rows": seeded["deliveries"], "megabytes": round(export_bytes / 1e6, 2),
                   "median_seconds": round(export_seconds, 3), "max_seconds": round(max(export_samples), 3),
                   "runs": exports, "status": export_status},
        "report_seconds": round(report_seconds, 3),
        "report": {"recipients": seeded["deliveries"], "seconds": [round(x, 3) for x in report_samples],
                   "cpu_seconds": [round(x, 3) for x in report_cpu],
                   "kilobytes": round(report_bytes / 1000, 1), "status": report_status,
                   "what": "GET /alerts/ID/report.pdf of the big alert as an operator: facts gathered, "
                           "template rendered, PDF laid out by WeasyPrint (report_seconds: the slowest run)"},
        "pictures": pictures,
        "slowest_page": {"page": slowest, "p95_ms": results[slowest]["p95_ms"]},
        "targets": {"page_p95_ms": PAGE_TARGET_MS, "export_seconds": EXPORT_TARGET_SECONDS,
                    "report_seconds": REPORT_TARGET_SECONDS},
        "within_targets": (pages_ok and export_seconds < EXPORT_TARGET_SECONDS and export_status == 200
                           and report_seconds < REPORT_TARGET_SECONDS and report_status == 200),
        "database": "sqlite (WAL), file in a temporary directory",
        "measurement": "Flask test client in the same process: server time of each request (routing, access "
                       "check, queries, template, response body read to the end), no network; one warm-up "
                       "request per page not counted",
    }


def run(args: argparse.Namespace) -> dict:
    return bench_web(args.contacts, requests=getattr(args, "requests", 30), exports=getattr(args, "exports", 3),
                     reports=getattr(args, "reports", 2), keep=getattr(args, "keep", None))


if __name__ == "__main__":  # pragma: no cover
    import sys
    from gateway.shell.cli import build_parser
    print(json.dumps(run(build_parser().parse_args(["bench", "web", *sys.argv[1:]])), indent=2))
