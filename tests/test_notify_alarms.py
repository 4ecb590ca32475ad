"""Alarms: a modem lost longer than the threshold is told to the on-call staff by SMS through another modem."""
import pytest
from sqlalchemy import select

from gateway.core.alarms import AlarmMonitor, AlarmSettings
from gateway.core.channels import LineStatus
from gateway.core.models import Alert, Delivery
from gateway.core.models_ops import Alarm
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


def _calls_on(services, trunk, causes):
    """Voice attempts ended on ``trunk`` with these Q.850 causes, oldest first."""
    from gateway.core.db import utcnow
    from gateway.core.models import Attempt
    with services.sessions.begin() as s:
        delivery_id = s.scalars(select(Delivery.id)).first()
        s.add_all(Attempt(delivery_id=delivery_id, channel="voice", line=trunk, outcome="failed",
                          cause=None if cause is None else str(cause), ended_at=utcnow()) for cause in causes)


def test_trunk_side_failures_in_a_row_raise_a_trunk_alarm_cleared_by_a_call_that_gets_through(contacts, tmp_path):
    from gateway.core.alerts import AlertRequest, Target
    services = contacts
    services.alerts.create(AlertRequest(text="Prova", channels=("voice",), target=Target(everyone=True),
                                        audio_path=str(tmp_path / "msg"), audio_seconds=5.0))
    monitor = AlarmMonitor(services.sessions, services.alerts,
                           AlarmSettings(comune="Fiumicino", on_call=(ON_CALL,), trunk_failures=5,
                                         trunks=frozenset({"e1", "dongle"})), clock=Clock())
    # Four network failures, a busy callee in between, then four more: never five in a row.
    _calls_on(services, "e1", [34, 38, 41, 42, 17, 34, 34, 41, 42])
    # A call the AMI refused (no cause) says nothing about the network and breaks no run.
    _calls_on(services, "e1", [None])
    _calls_on(services, "dongle", [34, 34, 34, 34, 34])   # another trunk: its own count
    [dongle] = monitor.check()
    assert monitor.check() == []
    _calls_on(services, "e1", [38])                        # the fifth in a row
    [e1] = monitor.check()
    assert monitor.check() == []                           # raised once
    by_id = {a.id: a for a in alarms(services)}
    assert (by_id[e1].kind, by_id[e1].subject) == ("trunk_failing", "e1")
    assert "34, 38, 41, 42" in by_id[e1].message
    assert (by_id[dongle].kind, by_id[dongle].subject) == ("trunk_failing", "dongle")
    with services.sessions() as s:
        assert s.get(Alert, by_id[e1].alert_id).text.startswith("ALLARME Allerta Fiumicino: linea e1")
    # A call that got through (answered, normal clearing) clears the trunk's alarm only.
    _calls_on(services, "e1", [16])
    monitor.check()
    assert [(a.subject, a.cleared_at is None) for a in alarms(services)] == [("dongle", True), ("e1", False)]


def test_trunk_side_causes_agree_with_the_voice_channel():
    from asterisk.outcomes import TRUNK_SIDE_CAUSES as VOICE_TRUNK_SIDE
    from gateway.core.alarms import TRUNK_SIDE_CAUSES
    assert TRUNK_SIDE_CAUSES == {str(cause) for cause in VOICE_TRUNK_SIDE}


def test_trunk_failures_threshold_comes_from_the_configuration(tmp_path):
    from gateway.core.config import load_config
    from tests.support import write_config
    config = load_config(write_config(tmp_path, "[ops]\ntrunk_failures = 3\n"))
    assert AlarmSettings.from_config(config).trunk_failures == 3


def test_the_alarm_and_self_test_checks_leave_the_event_loop_free(services):
    """A check waiting for the database (a backup holding it) must not stall the modems' and the AMI
    link's callbacks, which share the event loop: the checks run in a thread."""
    import asyncio
    import threading

    from gateway.core.selftest import SelfTestMonitor, SelfTestSettings

    alarm = AlarmMonitor(services.sessions, services.alerts, AlarmSettings(comune="Fiumicino", on_call=(ON_CALL,)))
    selftest = SelfTestMonitor(services.sessions, services.alerts,
                               SelfTestSettings.from_config(services.config), alarm)
    for monitor, name in ((alarm, "check"), (selftest, "judge")):
        gate, entered, returned = threading.Event(), threading.Event(), []

        def held(*_args, gate=gate, entered=entered, returned=returned):
            entered.set()
            gate.wait(3)           # the database is busy
            returned.append(True)
            return []

        setattr(monitor, name, held)

        async def scenario(monitor=monitor, gate=gate, entered=entered, returned=returned):
            task = asyncio.create_task(monitor.run())
            await asyncio.to_thread(entered.wait, 3)
            # Back on the loop while the check is still waiting: it did not hold the loop.
            still_waiting = not returned
            gate.set()
            task.cancel()
            return still_waiting

        assert asyncio.run(scenario()), name
