"""Run the real engine (`allerta run`) as a subprocess against the modem simulator."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from gateway.core.services import Services, build_services
from gateway.core.config import load_config
from gateway.core.models import Delivery
from tests.support import DATABASE


class RecordingEvents:
    """ChannelEvents for driving an SmsChannel directly: keeps the status reports, ignores the rest."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, int, bool]] = []

    def status_reports(self, line, reports) -> None:
        self.reports.extend((line, r.reference, r.delivered) for r in reports)

    def inbound_part(self, part) -> None:
        pass

    def line_status(self, status) -> None:
        pass

    def capacity_available(self) -> None:
        pass


def engine_config(tmp_path: Path, links: list[str], *, per_minute: float = 6000, report_timeout: float = 20,
                  send_timeout: float = 10, probe_interval: float = 2, health_interval: float = 5,
                  extra: str = "") -> Path:
    modems = "".join(f'\n[[modems]]\nlabel = "m{i}"\nport = "{link}"\nper_minute = {per_minute}\n'
                     for i, link in enumerate(links))
    path = tmp_path / "allerta.toml"
    path.write_text(f"""[general]
data_dir = "{tmp_path / 'data'}"
[engine]
poll_interval = 0.1
health_interval = {health_interval}
report_timeout = {report_timeout}
[retry]
initial_delay = 0.2
max_delay = 2
send_timeout = {send_timeout}
modem_error_threshold = 3
modem_probe_interval = {probe_interval}
{extra}{modems}{DATABASE.section(tmp_path)}""", encoding="utf-8")
    return path


def contacts_csv(count: int, *, zone: str = "Isola Sacra", start: int = 0) -> bytes:
    rows = ["nome;cellulare;zona;fragile"]
    rows += [f"Residente {i};+39 333 {5000000 + start + i:07d};{zone};{'sì' if i % 10 == 0 else 'no'}"
             for i in range(count)]
    return ("\n".join(rows) + "\n").encode("utf-8")


def services_for(config_path: Path) -> Services:
    return build_services(load_config(config_path))


def allerta(config_path: Path, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "gateway.shell.cli", "--config", str(config_path), *args],
                            capture_output=True, text=True, timeout=timeout, env=_env())
    if check and result.returncode != 0:
        raise AssertionError(f"allerta {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def start_engine(config_path: Path, *args: str, log_path: Path | None = None) -> subprocess.Popen:
    out = open(log_path, "w") if log_path else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "gateway.shell.cli", "--config", str(config_path), "run", *args],
                            stdout=out, stderr=subprocess.STDOUT, env=_env())


def _env() -> dict:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


def states(services: Services, alert_id: int) -> Counter:
    with services.sessions() as s:
        return Counter(s.scalars(select(Delivery.state).where(Delivery.alert_id == alert_id)))


def undelivered_by_line(services: Services, alert_id: int) -> Counter:
    """(state, line) of the deliveries not 'delivered': what a failed assertion should show."""
    with services.sessions() as s:
        return Counter(s.execute(select(Delivery.state, Delivery.line).where(
            Delivery.alert_id == alert_id, Delivery.state != "delivered")).all())


def flagged(services: Services, alert_id: int) -> set[str]:
    with services.sessions() as s:
        return set(s.scalars(select(Delivery.e164).where(Delivery.alert_id == alert_id,
                                                          Delivery.possible_duplicate.is_(True))))


def submits_by_destination(sim) -> Counter:
    return Counter(r["destination"] for r in sim.log_records("submit") if r["part"] == 1)


def wait_until(predicate, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def kill9(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
