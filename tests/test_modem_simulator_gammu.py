"""Fidelity with Debian's gammu (connection = at): it needs echo, an SMSC and an exact "> "."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from modem.simulator.harness import SimulatorProcess

pytestmark = pytest.mark.integration

GAMMU = "/usr/bin/gammu"


@pytest.fixture(scope="module")
def gammu() -> str:
    path = GAMMU if shutil.which(GAMMU) else shutil.which("gammu")
    if path is None:
        pytest.fail("gammu is not installed: run `apt-get install gammu` (these tests never skip)")
    return path


@pytest.fixture(scope="module")
def sim():
    with SimulatorProcess(count=3, profile="generic,huawei,sim800", latency_median=0.2,
                          latency_sigma=0.3, report_delay=0.3, seed=5) as process:
        yield process


def gammurc(tmp_path, port: str):
    rc = tmp_path / "gammurc"
    rc.write_text(f"[gammu]\ndevice = {port}\nconnection = at\n")
    return rc


def run_gammu(gammu, rc, *args) -> subprocess.CompletedProcess:
    return subprocess.run([gammu, "-c", str(rc), *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name, manufacturer", [
    ("modem-0", "Allerta"), ("modem-1", "Huawei"), ("modem-2", "SIMCOM_Ltd")])
def test_gammu_identify(gammu, sim, tmp_path, name, manufacturer):
    record = next(m for m in sim.modems if m["modem"] == name)
    result = run_gammu(gammu, gammurc(tmp_path, record["port"]), "--identify")
    assert result.returncode == 0, result.stdout + result.stderr
    fields = dict(line.split(":", 1) for line in result.stdout.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    assert fields["IMEI"] == record["imei"]
    assert fields["Manufacturer"] == manufacturer
    assert fields["SIM IMSI"].startswith("22201")


@pytest.mark.parametrize("name", ["modem-0", "modem-1", "modem-2"])
def test_gammu_sendsms_reaches_the_log(gammu, sim, tmp_path, name):
    port = sim.port(name)
    result = run_gammu(gammu, gammurc(tmp_path, port), "sendsms", "TEXT", "+393331234567",
                       "-text", "Prova allerta")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK, message reference=" in result.stdout + result.stderr
    submits = [r for r in sim.wait_for_records("submit", 1) if r["port"] == port]
    assert submits, sim.log_records()
    assert (submits[-1]["text"], submits[-1]["destination"]) == ("Prova allerta", "+393331234567")
    reference = int((result.stdout + result.stderr).split("message reference=")[1].split()[0])
    assert reference == submits[-1]["reference"]


def test_gammu_twice_in_a_row_on_one_port(gammu, sim, tmp_path):
    """gammu leaves TIOCEXCL set on close; the next gammu must still open the port."""
    rc = gammurc(tmp_path, sim.port("modem-0"))
    for _ in range(2):
        result = run_gammu(gammu, rc, "--identify")
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["modem-0", "modem-1", "modem-2"])
def test_gammu_networkinfo(gammu, sim, tmp_path, name):
    """gammu networkinfo asks AT+CREG, AT+CGREG and AT+COPS: it failed while +CGREG was an ERROR."""
    result = run_gammu(gammu, gammurc(tmp_path, sim.port(name)), "networkinfo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "home network" in result.stdout.lower(), result.stdout


@pytest.mark.parametrize("name", ["modem-0", "modem-1", "modem-2"])
def test_gammu_sendsms_with_an_emoji_reaches_the_log(gammu, sim, tmp_path, name):
    """Answered +CMGS but missing from the log once (UnicodeEncodeError: surrogates not allowed)."""
    port = sim.port(name)
    result = run_gammu(gammu, gammurc(tmp_path, port), "sendsms", "TEXT", "+393331234568", "-unicode",
                       "-text", "Ok 👍")
    assert result.returncode == 0, result.stdout + result.stderr
    submits = [r for r in sim.wait_for_records("submit", 1) if r["port"] == port and r["destination"] == "+393331234568"]
    assert submits and submits[-1]["text"] == "Ok 👍", sim.log_records()


@pytest.mark.parametrize("name", ["modem-0", "modem-1", "modem-2"])
def test_gammu_getussd_reads_the_networks_answer(gammu, sim, tmp_path, name):
    """A Huawei E3531 speaks USSD as packed GSM-7 (gammu's F_ENCODED_USSD): the UCS-2 answer it got
    before came out as an empty 'Service reply'."""
    result = run_gammu(gammu, gammurc(tmp_path, sim.port(name)), "getussd", "*123#")
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'Service reply        : "Credito residuo: 5,00 EUR.' in result.stdout, result.stdout


@pytest.mark.parametrize("name, battery", [("modem-0", "100 percent"), ("modem-1", None),
                                           ("modem-2", "95 percent")])
def test_gammu_sms_folders_and_battery_as_the_model_has_them(gammu, sim, tmp_path, name, battery):
    rc = gammurc(tmp_path, sim.port(name))
    folders = run_gammu(gammu, rc, "getsmsfolders")
    assert folders.returncode == 0, folders.stdout + folders.stderr
    assert "SIM memory, Inbox folder" in folders.stdout and "phone memory, Inbox folder" in folders.stdout
    charge = run_gammu(gammu, rc, "battery")
    if battery is None:  # a USB stick has no battery: COMMAND NOT SUPPORT, as the real one answers
        assert "not supported" in (charge.stdout + charge.stderr).lower()
    else:
        assert charge.returncode == 0 and f"Battery level        : {battery}" in charge.stdout, charge.stdout
