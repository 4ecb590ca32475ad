"""`allerta bench` and `allerta demo`, run for real (small sizes)."""
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from argparse import Namespace
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.shell import bench
from gateway.core.services import build_services
from gateway.core.config import load_config
from gateway.core.contacts_csv import parse_contacts_csv
from gateway.shell.demo import DRILL_ZONE, residents_csv
from gateway.core.models import Alert, Contact, Delivery
from gateway.core.models_panel import User
from web.users import verify_password

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_bench_fanout_reaches_every_contact(tmp_path):
    result = bench.run(Namespace(what="fanout", contacts=2000, keep=str(tmp_path / "fanout")))
    assert result["contacts"] == 2000
    assert result["recipients"] == 2000
    assert result["seconds"] > 0
    assert result["zone"]["recipients"] == 2000 // 8
    services = build_services(load_config(tmp_path / "fanout" / "allerta.toml"))
    with services.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 2000
        assert s.scalar(select(func.count()).select_from(Delivery)) == 2000 + 2000 // 8
    services.engine.dispose()


@pytest.mark.integration
def test_bench_sms_small_run_delivers_everything_and_reports_its_figures(tmp_path):
    result = bench.run(Namespace(what="sms", modems=4, messages=200, latency=0.05, report_delay=0.05,
                                 keep=str(tmp_path / "sms"), cprofile=None))
    assert result["engine_exit_code"] == 0
    assert result["delivered"] == 200 and result["deliveries_by_state"] == {"delivered": 200}
    assert result["submitted"] == 200 and result["submits"] == 200 and result["duplicates"] == 0
    assert result["status_reports"] == 200 and result["status_reports_dropped"] == 0
    assert result["submits_per_modem"]["modems_used"] == 4
    assert result["modem_bound_messages_per_minute"] == pytest.approx(4 * 60 / 0.05)
    assert 0 < result["ratio"] <= 1.1
    assert result["modem_exchange_seconds"] == {"total": 0.05, "before_prompt": 0.0125, "prompt_to_cmgs_reply": 0.0375}
    # --latency is the whole AT+CMGS exchange: no modem answers two submits closer than that.
    by_modem: dict[str, list[float]] = {}
    for line in (tmp_path / "sms" / "simulator.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["event"] == "submit":
            by_modem.setdefault(record["modem"], []).append(dt.datetime.fromisoformat(record["time"]).timestamp())
    gaps = [b - a for times in by_modem.values() for a, b in zip(sorted(times), sorted(times)[1:])]
    assert len(gaps) == 200 - 4 and min(gaps) >= 0.05 - 0.002  # the log's times have millisecond precision
    assert result["messages_per_minute"] == result["submit_window"]["messages_per_minute"] > 0
    for window in ("submit_window", "steady_state", "engine"):
        assert result[window]["definition"]
        assert 0 < result[window]["ratio"] <= 1.1
    assert result["engine"]["wall_seconds"] > result["submit_window"]["seconds"] > 0
    assert result["engine_cpu_seconds"] > 0 and result["cpu_seconds_per_message"] > 0
    assert result["engine_peak_rss_mb"] > 10
    json.dumps(result)  # the CLI prints it as JSON


@pytest.mark.integration
def test_bench_cli_prints_json():
    result = subprocess.run([sys.executable, "-m", "gateway.shell.cli", "bench", "fanout", "--contacts", "300"],
                            capture_output=True, text=True, timeout=60, env=_env(), cwd=ROOT)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["recipients"] == 300 and data["benchmark"] == "fanout"


def test_synthetic_residents_import_cleanly_and_look_like_fiumicino():
    data = residents_csv(2000)
    parsed = parse_contacts_csv(data)
    assert not parsed.errors and parsed.fatal is None and len(parsed.contacts) == 2000
    zones = {c.zone for c in parsed.contacts}
    assert zones == {"Isola Sacra", "Fregene", "Focene", "Passoscuro", "Maccarese", "Aranova", "Palidoro",
                     "Torrimpietra"}
    kinds = [n.kind for c in parsed.contacts for n in c.numbers]
    assert 0.05 < kinds.count("landline") / len(kinds) < 0.4
    assert 0.04 < sum(c.vulnerable for c in parsed.contacts) / 2000 < 0.12
    assert {c.language for c in parsed.contacts} == {"it", "en", "ro", "ar", "uk"}
    assert residents_csv(50) == residents_csv(50)  # fixed seed


@pytest.mark.integration
def test_demo_delivers_the_drill_by_sms_and_voice_serves_the_panel_and_exits_when_done(tmp_path):
    keep = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "gateway.shell.cli", "demo", "--contacts", "300", "--modems", "2",
                             "--channels", "8", "--time-scale", "0.03", "--exit-when-done", "--no-browser",
                             "--keep", str(keep)],
                            capture_output=True, text=True, timeout=180, env=_env(), cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "alert status 1" in result.stdout
    # The panel's address and the demo logins are printed, and they work.
    assert re.search(r"Web panel: http://127\.0\.0\.1:\d+/", result.stdout)
    assert "demo / fiumicino-prova" in result.stdout
    admin = re.search(r"Administrator: +admin / (\S+)", result.stdout)
    assert admin
    services = build_services(load_config(keep / "allerta.toml"))
    with services.sessions() as s:
        alert = s.get(Alert, 1)
        deliveries = s.execute(select(Delivery.channel, Delivery.state)).all()
        roles = dict(s.execute(select(User.username, User.role)).all())
        password_hash = s.scalar(select(User.password_hash).where(User.username == "demo"))
    services.engine.dispose()
    assert roles == {"admin": "admin", "demo": "approver", "operatore": "operator"}
    assert verify_password(password_hash, "fiumicino-prova")
    assert alert.drill and DRILL_ZONE in alert.target and alert.channels == "sms,voice"
    assert alert.audio_path and Path(alert.audio_path + ".wav").is_file()
    sms = Counter(state for channel, state in deliveries if channel == "sms")
    voice = Counter(state for channel, state in deliveries if channel == "voice")
    assert sum(sms.values()) > 10 and sms == {"delivered": sum(sms.values())}
    # Every voice number was called until it was done: landlines too, so more numbers than SMS.
    assert sum(voice.values()) > sum(sms.values())
    assert set(voice) <= {"confirmed", "answered", "voicemail", "failed"} and voice["confirmed"] > 0
    assert alert.recipients == sum(sms.values()) + sum(voice.values())
    prefix = services.config.general.drill_prefix
    submits = [json.loads(line) for line in (keep / "simulator-events.jsonl").read_text().splitlines()
               if '"submit"' in line]
    submits = [r for r in submits if r["event"] == "submit"]
    assert len(submits) == sum(sms.values())
    assert all(r["text"].startswith(prefix) for r in submits)
    assert {r["modem"] for r in submits} == {"modem-0", "modem-1"}
    calls = [json.loads(line) for line in (keep / "pbx" / "pbx-calls.jsonl").read_text().splitlines() if line]
    assert len({c["number"] for c in calls}) == sum(voice.values())
    assert max(c["concurrent"] for c in calls) <= 8


@pytest.mark.integration
def test_demo_stops_cleanly_on_sigterm(tmp_path):
    keep = tmp_path / "demo"
    process = subprocess.Popen([sys.executable, "-m", "gateway.shell.cli", "demo", "--contacts", "200", "--modems", "2",
                                "--no-browser", "--keep", str(keep)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=_env(), cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (keep / "engine.log").exists():
            time.sleep(0.2)
        assert (keep / "engine.log").exists()
        # Stopped while the engine is sending: its first SMS has reached a simulated modem.
        events = keep / "simulator-events.jsonl"
        while time.monotonic() < deadline + 60 and not (events.exists() and '"submit"' in events.read_text()):
            time.sleep(0.2)
        assert '"submit"' in events.read_text()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output[-3000:]
    assert "Stopping the panel, the engine and the simulators" in output
    log = (keep / "engine.log").read_text()
    assert "Traceback" not in log
    # No child left behind: nothing holds the engine's log open any more.
    leftovers = subprocess.run(["pgrep", "-f", str(keep)], capture_output=True, text=True).stdout.split()
    assert leftovers == []
