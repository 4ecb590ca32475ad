"""Status reports other than 'received', end to end over ptys: an interim 'still trying'
report is no outcome, a 'failed for good' report fails the delivery with its reason."""
import pytest
from sqlalchemy import select

from gateway.core.alerts import AlertRequest, Target
from gateway.core.contacts_import import import_contacts
from gateway.core.models import Delivery
from modem.simulator.harness import SimulatorProcess
from tests.engine_harness import allerta, contacts_csv, engine_config, services_for

pytestmark = pytest.mark.integration


def _run(tmp_path, statuses):
    with SimulatorProcess(count=1, link_dir=tmp_path / "links", latency_median=0.02, latency_sigma=0,
                          report_delay=0.05) as sim:
        sim.control({"cmd": "report_status", "modem": "modem-0", "statuses": statuses})
        config_path = engine_config(tmp_path, [m["link"] for m in sim.modems], report_timeout=5)
        services = services_for(config_path)
        assert import_contacts(services.sessions, contacts_csv(3)).imported
        alert_id, _ = services.alerts.create(AlertRequest(text="Allerta", target=Target(zones=("Isola Sacra",))))
        allerta(config_path, "run", "--once", timeout=120)
        reports = sim.log_records("status_report")
        with services.sessions() as s:
            rows = s.execute(select(Delivery.state, Delivery.last_error).where(Delivery.alert_id == alert_id)).all()
    return reports, rows


def test_still_trying_then_delivered_counts_once_as_delivered(tmp_path):
    reports, rows = _run(tmp_path, [0x30, 0x00])
    assert [r["status"] for r in reports].count(0x30) == 3 and [r["status"] for r in reports].count(0) == 3
    assert {state for state, _ in rows} == {"delivered"}


def test_failed_for_good_fails_the_delivery_with_the_tp_status(tmp_path):
    reports, rows = _run(tmp_path, [0x41])
    assert [r["status"] for r in reports] == [0x41] * 3
    assert len(rows) == 3
    assert all(state == "failed" and "TP-ST 0x41" in (error or "") for state, error in rows), rows
