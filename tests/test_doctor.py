"""`allerta doctor` against the modem and PBX simulators: all green, then each failure named."""
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asterisk.pbx_simulator.harness import PbxSimulatorProcess
from gateway.doctor import FAIL, OK, WARN, clock_checks
from modem.simulator.harness import SimulatorProcess
from tests.engine_harness import engine_config, services_for, start_engine, wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent


# Staff numbers: without them the doctor warns (alarms and self-tests would reach nobody).
OPS = """[ops]
on_call = ["+393331110001"]
selftest_numbers = ["+393331110002"]
"""


def doctor_config(tmp_path, sim, pbx, secret="allerta"):
    voice = OPS + f"""[asterisk]
enabled = true
port = {pbx.port}
username = "allerta"
secret = "{secret}"
[[trunks]]
name = "trunk1"
dial = "PJSIP/{{number}}@trunk1"
"""
    path = engine_config(tmp_path, [m["link"] for m in sim.modems], extra=voice)
    services_for(path)   # creates and migrates the database
    return path


def doctor(config_path, *args, path_env=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if path_env is not None:
        env["PATH"] = path_env
    result = subprocess.run([sys.executable, "-m", "gateway.cli", "--config", str(config_path), "doctor", *args],
                            capture_output=True, text=True, timeout=120, env=env)
    return result


def by_name(report):
    return {c["name"]: c for c in report["checks"]}


def test_doctor_against_the_simulators_is_all_green(tmp_path):
    with SimulatorProcess(count=2, link_dir=tmp_path / "links") as sim, \
            PbxSimulatorProcess(tmp_path / "pbx") as pbx:
        config_path = doctor_config(tmp_path, sim, pbx)
        result = doctor(config_path, "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        report = json.loads(result.stdout)
        checks = by_name(report)
        assert report["ok"] is True
        # Only the NTP state may be a warning here (a container has no timedated).
        assert {c["name"] for c in report["checks"] if c["status"] != OK} <= {"clock sync"}
        for label in ("m0", "m1"):
            assert f"answers AT (IMEI {sim.modems[int(label[1])]['imei']})" in checks[f"modem {label}"]["detail"]
            for part in ("SIM", "network", "signal", "SMSC"):
                assert checks[f"modem {label} {part}"]["status"] == OK
        assert checks["asterisk AMI"]["status"] == OK
        assert checks["asterisk dialplan"]["detail"] == "context allerta-outbound is loaded"
        assert {"configuration", "database", "migrations", "espeak-ng", "sox", "disk", "clock"} <= set(checks)
        # The plain output: one line per check.
        plain = doctor(config_path)
        warned = [c["name"] for c in report["checks"] if c["status"] == WARN]
        assert plain.returncode == 0 and plain.stdout.strip().endswith(
            f"no check failed; 1 warning(s): clock sync" if warned else "all checks passed")
        assert checks["data directory"]["status"] == OK and checks["on-call numbers"]["status"] == OK
        assert len(plain.stdout.strip().splitlines()) == len(report["checks"]) + 1


def test_hung_modem_wrong_ami_secret_and_missing_espeak_are_each_named(tmp_path):
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "sox").symlink_to(shutil.which("sox"))   # sox present, espeak-ng not
    with SimulatorProcess(count=2, link_dir=tmp_path / "links") as sim, \
            PbxSimulatorProcess(tmp_path / "pbx") as pbx:
        config_path = doctor_config(tmp_path, sim, pbx, secret="wrong-secret")
        sim.control({"cmd": "hang", "modem": "modem-1"})
        result = doctor(config_path, "--json", path_env=str(tools))
        assert result.returncode == 1, result.stdout + result.stderr
        checks = by_name(json.loads(result.stdout))
        failed = {name for name, c in checks.items() if c["status"] == FAIL}
        assert failed == {"modem m1", "asterisk AMI", "espeak-ng"}, checks
        assert "no answer to AT" in checks["modem m1"]["detail"] and "power-cycle" in checks["modem m1"]["fix"]
        assert checks["modem m0 SMSC"]["status"] == OK           # the other modem is fine
        assert "refused" in checks["asterisk AMI"]["detail"] and "manager_allerta.conf" in checks["asterisk AMI"]["fix"]
        assert "wrong-secret" not in result.stdout + result.stderr   # a secret is never printed
        assert "apt-get install espeak-ng" in checks["espeak-ng"]["fix"]
        assert checks["sox"]["status"] == OK
        plain = doctor(config_path, path_env=str(tools))
        assert plain.returncode == 1
        lines = plain.stdout.splitlines()
        assert [l.split()[1].rstrip(":") for l in lines if l.startswith("FAIL")] == ["modem", "asterisk", "espeak-ng"]
        assert plain.stdout.strip().endswith("3 check(s) failed")


def test_a_locked_sim_leaves_the_radio_checks_unchecked_not_passed(tmp_path):
    with SimulatorProcess(count=1, link_dir=tmp_path / "links", pin="1234") as sim:
        config_path = engine_config(tmp_path, [m["link"] for m in sim.modems], extra=OPS)
        config_path.write_text(config_path.read_text() + 'pin = "1234"\n')
        services_for(config_path)
        report = json.loads(doctor(config_path, "--json").stdout)
        checks = by_name(report)
        assert checks["modem m0 SIM"]["status"] == OK and "PIN" in checks["modem m0 SIM"]["detail"]
        for part in ("network", "signal", "SMSC"):
            assert (checks[f"modem m0 {part}"]["status"], checks[f"modem m0 {part}"]["detail"]) == \
                (WARN, "not checked (SIM locked)")
        plain = doctor(config_path)
        assert plain.returncode == 0 and "all checks passed" not in plain.stdout
        assert "modem m0 network" in plain.stdout.strip().splitlines()[-1]
        # The doctor never entered the PIN: asked again, the SIM still wants it.
        again = by_name(json.loads(doctor(config_path, "--json").stdout))
        assert "asks for its PIN" in again["modem m0 SIM"]["detail"]


def test_unwritable_data_and_database_directories_and_missing_staff_numbers(tmp_path):
    not_a_dir = tmp_path / "data-file"
    not_a_dir.write_text("")
    path = tmp_path / "allerta.toml"
    # /proc/1 takes no new file even from root (tests may run as root, for whom modes mean nothing).
    path.write_text(f'[general]\ndata_dir = "{not_a_dir}"\n[database]\nurl = "sqlite:////proc/1/allerta.db"\n'
                    f'[[modems]]\nlabel = "m0"\nport = "{tmp_path}/none"\n')
    result = doctor(path, "--json")
    assert result.returncode == 1
    checks = by_name(json.loads(result.stdout))
    assert checks["data directory"]["status"] == FAIL and "not a directory" in checks["data directory"]["detail"]
    assert checks["database directory"]["status"] == FAIL and "not writable" in checks["database directory"]["detail"]
    assert checks["on-call numbers"]["status"] == WARN and "[ops] on_call" in checks["on-call numbers"]["fix"]
    assert checks["self-test"]["status"] == WARN and "selftest_numbers" in checks["self-test"]["fix"]


def test_missing_database_and_bad_configuration_fail(tmp_path):
    path = tmp_path / "allerta.toml"
    path.write_text('[general]\nregion = "Italy"\n')
    result = doctor(path)
    assert result.returncode == 1 and "FAIL  configuration" in result.stdout and "region" in result.stdout
    path.write_text(f'[general]\ndata_dir = "{tmp_path / "data"}"\n[[modems]]\nlabel = "m0"\nport = "{tmp_path}/none"\n')
    checks = by_name(json.loads(doctor(path, "--json").stdout))
    assert checks["database"]["status"] == FAIL and "allerta init" in checks["database"]["fix"]
    assert checks["modem m0"]["status"] == FAIL and "cannot open" in checks["modem m0"]["detail"]


def test_while_the_engine_runs_the_doctor_reads_its_reports_and_leaves_the_ports_alone(tmp_path):
    with SimulatorProcess(count=1, link_dir=tmp_path / "links") as sim:
        config_path = engine_config(tmp_path, [m["link"] for m in sim.modems])
        services_for(config_path)
        engine = start_engine(config_path, log_path=tmp_path / "engine.log")
        try:
            assert wait_until(lambda: "modem m0 up" in (tmp_path / "engine.log").read_text(), 30)
            assert wait_until(lambda: "from the running engine" in doctor(config_path).stdout, 30)
            checks = by_name(json.loads(doctor(config_path, "--json").stdout))
            assert checks["modem m0"]["status"] == OK and "up on" in checks["modem m0"]["detail"]
            assert "modem m0 SIM" not in checks        # no AT command went to the engine's port
        finally:
            engine.terminate()
            engine.wait(timeout=30)


def test_clock_check_flags_an_impossible_year():
    assert clock_checks(dt.datetime(1980, 1, 6, tzinfo=dt.timezone.utc))[0].status == FAIL
    assert clock_checks(dt.datetime(2027, 3, 1, tzinfo=dt.timezone.utc))[0].status == OK
    assert clock_checks()[1].status in (OK, WARN)
