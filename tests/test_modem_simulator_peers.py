"""Debian's SMS daemons against the simulator through real ptys: gammu-smsd (files backend) and smstools3
send SMS asking for delivery reports and must get every report, and the modem's memory must end empty.

Before, every profile kept reports in the "SR" memory: gammu-smsd 1.42 never reads it (it wrote one empty
report file per +CDSI and the memory filled), smstools3 polls the memory it reads incoming SMS from and
found nothing. Each profile now does what its model does (docs/simulators.md, "Status reports")."""
from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from modem.simulator.harness import SimulatorProcess

pytestmark = pytest.mark.integration

NUMBERS = ("+393331112221", "+393331112222")


def _tool(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is None:
        pytest.fail(f"{name} is not installed: run `apt-get install {package}` (these tests never skip)")
    return path


@contextlib.contextmanager
def _daemon(argv: list[str], output: Path):
    """Run a daemon in its own session and stop it (all its children) at the end."""
    with open(output, "w") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield process
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _wait_for(predicate, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            text = log.read_text(errors="replace")[-4000:] if log.exists() else "(no log)"
            pytest.fail(f"{what} within {timeout:.0f} s; daemon log ends with:\n{text}")
        time.sleep(0.2)


def _stored(sim) -> dict:
    return sim.control({"cmd": "status"})["modems"][0]["stored"]


@pytest.fixture
def simulator(request):
    with SimulatorProcess(count=1, profile=request.param, latency_median=0.1, latency_sigma=0.1,
                          report_delay=0.3, seed=7) as sim:
        yield sim


@pytest.mark.parametrize("simulator", ["generic", "huawei", "sim800"], indirect=True)
def test_gammu_smsd_gets_a_report_for_every_message_and_the_memory_ends_empty(simulator, tmp_path):
    smsd, inject = _tool("gammu-smsd", "gammu-smsd"), _tool("gammu-smsd-inject", "gammu-smsd")
    folders = {name: tmp_path / name for name in ("inbox", "outbox", "sent", "error")}
    for folder in folders.values():
        folder.mkdir()
    config = tmp_path / "smsdrc"
    config.write_text(
        f"[gammu]\ndevice = {simulator.port()}\nconnection = at\n\n"
        f"[smsd]\nservice = files\nlogfile = {tmp_path / 'smsd.log'}\ndebuglevel = 1\n"
        + "".join(f"{name}path = {path}/\n" for name, path in
                  (("inbox", folders["inbox"]), ("outbox", folders["outbox"]),
                   ("sentsms", folders["sent"]), ("errorsms", folders["error"])))
        + "deliveryreport = sms\ncommtimeout = 1\nreceivefrequency = 1\nstatusfrequency = 0\n"
          "checkbattery = 0\nchecksignal = 0\n")
    for index, number in enumerate(NUMBERS):
        subprocess.run([inject, "-c", str(config), "TEXT", number, "-report", "-text", f"Prova {index}"],
                       check=True, capture_output=True, timeout=30)

    def delivered() -> set[str]:
        # gammu-smsd names a report file after its recipient and writes the report's text in it. (Debian's
        # 1.42 also writes an empty IN000000_... file per +CDSI, a bug of its own fixed upstream.)
        return {path.name.split("_")[3] for path in folders["inbox"].iterdir()
                if path.read_text(errors="replace") == "Delivered"}

    with _daemon([smsd, "-c", str(config)], tmp_path / "smsd.out"):
        _wait_for(lambda: delivered() == set(NUMBERS), 60, "gammu-smsd did not write both reports",
                  tmp_path / "smsd.log")
        _wait_for(lambda: sum(_stored(simulator).values()) == 0, 20, "the modem's memory did not empty",
                  tmp_path / "smsd.log")
    reports = simulator.log_records("status_report")
    assert len(reports) == len(NUMBERS) and not [r for r in reports if "dropped" in r], reports


SMSTOOLS_INIT = {
    # Its manual's init for a modem that stores reports: they land in ME, which it polls.
    "generic": 'init = AT+CPMS="ME","ME","ME"\n',
    "huawei": 'init = AT+CPMS="ME","ME","ME"\n',
    # A SIM800 stores none: its manual's way for such modems, reports routed as +CDS.
    "sim800": "init = AT+CNMI=2,0,0,1,0\nusing_routed_status_report = yes\n",
}


@pytest.mark.parametrize("simulator", list(SMSTOOLS_INIT), indirect=True)
def test_smstools3_reads_its_reports_from_the_memory_it_polls(simulator, tmp_path):
    """smstools3 sets no AT+CNMI: <ds> stays 0, it polls AT+CPMS? and reads what is stored there (or,
    configured so, takes the reports a SIM800 routes)."""
    smsd = _tool("smsd", "smstools")
    folders = {name: tmp_path / name for name in ("outgoing", "checked", "incoming", "report", "sent", "failed")}
    for folder in folders.values():
        folder.mkdir()
    config = tmp_path / "smsd.conf"
    config.write_text(
        "devices = GSM1\n" + "".join(f"{name} = {path}\n" for name, path in folders.items())
        + f"logfile = {tmp_path / 'smsd.log'}\nloglevel = 7\n\n"
          f"[GSM1]\ndevice = {simulator.port()}\nincoming = yes\nreport = yes\nbaudrate = 115200\n"
        + SMSTOOLS_INIT[simulator.modems[0]["profile"]])
    for index, number in enumerate(NUMBERS):
        (folders["outgoing"] / f"prova{index}").write_text(f"To: {number.lstrip('+')}\nReport: yes\n\nProva {index}\n")

    def reports() -> list[str]:
        return [path.read_text(errors="replace") for path in folders["report"].iterdir()]

    user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    with _daemon([smsd, "-t", f"-c{config}", f"-p{tmp_path / 'smsd.pid'}", f"-i{tmp_path / 'smsd.working'}",
                  f"-u{user}", f"-g{group}"], tmp_path / "smsd.out"):
        _wait_for(lambda: len(reports()) == len(NUMBERS), 60, "smstools3 did not write both reports",
                  tmp_path / "smsd.log")
        _wait_for(lambda: sum(_stored(simulator).values()) == 0, 20, "the modem's memory did not empty",
                  tmp_path / "smsd.log")
    assert all("SMS STATUS REPORT" in text and "Status: 0,Ok" in text for text in reports()), reports()
    assert sorted(text.split("\n", 1)[0] for text in reports()) == [f"From: {n.lstrip('+')}" for n in NUMBERS]
