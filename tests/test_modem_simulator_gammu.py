"""Fidelity with Debian's gammu (connection = at): it needs echo, an SMSC and an exact "> "."""
from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from modem.simulator.harness import SimulatorProcess
from modem.simulator.profiles import get_profile
from tests.engine_harness import wait_until

# One xdist worker takes the whole module under `--dist loadgroup`: gammu_runs starts every test's gammu at once.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("gammu")]

GAMMU = "/usr/bin/gammu"
# What the tests below ask gammu on each of the first three modems, in this order.
INVOCATIONS = {
    "identify": ("--identify",),
    "sendsms": ("sendsms", "TEXT", "+393331234567", "-text", "Prova allerta"),
    "networkinfo": ("networkinfo",),
    "emoji": ("sendsms", "TEXT", "+393331234568", "-unicode", "-text", "Ok 👍"),
    "getussd": ("getussd", "*123#"),
    "getsmsfolders": ("getsmsfolders",),
    "battery": ("battery",),
}


@pytest.fixture(scope="module")
def gammu() -> str:
    path = GAMMU if shutil.which(GAMMU) else shutil.which("gammu")
    if path is None:
        pytest.fail("gammu is not installed: run `apt-get install gammu` (these tests never skip)")
    return path


@pytest.fixture(scope="module")
def sim():
    # modem-3 is test_gammu_twice_in_a_row_on_one_port's own, so it runs beside gammu_runs.
    with SimulatorProcess(count=4, profile="generic,huawei,sim800,generic", latency_median=0.2,
                          latency_sigma=0.3, report_delay=0.3, seed=5) as process:
        yield process


def gammurc(tmp_path, port: str):
    rc = tmp_path / "gammurc"
    rc.write_text(f"[gammu]\ndevice = {port}\nconnection = at\n")
    return rc


def run_gammu(gammu, rc, *args) -> subprocess.CompletedProcess:
    return subprocess.run([gammu, "-c", str(rc), *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def gammu_runs(gammu, sim, tmp_path_factory) -> dict[tuple[str, str], Future]:
    """(modem name, invocation) -> its CompletedProcess, all started once for the module.

    gammu is slow by design, not by load: it sleeps 0.4 s after every AT command it writes (its AT driver
    waits so for old phones), and getussd listens 10 s more after the network's answer. One modem's
    invocations run one after the other, as a user's would, each opening the port the previous one closed;
    the three modems' run side by side, each on its own port (about 50 s instead of 128 s in turn).
    """
    runs = {(name, what): Future() for name in ("modem-0", "modem-1", "modem-2") for what in INVOCATIONS}

    def one_modem(name: str) -> None:
        rc = gammurc(tmp_path_factory.mktemp(name), sim.port(name))
        up = wait_until(lambda: booted(sim, name), 30)
        for what, argv in INVOCATIONS.items():
            try:
                assert up, f"{name} still booting after 30 s: {sim.control({'cmd': 'status'})}"
                runs[name, what].set_result(run_gammu(gammu, rc, *argv))
            except Exception as exc:  # noqa: BLE001 - handed to the test that reads this run
                runs[name, what].set_exception(exc)

    with ThreadPoolExecutor(3, thread_name_prefix="gammu") as pool:
        for name in ("modem-0", "modem-1", "modem-2"):
            pool.submit(one_modem, name)
        yield runs


def booted(sim, name: str) -> bool:
    """Its boot URCs are out. A SIM800 says RDY ... SMS Ready over its first second: gammu, opening the port
    then, reads them in its handshake as an unknown frame and waits 19 s (in turn, the other modems' tests
    used to give it that second)."""
    modem = next(m for m in sim.control({"cmd": "status"})["modems"] if m["modem"] == name)
    return modem["bytes_out"] >= sum(len(f"\r\n{urc}\r\n") for urc in get_profile(modem["profile"]).boot_urcs)


def ran(gammu_runs, name: str, what: str) -> subprocess.CompletedProcess:
    return gammu_runs[name, what].result(timeout=300)


@pytest.mark.parametrize("name, manufacturer", [
    ("modem-0", "Allerta"), ("modem-1", "Huawei"), ("modem-2", "SIMCOM_Ltd")])
def test_gammu_identify(gammu_runs, sim, name, manufacturer):
    record = next(m for m in sim.modems if m["modem"] == name)
    result = ran(gammu_runs, name, "identify")
    assert result.returncode == 0, result.stdout + result.stderr
    fields = dict(line.split(":", 1) for line in result.stdout.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    assert fields["IMEI"] == record["imei"]
    assert fields["Manufacturer"] == manufacturer
    assert fields["SIM IMSI"].startswith("22201")


@pytest.mark.parametrize("name", ["modem-0", "modem-1", "modem-2"])
def test_gammu_sendsms_reaches_the_log(gammu_runs, sim, name):
    port = sim.port(name)
    result = ran(gammu_runs, name, "sendsms")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK, message reference=" in result.stdout + result.stderr
    # This destination's: the emoji test's SMS may have reached the same port since.
    submits = [r for r in sim.wait_for_records("submit", 1) if r["port"] == port and r["destination"] == "+393331234567"]
    assert submits, sim.log_records()
    assert (submits[-1]["text"], submits[-1]["destination"]) == ("Prova allerta", "+393331234567")
    reference = int((result.stdout + result.stderr).split("message reference=")[1].split()[0])
    assert reference == submits[-1]["reference"]


def test_gammu_twice_in_a_row_on_one_port(gammu, sim, tmp_path):
    """gammu leaves TIOCEXCL set on close; the next gammu must still open the port."""
    rc = gammurc(tmp_path, sim.port("modem-3"))
    assert wait_until(lambda: booted(sim, "modem-3"), 30)
    for _ in range(2):
        result = run_gammu(gammu, rc, "--identify")
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["modem-0", "modem-1", "modem-2"])
def test_gammu_networkinfo(gammu_runs, name):
    """gammu networkinfo asks AT+CREG, AT+CGREG and AT+COPS: it failed while +CGREG was an ERROR."""
    result = ran(gammu_runs, name, "networkinfo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "home network" in result.stdout.lower(), result.stdout


@pytest.mark.parametrize("name", ["modem-0", "modem-1", "modem-2"])
def test_gammu_sendsms_with_an_emoji_reaches_the_log(gammu_runs, sim, name):
    """Answered +CMGS but missing from the log once (UnicodeEncodeError: surrogates not allowed)."""
    port = sim.port(name)
    result = ran(gammu_runs, name, "emoji")
    assert result.returncode == 0, result.stdout + result.stderr
    submits = [r for r in sim.wait_for_records("submit", 1) if r["port"] == port and r["destination"] == "+393331234568"]
    assert submits and submits[-1]["text"] == "Ok 👍", sim.log_records()


@pytest.mark.parametrize("name", ["modem-0", "modem-1", "modem-2"])
def test_gammu_getussd_reads_the_networks_answer(gammu_runs, name):
    """A Huawei E3531 speaks USSD as packed GSM-7 (gammu's F_ENCODED_USSD): the UCS-2 answer it got
    before came out as an empty 'Service reply'."""
    result = ran(gammu_runs, name, "getussd")
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'Service reply        : "Credito residuo: 5,00 EUR.' in result.stdout, result.stdout


@pytest.mark.parametrize("name, battery", [("modem-0", "100 percent"), ("modem-1", None),
                                           ("modem-2", "95 percent")])
def test_gammu_sms_folders_and_battery_as_the_model_has_them(gammu_runs, name, battery):
    folders = ran(gammu_runs, name, "getsmsfolders")
    assert folders.returncode == 0, folders.stdout + folders.stderr
    assert "SIM memory, Inbox folder" in folders.stdout and "phone memory, Inbox folder" in folders.stdout
    charge = ran(gammu_runs, name, "battery")
    if battery is None:  # a USB stick has no battery: COMMAND NOT SUPPORT, as the real one answers
        assert "not supported" in (charge.stdout + charge.stderr).lower()
    else:
        assert charge.returncode == 0 and f"Battery level        : {battery}" in charge.stdout, charge.stdout
