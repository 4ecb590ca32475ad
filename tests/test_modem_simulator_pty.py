"""The simulator over real ptys, driven by python-gsmmodem-new and pyserial."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
import serial
from gsmmodem.modem import GsmModem

from modem.simulator.harness import SimulatorProcess
from modem.simulator.profiles import luhn_valid

pytestmark = pytest.mark.integration

FAST = dict(latency_median=0.05, latency_sigma=0, report_delay=0.3, seed=11)


@pytest.fixture(scope="module")
def sim():
    with SimulatorProcess(count=3, profile="generic,huawei,sim800", **FAST) as process:
        yield process


@pytest.fixture(autouse=True)
def _reset(sim):
    assert sim.control({"cmd": "reset"})["ok"]
    yield


class Collector:
    def __init__(self):
        self.items, self.event = [], threading.Event()

    def __call__(self, item):
        self.items.append(item)
        self.event.set()


def stored(sim, name: str) -> dict:
    return next(m for m in sim.control({"cmd": "status"})["modems"] if m["modem"] == name)["stored"]


def connect(port, **callbacks) -> GsmModem:
    modem = GsmModem(port, 115200, **callbacks)
    modem.connect()
    return modem


def test_ready_lines_describe_every_modem(sim):
    assert [m["modem"] for m in sim.modems] == ["modem-0", "modem-1", "modem-2"]
    assert [m["profile"] for m in sim.modems] == ["generic", "huawei", "sim800"]
    for record in sim.modems:
        assert os.path.exists(record["port"]) and luhn_valid(record["imei"])


@pytest.mark.parametrize("name, manufacturer", [
    ("modem-0", "Allerta"), ("modem-1", "huawei"), ("modem-2", "SIMCOM_Ltd")])
def test_gsmmodem_connects_sends_and_gets_the_status_report(sim, name, manufacturer):
    reports = Collector()
    modem = connect(sim.port(name), smsStatusReportCallback=reports)
    try:
        assert modem.manufacturer == manufacturer
        assert modem.imei == next(m["imei"] for m in sim.modems if m["modem"] == name)
        text = "Allerta protezione civile: evacuare via Roma " * 4  # two concatenated parts
        sent = modem.sendSms("+393331234567", text)
        # The module's simulator is shared: wait for this modem's two records, not any two. The
        # simulator writes +CMGS just before it logs the event, so sendSms may return first.
        deadline = time.monotonic() + 5
        while len(mine := [r for r in sim.log_records("submit") if r["modem"] == name]) < 2 \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [(r["part"], r["parts"]) for r in mine] == [(1, 2), (2, 2)]
        assert "".join(r["text"] for r in mine) == text
        assert mine[-1]["reference"] == sent.reference
        assert mine[0]["concat_ref"] == mine[1]["concat_ref"] is not None
        assert all(r["port"] == sim.port(name) and r["event"] == "submit" for r in mine)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and sent.reference not in [r.reference for r in reports.items]:
            reports.event.wait(0.2)
        assert sent.reference in [r.reference for r in reports.items]
        assert all(r.deliveryStatus == 0 for r in reports.items)
    finally:
        modem.close()


def test_incoming_sms_reaches_the_callback(sim):
    received = Collector()
    modem = connect(sim.port("modem-0"), smsReceivedCallbackFunc=received)
    try:
        reply = sim.control({"cmd": "incoming_sms", "modem": "modem-0",
                             "sender": "+393331234567", "text": "SI, arrivo"})
        assert reply["ok"], reply
        assert received.event.wait(5), "smsReceivedCallback was not called"
        sms = received.items[0]
        assert (sms.number, sms.text) == ("+393331234567", "SI, arrivo")
        assert sim.wait_for_records("incoming")[0]["text"] == "SI, arrivo"
        # The library deletes the SMS after its callback, on its notification thread: let that
        # finish before the port closes (and see that its AT+CMGD worked on the simulated SIM).
        for thread in threading.enumerate():
            if "HandleModemNotification" in thread.name:
                thread.join(10)
        assert sum(stored(sim, "modem-0").values()) == 0, stored(sim, "modem-0")
    finally:
        modem.close()


def test_injected_cms_error_reaches_the_client(sim):
    assert sim.control({"cmd": "cms_errors", "modem": "modem-0", "rate": 1.0, "code": 42})["ok"]
    modem = connect(sim.port("modem-0"))
    try:
        with pytest.raises(Exception) as failure:
            modem.sendSms("+393331234567", "prova")
        assert getattr(failure.value, "code", None) == 42
    finally:
        modem.close()


def test_unplug_and_replug_give_a_new_pty_and_the_same_imei(tmp_path):
    links = tmp_path / "links"
    with SimulatorProcess(count=2, link_dir=links, **FAST) as sim:
        link = links / "modem-1"
        old_port = os.readlink(link)
        client = serial.Serial(str(link), 115200, timeout=0.5, rtscts=True, dsrdtr=True)
        try:
            client.write(b"AT+CGSN\r")
            time.sleep(0.2)
            imei_before = client.read(200).split(b"\r\n")[1].decode()
            assert sim.control({"cmd": "unplug", "modem": "modem-1", "seconds": 1.0})["ok"]
            time.sleep(0.2)
            assert not link.exists()
            with pytest.raises(serial.SerialException):
                client.read(10)  # EIO on the vanished pty
            # The client has not closed yet, so the old /dev/pts number stays taken (as a USB
            # tty node does while open) and the replugged modem must appear under another one.
            deadline = time.monotonic() + 5
            while not link.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert link.exists(), "not replugged"
            assert os.readlink(link) != old_port
        finally:
            client.close()
        new_port = os.readlink(link)
        status = {m["modem"]: m for m in sim.control({"cmd": "status"})["modems"]}
        assert status["modem-1"]["port"] == new_port and status["modem-1"]["plug_count"] == 2
        with serial.Serial(str(link), 115200, timeout=0.5) as again:
            again.write(b"AT+CGSN\r")
            time.sleep(0.2)
            reply = again.read(200)
        assert reply.startswith(b"AT+CGSN\r"), "echo is back on after power-on"
        assert reply.split(b"\r\n")[1].decode() == imei_before == status["modem-1"]["imei"]


def test_control_status_and_errors(sim):
    status = sim.control({"cmd": "status"})
    assert status["ok"] and len(status["modems"]) == 3
    assert {"submits", "cms_errors", "registered", "hung", "port", "imei"} <= set(status["modems"][0])
    assert sim.control({"cmd": "hang", "modem": "modem-9"}) == {"ok": False, "error": "no modem named 'modem-9'"}
    assert not sim.control({"cmd": "fly"})["ok"]


def test_hang_via_control_times_out_the_client_then_recovers(sim):
    assert sim.control({"cmd": "hang", "modem": "modem-0", "seconds": 1.0})["ok"]
    with serial.Serial(sim.port("modem-0"), 115200, timeout=0.5) as client:
        client.write(b"AT\r")
        assert client.read(20) == b""
        time.sleep(0.8)
        client.write(b"AT\r")
        time.sleep(0.2)
        assert client.read(20) == b"AT\r\r\nOK\r\n"


def test_deregistration_via_control(sim):
    assert sim.control({"cmd": "register", "modem": "modem-2", "registered": False})["ok"]
    with serial.Serial(sim.port("modem-2"), 115200, timeout=0.5) as client:
        client.write(b"ATE0;+CMEE=1\r")
        time.sleep(0.1)
        client.read(100)
        client.write(b"AT+CREG?\r")
        time.sleep(0.2)
        assert b"+CREG: 0,2" in client.read(100)


def test_gsmmodem_unlocks_the_sim_pin():
    with SimulatorProcess(count=1, pin="4321", **FAST) as sim:
        modem = GsmModem(sim.port(), 115200)
        modem.connect(pin="4321")
        try:
            assert modem.write("AT+CPIN?")[0] == "+CPIN: READY"
        finally:
            modem.close()


def test_unplug_reaches_gsmmodem_fatal_error_callback():
    """What the engine driver sees on unplug: a SerialException from the read thread."""
    with SimulatorProcess(count=1, **FAST) as sim:
        fatal = Collector()
        modem = connect(sim.port(), fatalErrorCallbackFunc=fatal)
        try:
            assert sim.control({"cmd": "unplug", "modem": "modem-0", "seconds": 0.5})["ok"]
            assert fatal.event.wait(5), "python-gsmmodem did not notice the unplug"
            assert isinstance(fatal.items[0], serial.SerialException)
            # pyserial reads EOF on the hung-up pty, as on a vanished ttyUSB
            assert "returned no data" in str(fatal.items[0]) or "Input/output" in str(fatal.items[0])
        finally:
            modem.alive = False
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            status = sim.control({"cmd": "status"})["modems"][0]
            if status["plugged"]:
                break
            time.sleep(0.05)
        assert status["plugged"] and status["plug_count"] == 2


def test_trace_records_every_byte_each_way(tmp_path):
    trace = tmp_path / "trace.txt"
    with SimulatorProcess(count=2, trace=trace, **FAST) as process:
        with serial.Serial(process.port("modem-1"), 115200, timeout=1) as port:
            port.write(b"ATE0\r")
            assert b"OK" in port.read_until(b"OK\r\n")
            port.write(b"AT+CGSN\r")
            assert b"OK" in port.read_until(b"OK\r\n")
        imei = process.modems[1]["imei"]
    lines = trace.read_text().splitlines()
    # "<time> <modem> <direction> <bytes, escaped>", in the order they crossed the pty.
    parsed = [line.split(" ", 3) for line in lines]
    assert all(len(p) == 4 and p[0].startswith("20") and p[1] == "modem-1" and p[2] in "<>" for p in parsed)
    client = "".join(p[3] for p in parsed if p[2] == "<")
    modem = "".join(p[3] for p in parsed if p[2] == ">")
    assert client == "ATE0\\rAT+CGSN\\r"
    assert "OK\\r\\n" in modem and imei in modem


@pytest.mark.parametrize("option", ["--trace", "--log"])
def test_a_log_file_that_cannot_be_written_stops_the_start_naming_the_option(tmp_path, option):
    target = tmp_path / "missing-dir" / "file.txt"
    result = subprocess.run([sys.executable, "-m", "modem.simulator", "--count", "1", option, str(target),
                             "--link-dir", str(tmp_path / "links")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert f"{option} {target}: No such file or directory" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""                      # never said it was ready
    assert not (tmp_path / "links" / "modem-0").exists()
