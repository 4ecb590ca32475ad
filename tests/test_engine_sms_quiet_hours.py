"""The engine during quiet hours, over simulated modems: an emergency goes, information due now stays
in the queue until the end of the window (then the panel says "held until")."""
import datetime as dt

import pytest
from sqlalchemy import select

from gateway.core.alerts import AlertRequest, AlertService, Target
from gateway.core.contacts_import import import_contacts
from gateway.core.db import utcnow
from gateway.core.models import Delivery
from gateway.core.quiet_hours import local_time
from modem.simulator.harness import SimulatorProcess
from tests.engine_harness import allerta, contacts_csv, engine_config, services_for, states, submits_by_destination

pytestmark = pytest.mark.integration


def test_the_engine_holds_information_during_quiet_hours_and_sends_emergencies(tmp_path):
    now = local_time(utcnow())
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(hours=2)   # quiet hours around this moment
    with SimulatorProcess(count=1, link_dir=tmp_path / "links", latency_median=0.02, report_delay=0.05) as sim:
        config_path = engine_config(tmp_path, [m["link"] for m in sim.modems], report_timeout=3,
                                    extra=f'[ops]\nquiet_hours = "{start:%H:%M}-{end:%H:%M}"\n')
        services = services_for(config_path)
        import_contacts(services.sessions, contacts_csv(10, zone="Isola Sacra"))
        import_contacts(services.sessions, contacts_csv(10, zone="Fregene", start=100))
        # Information written before the quiet hours began (an alert service without them): due now, so
        # only the engine's claim and its sweep stand between it and the modems.
        information, _ = AlertService(services.sessions).create(AlertRequest(
            text="Lavori in via Roma domani", target=Target(zones=("Fregene",)), category="information"))
        emergency, _ = services.alerts.create(AlertRequest(text="Allerta rossa: salire ai piani alti",
                                                           target=Target(zones=("Isola Sacra",))))
        allerta(config_path, "run", "--once", timeout=120, check=False)   # gives up on the held ones
        assert states(services, emergency) == {"delivered": 10}
        assert states(services, information) == {"pending": 10}
        with services.sessions() as s:
            waiting = set(s.scalars(select(Delivery.next_attempt_at).where(Delivery.alert_id == information)))
        assert {local_time(at).strftime("%H:%M") for at in waiting} == {f"{end:%H:%M}"}
        assert len(submits_by_destination(sim)) == 10         # only the emergency's numbers
        status = allerta(config_path, "alert", "status", str(information)).stdout
        assert f"held until {end:%H:%M} (quiet hours)" in status and "information" in status
