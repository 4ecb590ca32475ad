"""The engine end to end: `allerta run` drives simulated modems over real pseudo-terminals."""
import json

import pytest
from sqlalchemy import select

from gateway.core.alerts import AlertRequest, Target
from gateway.core.contacts_import import import_contacts
from gateway.core.models import InboundSms
from modem.simulator.harness import SimulatorProcess
from tests.engine_harness import (allerta, contacts_csv, engine_config, flagged, kill9, services_for, start_engine,
                                  states, submits_by_destination, undelivered_by_line, wait_until)

pytestmark = pytest.mark.integration

FAST = dict(latency_median=0.02, latency_sigma=0.3, report_delay=0.05)


def setup_alert(tmp_path, sim, recipients, text="Allerta: salire ai piani alti", **config):
    links = [m["link"] for m in sim.modems]
    config_path = engine_config(tmp_path, links, **config)
    services = services_for(config_path)
    report = import_contacts(services.sessions, contacts_csv(recipients))
    assert report.imported and not report.rejected
    alert_id, _ = services.alerts.create(AlertRequest(text=text, target=Target(zones=("Isola Sacra",))))
    return config_path, services, alert_id


def test_500_recipients_over_4_modems_each_delivered_once(tmp_path):
    with SimulatorProcess(count=4, profile="generic,huawei,sim800,generic", link_dir=tmp_path / "links",
                          **FAST) as sim:
        config_path, services, alert_id = setup_alert(tmp_path, sim, 500)
        sim.control({"cmd": "incoming_sms", "modem": "modem-2", "sender": "+393331234567", "text": "ISCRIVI"})
        allerta(config_path, "run", "--once", timeout=300)
        assert states(services, alert_id) == {"delivered": 500}
        submitted = submits_by_destination(sim)
        assert len(submitted) == 500 and set(submitted.values()) == {1}
        assert len(sim.log_records("status_report")) == 500
        assert not [r for r in sim.log_records("status_report") if r.get("dropped")]
        # Every modem took a share of the work.
        assert {r["modem"] for r in sim.log_records("submit")} == {f"modem-{i}" for i in range(4)}
        with services.sessions() as s:
            inbound = s.scalars(select(InboundSms)).all()
        assert [(m.sender, m.text, m.line) for m in inbound] == [("+393331234567", "ISCRIVI", "m2")]
        status = json.loads(allerta(config_path, "alert", "status", str(alert_id), "--json").stdout)
        assert status["by_state"]["delivered"] == 500 and status["eta_seconds"] == 0
        assert sum(line["segments_delivered"] for line in status["lines"].values()) == 500
        modems = json.loads(allerta(config_path, "modems", "--json").stdout)
        assert {m["imei"] for m in modems} == {m["imei"] for m in sim.modems}
        # The engine has exited: its lines say so, with the health they last had.
        assert all(m["state"] == "stopped" and m["registration"] == "home" and m["sim"] == "READY" for m in modems)
        assert all(m["smsc"] and m["smsc"].startswith("+") for m in modems), modems


def test_unplugged_modem_and_cms_38_still_deliver_everything_once(tmp_path):
    with SimulatorProcess(count=4, link_dir=tmp_path / "links", **FAST) as sim:
        config_path, services, alert_id = setup_alert(tmp_path, sim, 500)
        sim.control({"cmd": "cms_errors", "modem": "modem-1", "rate": 0.2, "code": 38})
        engine = start_engine(config_path, "--once", log_path=tmp_path / "engine.log")
        try:
            assert wait_until(lambda: len(sim.log_records("submit")) >= 100, 60)
            sim.control({"cmd": "unplug", "modem": "modem-3", "seconds": 2.0})
            assert engine.wait(timeout=300) == 0, (tmp_path / "engine.log").read_text()[-3000:]
        finally:
            if engine.poll() is None:
                engine.kill()
        log = (tmp_path / "engine.log").read_text()
        assert "line m3 is down" in log and "+CMS ERROR 38" in log
        assert log.count("modem m3 up on") == 2   # reopened when the port came back, same IMEI
        # No status report was dropped by a full report memory (the modems' SR holds 20).
        assert not [r for r in sim.log_records("status_report") if r.get("dropped")]
        assert states(services, alert_id) == {"delivered": 500}, (
            undelivered_by_line(services, alert_id), [(m["modem"], m["stored"]) for m in
                                                      sim.control({"cmd": "status"})["modems"]], log[-3000:])
        submitted = submits_by_destination(sim)
        twice = {number for number, count in submitted.items() if count > 1}
        assert len(submitted) == 500
        # Only a message on the wire when the port vanished may go twice, and it is flagged.
        assert twice <= flagged(services, alert_id)
        assert len(twice) <= 1


def test_kill_9_mid_run_loses_nothing(tmp_path):
    with SimulatorProcess(count=4, link_dir=tmp_path / "links", latency_median=0.05, latency_sigma=0.2,
                          report_delay=0.05) as sim:
        config_path, services, alert_id = setup_alert(tmp_path, sim, 400)
        engine = start_engine(config_path, log_path=tmp_path / "engine1.log")
        try:
            assert wait_until(lambda: len(sim.log_records("submit")) >= 120, 60)
        finally:
            kill9(engine)
        first_run = submits_by_destination(sim)
        assert 0 < len(first_run) < 400
        in_flight = states(services, alert_id)["submitting"]
        allerta(config_path, "run", "--once", timeout=300)
        assert states(services, alert_id) == {"delivered": 400}
        submitted = submits_by_destination(sim)
        assert len(submitted) == 400
        twice = {number for number, count in submitted.items() if count > 1}
        assert twice <= flagged(services, alert_id)
        # Those in flight are resent flagged, except the ones whose +CMGS answer reached the outcome
        # journal before the kill: recorded at the restart, not resent.
        assert len(flagged(services, alert_id)) <= in_flight


def test_multipart_ucs2_arrives_as_referenced_parts(tmp_path):
    text = ("Comune di Fiumicino — allerta rossa. Evacuare Isola Sacra. "
            "Romeno: Evacuați zona. Arabo: إخلاء المنطقة فوراً. Ucraino: Евакуація.")
    with SimulatorProcess(count=2, link_dir=tmp_path / "links", **FAST) as sim:
        config_path, services, alert_id = setup_alert(tmp_path, sim, 3, text=text)
        allerta(config_path, "run", "--once", timeout=120)
        assert states(services, alert_id) == {"delivered": 3}
        parts = sim.log_records("submit")
        by_destination = {}
        for record in parts:
            by_destination.setdefault(record["destination"], []).append(record)
        assert len(by_destination) == 3
        refs = set()
        for destination, records in by_destination.items():
            records.sort(key=lambda r: r["part"])
            assert [r["part"] for r in records] == [1, 2]
            assert {r["parts"] for r in records} == {2}
            assert {r["encoding"] for r in records} == {"ucs2"}
            assert len({r["concat_ref"] for r in records}) == 1 and records[0]["concat_ref"] is not None
            assert "".join(r["text"] for r in records) == text
            refs.add((records[0]["modem"], records[0]["concat_ref"]))
        assert len(refs) == 3   # consecutive long messages never share a concat reference


def test_unreachable_port_is_a_clear_error_and_changes_nothing(tmp_path):
    config_path = engine_config(tmp_path, [str(tmp_path / "no-such-tty")], report_timeout=2)
    services = services_for(config_path)
    import_contacts(services.sessions, contacts_csv(3))
    alert_id, _ = services.alerts.create(AlertRequest(text="x", target=Target(everyone=True)))
    result = allerta(config_path, "run", "--once", timeout=60, check=False)
    assert result.returncode == 1
    assert "line m0 is down" in result.stdout and "no-such-tty" in result.stdout
    modems = json.loads(allerta(config_path, "modems", "--json").stdout)
    assert modems[0]["state"] == "down" and "no-such-tty" in modems[0]["last_error"]
    assert states(services, alert_id) == {"pending": 3}


def test_failing_modem_leaves_rotation_and_comes_back(tmp_path):
    with SimulatorProcess(count=2, link_dir=tmp_path / "links", **FAST) as sim:
        config_path, services, alert_id = setup_alert(tmp_path, sim, 60, probe_interval=1)
        sim.control({"cmd": "cms_errors", "modem": "modem-1", "rate": 1.0, "code": 500})
        engine = start_engine(config_path, log_path=tmp_path / "engine.log")
        try:
            assert wait_until(lambda: states(services, alert_id) == {"delivered": 60}, 120)
            log = (tmp_path / "engine.log").read_text()
            assert "modem m1 out of rotation after 3 errors: +CMS ERROR 500" in log
            modems = {m["label"]: m for m in json.loads(allerta(config_path, "modems", "--json").stdout)}
            # (Its state may already be 'up' again: the probe every second finds it registered.)
            assert "500" in modems["m1"]["last_error"] and modems["m1"]["failed_total"] >= 3
            assert modems["m0"]["sent_total"] > modems["m1"]["sent_total"]
            sim.control({"cmd": "cms_errors", "modem": "modem-1", "rate": 0.0, "code": 500})
            assert wait_until(lambda: "modem m1 back in rotation" in (tmp_path / "engine.log").read_text(), 30)
        finally:
            engine.terminate()
            assert engine.wait(timeout=30) == 0
        assert states(services, alert_id) == {"delivered": 60}


def one_modem_by_imei_on_a_glob(tmp_path, imei: str, recipients: int, extra: str = ""):
    """Config for one [[modems]] whose port is a glob over every simulated modem; an alert to send."""
    config_path = engine_config(tmp_path, [str(tmp_path / "links" / "modem-*")])
    text = config_path.read_text().replace('per_minute = 6000', f'per_minute = 6000\nimei = "{imei}"\n{extra}')
    config_path.write_text(text)
    services = services_for(config_path)
    import_contacts(services.sessions, contacts_csv(recipients))
    alert_id, _ = services.alerts.create(AlertRequest(text="x", target=Target(everyone=True)))
    return config_path, services, alert_id


def test_modem_found_by_imei_among_renamed_ports(tmp_path):
    with SimulatorProcess(count=3, link_dir=tmp_path / "links", **FAST) as sim:
        config_path, services, alert_id = one_modem_by_imei_on_a_glob(tmp_path, sim.modems[2]["imei"], 10)
        allerta(config_path, "run", "--once", timeout=120)
        assert states(services, alert_id) == {"delivered": 10}
        assert {r["modem"] for r in sim.log_records("submit")} == {"modem-2"}


def test_another_modem_on_the_glob_gets_neither_our_pin_nor_loses_its_stored_sms(tmp_path):
    """The IMEI is read before the PIN: modem-0 comes first in the glob but is not ours."""
    with SimulatorProcess(count=2, link_dir=tmp_path / "links", pin="1234", **FAST) as sim:
        sim.control({"cmd": "incoming_sms", "modem": "modem-0", "sender": "+393331234567", "text": "not yours"})
        config_path, services, alert_id = one_modem_by_imei_on_a_glob(tmp_path, sim.modems[1]["imei"], 5,
                                                                      extra='pin = "1234"')
        allerta(config_path, "run", "--once", timeout=120)
        assert states(services, alert_id) == {"delivered": 5}
        assert {r["modem"] for r in sim.log_records("submit")} == {"modem-1"}
        other = next(m for m in sim.control({"cmd": "status"})["modems"] if m["modem"] == "modem-0")
        # Its stored SMS is still there and none of ours took it...
        assert other["stored"]["SM"] == 1
        with services.sessions() as s:
            assert s.scalars(select(InboundSms)).all() == []
        # ...and it heard only our wake-up and AT+CGSN: no ATZ, no AT+CPIN="1234", no AT+CMGL.
        assert other["commands"] <= 2, other


def test_sigterm_finishes_in_flight_sends_and_stops(tmp_path):
    with SimulatorProcess(count=2, link_dir=tmp_path / "links", latency_median=0.3, latency_sigma=0.1,
                          report_delay=0.05) as sim:
        config_path, services, alert_id = setup_alert(tmp_path, sim, 100)
        engine = start_engine(config_path, log_path=tmp_path / "engine.log")
        assert wait_until(lambda: len(sim.log_records("submit")) >= 4, 60)
        engine.terminate()
        assert engine.wait(timeout=30) == 0
        final = states(services, alert_id)
        assert final["submitting"] == 0 and final["pending"] > 0   # stopped early, nothing left half-done
        # Every SMS the modems accepted is recorded as sent (or delivered): none was abandoned mid-send.
        assert final["sent"] + final["delivered"] == len(submits_by_destination(sim))
