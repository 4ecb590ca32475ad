"""The scheduled self-test: a test SMS and a test call to the staff, judged, recorded, alarmed when it fails."""
import asyncio
import datetime as dt
import json

import pytest
from sqlalchemy import select, update

from asterisk.pbx_simulator.harness import PbxSimulatorProcess
from gateway.core.alarms import AlarmMonitor, AlarmSettings
from gateway.core.models import Alert, Delivery
from gateway.core.models_ops import Alarm, SelfTestRun
from gateway.core.selftest import TEXT, SelfTestMonitor, SelfTestSettings
from modem.simulator.harness import SimulatorProcess
from tests.engine_harness import allerta, engine_config, services_for, start_engine, wait_until

STAFF_MOBILE, STAFF_LANDLINE, ON_CALL = "+393331112222", "+390665000001", "+393339990001"
SECRET = "s3cret-for-tests"


def runs(services):
    with services.sessions() as s:
        return s.scalars(select(SelfTestRun).order_by(SelfTestRun.id)).all()


def open_alarms(services):
    with services.sessions() as s:
        return s.scalars(select(Alarm).where(Alarm.cleared_at.is_(None))).all()


def set_states(services, alert_id, state):
    with services.sessions.begin() as s:
        s.execute(update(Delivery).where(Delivery.alert_id == alert_id).values(state=state))


def age(services, delta, run_id=None):
    """Move runs' start back in time (SQLite cannot subtract intervals in SQL)."""
    with services.sessions.begin() as s:
        for run in s.scalars(select(SelfTestRun)):
            if run_id is None or run.id == run_id:
                run.started_at -= delta


def test_schedule_verdicts_alarm_and_clear(services):
    settings = SelfTestSettings(numbers=(STAFF_MOBILE,), interval=dt.timedelta(hours=1),
                                timeout=dt.timedelta(minutes=5), channels=("sms",))
    alarms = AlarmMonitor(services.sessions, services.alerts, AlarmSettings(comune="Fiumicino", on_call=(ON_CALL,)))
    monitor = SelfTestMonitor(services.sessions, services.alerts, settings, alarms)
    assert asyncio.run(monitor.check()) == []            # started, not judged yet
    [run] = runs(services)
    assert run.result is None and run.trigger == "schedule"
    with services.sessions() as s:
        alert = s.get(Alert, run.alert_id)
        assert (alert.drill, alert.priority, alert.created_by) == (True, False, "selftest")
        assert alert.sms_text == "[ESERCITAZIONE] " + TEXT
        assert s.scalars(select(Delivery.e164).where(Delivery.alert_id == alert.id)).all() == [STAFF_MOBILE]
    assert not monitor.due()                             # one run at a time
    set_states(services, run.alert_id, "delivered")
    assert asyncio.run(monitor.check()) == [run.id]      # passed before its timeout
    [run] = runs(services)
    assert run.result == "ok" and run.finished_at is not None
    assert json.loads(run.details)["channels"]["sms"] == {"total": 1, "reached": 1, "by_state": {"delivered": 1}}
    assert not monitor.due()                             # the last one is recent

    # An hour later: the next one; its SMS fails and the timeout elapses.
    age(services, dt.timedelta(hours=1))
    asyncio.run(monitor.check())
    second = runs(services)[-1]
    set_states(services, second.alert_id, "failed")
    assert asyncio.run(monitor.check()) == []            # a failure waits for the timeout
    age(services, dt.timedelta(minutes=5), second.id)
    assert asyncio.run(monitor.check()) == [second.id]
    second = runs(services)[-1]
    assert second.result == "failed"
    assert json.loads(second.details)["not_reached"][0]["number"] == STAFF_MOBILE
    [alarm] = open_alarms(services)
    assert (alarm.kind, alarm.subject) == ("selftest_failed", "selftest")
    assert "SMS consegnati 0/1" in alarm.message
    with services.sessions() as s:
        sms = s.get(Alert, alarm.alert_id)
        assert sms.priority and sms.created_by == "alarm" and sms.text.startswith("ALLARME Allerta Fiumicino:")
        assert s.scalars(select(Delivery.e164).where(Delivery.alert_id == sms.id)).all() == [ON_CALL]

    # The next run that passes clears the alarm (once the alarm SMS, a real alert, has gone out).
    assert not monitor.due()
    set_states(services, alarm.alert_id, "delivered")
    age(services, dt.timedelta(hours=2))
    asyncio.run(monitor.check())
    set_states(services, runs(services)[-1].alert_id, "delivered")
    asyncio.run(monitor.check())
    assert runs(services)[-1].result == "ok" and open_alarms(services) == []


def test_not_started_while_a_real_alert_is_going_out_and_failed_start_is_alarmed(services):
    from gateway.core.alerts import AlertRequest, Target
    services.alerts.create(AlertRequest(text="Allerta vera", target=Target(numbers=("+393330000001",))))
    alarms = AlarmMonitor(services.sessions, services.alerts, AlarmSettings(comune="Fiumicino"))
    settings = SelfTestSettings(numbers=(STAFF_LANDLINE,), channels=("sms",))   # a landline gets no SMS
    monitor = SelfTestMonitor(services.sessions, services.alerts, settings, alarms)
    assert not monitor.due()
    with services.sessions.begin() as s:
        s.execute(update(Delivery).values(state="delivered"))
    assert monitor.due()
    [run_id] = asyncio.run(monitor.check())
    [run] = runs(services)
    assert run.id == run_id and run.result == "failed" and run.alert_id is None
    assert "no reachable recipient" in json.loads(run.details)["error"]
    [alarm] = open_alarms(services)
    assert alarm.kind == "selftest_failed" and "no reachable recipient" in alarm.message


@pytest.mark.integration
def test_cli_without_staff_numbers_is_a_clear_error(config_path):
    result = allerta(config_path, "selftest", check=False)
    assert result.returncode == 1 and "[ops] selftest_numbers" in result.stderr


def voice_and_sms_config(tmp_path, pbx, modem_link, timeout_minutes):
    return engine_config(tmp_path, [modem_link], extra=f"""[asterisk]
enabled = true
port = {pbx.port}
secret = "{SECRET}"
[voice]
interval = 1
[ops]
on_call = ["{ON_CALL}"]
selftest_numbers = ["{STAFF_MOBILE}", "{STAFF_LANDLINE}"]
selftest_timeout_minutes = {timeout_minutes}
selftest_at = ""
[[trunks]]
name = "trunk1"
dial = "PJSIP/{{number}}@trunk1"
max_channels = 4
calls_per_second = 50
""")


@pytest.mark.integration
def test_scheduled_self_test_passes_and_allerta_selftest_waits_for_its_verdict(tmp_path):
    population = {"seed": 1, "answer": 1.0, "busy": 0, "no_answer": 0, "invalid_number": 0, "voicemail": 0,
                  "congestion": 0, "press_1": 1.0, "ring_seconds": [2, 4], "listen_seconds": [10, 20]}
    with PbxSimulatorProcess(tmp_path / "pbx", trunks={"trunk1": 4}, population=population, time_scale=0.05,
                             secret=SECRET) as pbx, \
            SimulatorProcess(count=1, link_dir=tmp_path / "links", latency_median=0.02, report_delay=0.05) as sim:
        config_path = voice_and_sms_config(tmp_path, pbx, sim.modems[0]["link"], timeout_minutes=0.5)
        services = services_for(config_path)
        log_path = tmp_path / "engine.log"
        engine = start_engine(config_path, log_path=log_path)
        try:
            # Without selftest_at the engine starts the first self-test at once (none has run yet)
            # and records it ok.
            assert wait_until(lambda: [r.result for r in runs(services)] == ["ok"], 30), log_path.read_text()[-3000:]
            [run] = runs(services)
            details = json.loads(run.details)
            assert details["channels"]["sms"]["reached"] == 1
            assert details["channels"]["voice"] == {"total": 2, "reached": 2, "by_state": {"confirmed": 2}}
            assert [r["destination"] for r in sim.log_records("submit")] == [STAFF_MOBILE]
            assert "ESERCITAZIONE" in sim.log_records("submit")[0]["text"]
            assert sorted(c["number"].lstrip("+") for c in pbx.calls()) == sorted(
                n.lstrip("+") for n in (STAFF_MOBILE, STAFF_LANDLINE))
            with services.sessions() as s:
                audio = s.get(Alert, run.alert_id).audio_path
            assert (tmp_path / "data" / "sounds").joinpath(audio.rsplit("/", 1)[-1] + ".wav").stat().st_size > 0
            # By hand, waiting for the verdict.
            result = allerta(config_path, "selftest", "--wait", timeout=60)
            assert ": ok (" in result.stdout, result.stdout
            assert [(r.trigger, r.result) for r in runs(services)] == [("schedule", "ok"), ("cli", "ok")]
            assert open_alarms(services) == []
            assert STAFF_MOBILE not in log_path.read_text()
        finally:
            engine.terminate()
            assert engine.wait(timeout=30) == 0


@pytest.mark.integration
def test_failed_self_test_is_recorded_and_alarmed_through_the_modem_that_works(tmp_path):
    with SimulatorProcess(count=2, link_dir=tmp_path / "links", latency_median=0.02, report_delay=0.05) as sim:
        config_path = engine_config(tmp_path, [m["link"] for m in sim.modems], extra=f"""[ops]
on_call = ["{ON_CALL}"]
selftest_numbers = ["{STAFF_MOBILE}"]
selftest_timeout_minutes = 0.3
selftest_at = ""
""")
        services = services_for(config_path)
        # The staff SMS can only go out through modem-1, whose SIM the network refuses (CMS 21, permanent).
        sim.control({"cmd": "unplug", "modem": "modem-0"})
        sim.control({"cmd": "cms_errors", "modem": "modem-1", "rate": 1.0, "code": 21})
        log_path = tmp_path / "engine.log"
        engine = start_engine(config_path, log_path=log_path)
        try:
            def staff_failed():
                with services.sessions() as s:
                    return s.scalar(select(Delivery.state).where(Delivery.e164 == STAFF_MOBILE)) == "failed"
            assert wait_until(staff_failed, 20), log_path.read_text()[-3000:]
            assert runs(services)[0].result is None          # judged at its timeout (18 s)
            # Before the verdict, the barred SIM is pulled out and modem-0 comes back.
            sim.control({"cmd": "unplug", "modem": "modem-1"})
            sim.control({"cmd": "plug", "modem": "modem-0"})
            assert wait_until(lambda: [r.result for r in runs(services)] == ["failed"], 30), \
                log_path.read_text()[-3000:]
            [run] = runs(services)
            details = json.loads(run.details)
            assert details["channels"]["sms"] == {"total": 1, "reached": 0, "by_state": {"failed": 1}}
            assert "21" in details["not_reached"][0]["error"]
            # Raised just after the verdict is recorded (SelfTestMonitor._verdict): waited for, not raced.
            assert wait_until(lambda: open_alarms(services), 20), log_path.read_text()[-3000:]
            [alarm] = open_alarms(services)
            assert (alarm.kind, alarm.subject) == ("selftest_failed", "selftest")
            # The alarm SMS reached the on-call number through modem-0.
            assert wait_until(lambda: [r for r in sim.log_records("submit") if r["destination"] == ON_CALL], 20)
            [submit] = [r for r in sim.log_records("submit") if r["destination"] == ON_CALL]
            assert submit["modem"] == "modem-0"
            assert "ALLARME" in submit["text"] and "autotest" in submit["text"]
            assert [r for r in sim.log_records("submit") if r["destination"] == STAFF_MOBILE] == []
            assert STAFF_MOBILE not in log_path.read_text() and ON_CALL not in log_path.read_text()
        finally:
            engine.terminate()
            assert engine.wait(timeout=30) == 0


def test_open_alarms_are_shown_on_the_dashboard(app, panel):
    from gateway.core.db import utcnow
    from tests.web_support import client_for
    with panel.sessions.begin() as s:
        s.add_all([Alarm(kind="selftest_failed", subject="selftest", message="autotest 3 fallito: SMS consegnati 0/1"),
                   Alarm(kind="modem_lost", subject="m1", message="modem m1 down da 6 min", cleared_at=utcnow())])
    viewer = client_for(app, "viewer")
    html = viewer.get("/").get_data(as_text=True)
    assert "Allarmi" in html and "autotest 3 fallito: SMS consegnati 0/1" in html
    assert "modem m1 down" not in html                    # cleared
    [alarm] = viewer.get("/dashboard.json").get_json()["alarms"]
    assert (alarm["kind"], alarm["subject"]) == ("selftest_failed", "selftest")
