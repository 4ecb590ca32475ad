"""Each modem's operator limits, end to end over ptys: the per-minute cap and the daily cap."""
import datetime as dt

import pytest

from gateway.core.alerts import AlertRequest, Target
from gateway.core.contacts_import import import_contacts
from modem.simulator.harness import SimulatorProcess
from tests.engine_harness import allerta, contacts_csv, engine_config, services_for, states

pytestmark = pytest.mark.integration


def _alert(tmp_path, sim, recipients, *, per_minute, modem_lines=""):
    config_path = engine_config(tmp_path, [m["link"] for m in sim.modems], per_minute=per_minute, report_timeout=3)
    if modem_lines:
        # The starter tables end with the last [[modems]] entry: these keys belong to it.
        config_path.write_text(config_path.read_text(encoding="utf-8") + modem_lines, encoding="utf-8")
    services = services_for(config_path)
    assert import_contacts(services.sessions, contacts_csv(recipients)).imported
    alert_id, _ = services.alerts.create(AlertRequest(text="Allerta: prova", target=Target(zones=("Isola Sacra",))))
    return config_path, services, alert_id


def _submit_times(sim) -> list[float]:
    return sorted(dt.datetime.fromisoformat(r["time"]).timestamp() for r in sim.log_records("submit"))


def test_per_minute_cap_spaces_the_sends_on_the_wire(tmp_path):
    # 240 a minute: one segment every 0.25 s, though the modem could do one every 0.02 s
    # and the engine hands it the next send while the current one is on the wire.
    with SimulatorProcess(count=1, link_dir=tmp_path / "links", latency_median=0.02, latency_sigma=0,
                          prompt_latency=0.005, report_delay=0.02) as sim:
        config_path, services, alert_id = _alert(tmp_path, sim, 6, per_minute=240)
        allerta(config_path, "run", "--once", timeout=120)
        assert states(services, alert_id) == {"delivered": 6}
        times = _submit_times(sim)
        assert len(times) == 6
        # +CMGS comes a fixed 25 ms after AT+CMGS; the log keeps milliseconds, and the
        # engine's thread may write the PDU a few milliseconds late after the prompt.
        assert min(b - a for a, b in zip(times, times[1:])) >= 0.25 - 0.01


def test_daily_cap_holds_the_rest_and_survives_a_restart(tmp_path):
    with SimulatorProcess(count=1, link_dir=tmp_path / "links", latency_median=0.02, latency_sigma=0,
                          report_delay=0.02) as sim:
        config_path, services, alert_id = _alert(tmp_path, sim, 5, per_minute=6000, modem_lines="daily_cap = 3\n")
        # --once gives up on what no modem may send today: exit 1, the rest stays queued.
        first = allerta(config_path, "run", "--once", timeout=120, check=False)
        assert first.returncode == 1
        assert states(services, alert_id) == {"delivered": 3, "pending": 2}
        assert len(sim.log_records("submit")) == 3
        # A restart counts today's sends from the database: still nothing more today.
        second = allerta(config_path, "run", "--once", timeout=120, check=False)
        assert second.returncode == 1
        assert len(sim.log_records("submit")) == 3
        assert states(services, alert_id) == {"delivered": 3, "pending": 2}
