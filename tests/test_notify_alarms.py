"""Alarms: a modem lost longer than the threshold is told to the on-call staff by SMS through another modem."""
import pytest
from sqlalchemy import select

from gateway.alarms import AlarmMonitor, AlarmSettings
from gateway.channels import LineStatus
from gateway.models import Alert, Delivery
from gateway.models_ops import Alarm
from modem.simulator.harness import SimulatorProcess
from tests.engine_harness import engine_config, services_for, start_engine, wait_until

ON_CALL = "+393339990001"


def alarms(services):
    with services.sessions() as s:
        return s.scalars(select(Alarm).order_by(Alarm.id)).all()


@pytest.mark.integration
def test_unplugged_modem_raises_an_alarm_sms_through_the_remaining_modem(tmp_path):
    with SimulatorProcess(count=2, link_dir=tmp_path / "links", latency_median=0.02, report_delay=0.05) as sim:
        config_path = engine_config(tmp_path, [m["link"] for m in sim.modems],
                                    extra=f'[ops]\non_call = ["{ON_CALL}"]\nmodem_lost_minutes = 0.05\n')
        services = services_for(config_path)
        log_path = tmp_path / "engine.log"
        engine = start_engine(config_path, log_path=log_path)
        try:
            assert wait_until(lambda: log_path.read_text().count(" up on ") == 2, 30), log_path.read_text()
            sim.control({"cmd": "unplug", "modem": "modem-1"})
            assert wait_until(lambda: "line m1 is down" in log_path.read_text(), 20)
            # Not before the threshold (3 s)...
            assert not alarms(services)
            # ...but soon after it: stored, and sent by SMS through modem-0.
            assert wait_until(lambda: [r for r in sim.log_records("submit") if r["destination"].endswith("3339990001")],
                              30), log_path.read_text()[-2000:]
            submits = [r for r in sim.log_records("submit") if r["destination"].endswith("3339990001")]
            assert {r["modem"] for r in submits} == {"modem-0"}
            assert "ALLARME" in submits[0]["text"] and "modem m1" in submits[0]["text"]
            [alarm] = alarms(services)
            assert (alarm.kind, alarm.subject, alarm.cleared_at) == ("modem_lost", "m1", None)
            with services.sessions() as s:
                alert = s.get(Alert, alarm.alert_id)
                assert alert.priority and alert.created_by == "alarm"
                assert s.scalars(select(Delivery.state).where(Delivery.alert_id == alert.id)).all() in (
                    ["sent"], ["delivered"])
            # Plugged back: the alarm clears, and no second SMS was sent meanwhile.
            sim.control({"cmd": "plug", "modem": "modem-1"})
            assert wait_until(lambda: alarms(services)[0].cleared_at is not None, 30)
            assert len([r for r in sim.log_records("submit") if r["destination"].endswith("3339990001")]) == 1
            assert ON_CALL not in log_path.read_text()
        finally:
            engine.terminate()
            assert engine.wait(timeout=30) == 0


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_sim_near_its_daily_cap_and_modem_lost_threshold(services):
    services.store.record_line_statuses([LineStatus(channel="sms", label="m0", state="up", sent_today=950,
                                                 daily_cap=1000)])
    services.store.record_line_statuses([LineStatus(channel="sms", label="m1", state="down", last_error="port gone",
                                                 daily_cap=1000)])
    services.store.record_line_statuses([LineStatus(channel="sms", label="old", state="down")])  # not configured
    clock = Clock()
    monitor = AlarmMonitor(services.sessions, services.alerts,
                           AlarmSettings(comune="Fiumicino", on_call=(ON_CALL,), modem_lost_seconds=60,
                                         modems=frozenset({"m0", "m1"})), clock=clock)
    [cap] = monitor.check()
    clock.now += 59
    assert monitor.check() == []
    clock.now += 2
    [lost] = monitor.check()
    assert monitor.check() == []          # raised once
    by_id = {a.id: a for a in alarms(services)}
    assert by_id[cap].kind == "sim_cap" and "950/1000" in by_id[cap].message
    assert by_id[lost].kind == "modem_lost" and "port gone" in by_id[lost].message
    # Each went to the on-call number as a priority SMS alert.
    with services.sessions() as s:
        texts = [s.get(Alert, by_id[i].alert_id).text for i in (cap, lost)]
    assert all(t.startswith("ALLARME Allerta Fiumicino:") for t in texts)
    # A new day (sent_today 0) clears the cap alarm.
    services.store.record_line_statuses([LineStatus(channel="sms", label="m0", state="up", sent_today=0, daily_cap=1000)])
    monitor.check()
    assert [a.kind for a in alarms(services) if a.cleared_at is None] == ["modem_lost"]
