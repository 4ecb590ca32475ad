"""A modem that stops answering mid-run, end to end over ptys: its work moves to the other
modem, it comes back when it answers again, and SIGTERM still stops the engine while it is
silent. (Reopening a modem silent through its probes: tests/test_modem_worker_units.py.)"""
import json
import re
import signal

import pytest
from sqlalchemy import select

from gateway.core.alerts import AlertRequest, Target
from gateway.core.contacts_import import import_contacts
from gateway.core.models import Line
from gateway.core.states import Channel
from modem.simulator.harness import SimulatorProcess
from tests.engine_harness import (allerta, contacts_csv, engine_config, flagged, services_for, start_engine, states,
                                  submits_by_destination, wait_until)

pytestmark = pytest.mark.integration


def _line_state(services, label):
    """The modem's state as the engine last wrote it, what `allerta modems` prints (None: not reported yet).
    Read in-process: polled every 0.1 s, an `allerta modems` process per poll (1.5-2 s of CPU each) starved
    the engine under test on a 2-core machine."""
    with services.sessions() as s:
        return s.scalar(select(Line.state).where(Line.channel == Channel.SMS, Line.label == label))


def test_hung_modem_work_moves_on_it_comes_back_and_sigterm_stops_the_engine(tmp_path):
    with SimulatorProcess(count=2, link_dir=tmp_path / "links", latency_median=0.05, latency_sigma=0.2,
                          report_delay=0.05) as sim:
        config_path = engine_config(tmp_path, [m["link"] for m in sim.modems], send_timeout=2, probe_interval=1)
        services = services_for(config_path)
        assert import_contacts(services.sessions, contacts_csv(60)).imported
        engine = start_engine(config_path, log_path=tmp_path / "engine.log")
        try:
            assert wait_until(lambda: _line_state(services, "m1") == "up", 60)
            sim.control({"cmd": "hang", "modem": "modem-1", "seconds": 6})
            alert_id, _ = services.alerts.create(AlertRequest(text="Allerta", target=Target(everyone=True)))
            # Everything is delivered through modem-0 while modem-1 is silent.
            assert wait_until(lambda: states(services, alert_id) == {"delivered": 60}, 120), states(services, alert_id)
            # Once it answers again it is reopened and back in rotation.
            assert wait_until(lambda: _line_state(services, "m1") == "up", 90)
            submitted = submits_by_destination(sim)
            assert set(submitted) == set(_numbers(services, alert_id))
            assert {n for n, times in submitted.items() if times > 1} <= flagged(services, alert_id)
            # Silent again, with a send on its wire: SIGTERM still ends the engine cleanly.
            second, _ = services.alerts.create(AlertRequest(text="Seconda", target=Target(everyone=True)))
            sim.control({"cmd": "hang", "modem": "modem-1"})
            assert wait_until(lambda: states(services, second).get("delivered", 0) >= 10, 60)
            engine.send_signal(signal.SIGTERM)
            assert engine.wait(timeout=110) == 0
        finally:
            if engine.poll() is None:
                engine.kill()
    log = (tmp_path / "engine.log").read_text()
    # modem-1's silence was noticed (its sends failed over), not merely waited out.
    assert re.search(r"event=failed .*channel=sms line=m1 .*state=pending", log), log[-3000:]


def _numbers(services, alert_id):
    from sqlalchemy import select
    from gateway.core.models import Delivery
    with services.sessions() as s:
        return list(s.scalars(select(Delivery.e164).where(Delivery.alert_id == alert_id)))


def test_a_modem_that_hangs_after_the_pdu_is_out_of_rotation_at_once(tmp_path):
    """The field run's hung modem: it took a PDU and went silent. That send goes to another modem flagged
    as a possible duplicate, the modem leaves the rotation on that first timeout (its queued send moves
    too, unwritten), and the alert does not wait for it."""
    with SimulatorProcess(count=3, link_dir=tmp_path / "links", latency_median=0.05, latency_sigma=0.2,
                          report_delay=0.05) as sim:
        # No health sweep during the run: on a loaded machine one reached the hung modem too, and its
        # "no answer to AT+CSQ" replaced the PDU's timeout as the line's last error.
        config_path = engine_config(tmp_path, [m["link"] for m in sim.modems], send_timeout=2, probe_interval=30,
                                    health_interval=600)
        services = services_for(config_path)
        assert import_contacts(services.sessions, contacts_csv(90)).imported
        sim.control({"cmd": "hang", "modem": "modem-1", "after_submit": True, "seconds": 60})
        alert_id, _ = services.alerts.create(AlertRequest(text="Allerta", target=Target(everyone=True)))
        engine = start_engine(config_path, "--once", log_path=tmp_path / "engine.log")
        try:
            assert engine.wait(timeout=180) == 0
        finally:
            if engine.poll() is None:
                engine.kill()
        log = (tmp_path / "engine.log").read_text()
        assert states(services, alert_id) == {"delivered": 90}
        # One timeout on m1 and no more: before, sends kept going to it until error_threshold (3) of them
        # had each waited send_timeout.
        timeouts = re.findall(r"event=failed .*line=m1 .*(?:no answer to the PDU|no > prompt)", log)
        assert len(timeouts) == 1, log[-3000:]
        (swallowed,) = sim.log_records("submit_swallowed")
        # Exactly one PDU went into the hung modem: the next sends did not queue behind it.
        after = [r for r in sim.log_records("submit") if r["modem"] == "modem-1" and r["time"] > swallowed["time"]]
        assert after == []
        assert swallowed["destination"] in flagged(services, alert_id)
        modems = {m["label"]: m for m in json.loads(allerta(config_path, "modems", "--json").stdout)}
        assert "no answer to the PDU" in (modems["m1"]["last_error"] or ""), modems["m1"]
