"""What differs between SQLite and PostgreSQL, checked on both (the `both_databases` mark).

On PostgreSQL `alert status` once said `-1 recipients`: the fan-out trusted the row count of an
INSERT ... SELECT, which the driver does not give, so the "no reachable recipient" check never fired.
"""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from gateway.core.alerts import AlertError, AlertRequest, Target
from gateway.core.contacts_import import import_contacts
from gateway.core.models import Alert, Delivery
from modem.simulator.harness import SimulatorProcess
from tests.engine_harness import allerta, contacts_csv, engine_config, services_for, states

pytestmark = pytest.mark.both_databases


def test_the_fan_out_counts_its_recipients(contacts, database):
    alert_id, preview = contacts.alerts.create(AlertRequest(text="Allerta", target=Target(everyone=True)))
    with contacts.sessions() as s:
        stored = s.scalar(select(func.count()).select_from(Delivery).where(Delivery.alert_id == alert_id))
        recipients = s.get(Alert, alert_id).recipients
    assert recipients == stored == preview.recipients["sms"] > 0


def test_no_reachable_recipient_is_refused(services, database):
    import_contacts(services.sessions, "nome;telefono;zona\nMario;06 6521 1234;Fregene\n".encode())
    with pytest.raises(AlertError, match="no reachable recipient"):
        services.alerts.create(AlertRequest(text="x", channels=("sms",), target=Target(zones=("Fregene",))))
    with services.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == 0


@pytest.mark.integration
def test_an_sms_alert_to_150_recipients_over_simulated_modems(tmp_path, database):
    with SimulatorProcess(count=2, profile="generic,sim800", link_dir=tmp_path / "links", latency_median=0.02,
                          latency_sigma=0.3, report_delay=0.05) as sim:
        config_path = engine_config(tmp_path, [m["link"] for m in sim.modems])
        services = services_for(config_path)
        assert import_contacts(services.sessions, contacts_csv(150)).contacts_created == 150
        created = allerta(config_path, "alert", "send", "--sms", "--zone", "Isola Sacra", "--text", "Prova di allerta")
        assert "150 SMS recipients" in created.stderr, created.stderr
        alert_id = int(created.stdout)
        allerta(config_path, "run", "--once", timeout=300)
        assert states(services, alert_id) == {"delivered": 150}
        status = json.loads(allerta(config_path, "alert", "status", str(alert_id), "--json").stdout)
        assert status["recipients"] == 150 and status["state"] == "completed"
