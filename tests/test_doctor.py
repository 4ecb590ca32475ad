"""`allerta doctor` against the modem and PBX simulators: all green, then each failure named."""
import datetime as dt
import json
import getpass
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asterisk.pbx_simulator.harness import PbxSimulatorProcess
from gateway.shell.doctor import FAIL, OK, WARN, clock_checks, engine_checks, modem_checks_from_report
from modem.simulator.harness import SimulatorProcess
from tests.engine_harness import engine_config, services_for, start_engine, wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent


# Staff numbers: without them the doctor warns (alarms and self-tests would reach nobody).
OPS = """[ops]
on_call = ["+393331110001"]
selftest_numbers = ["+393331110002"]
"""


def doctor_config(tmp_path, sim, pbx, secret="allerta", system_user=None):
    # Asterisk's account is ours here: the sounds directory it must read is then readable.
    (tmp_path / "data" / "sounds").mkdir(parents=True, exist_ok=True)
    voice = OPS + f"""[asterisk]
enabled = true
port = {pbx.port}
username = "allerta"
secret = "{secret}"
system_user = "{system_user or getpass.getuser()}"
[[trunks]]
name = "trunk1"
dial = "PJSIP/{{number}}@trunk1"
caller_id = "+390665210000"
"""
    path = engine_config(tmp_path, [m["link"] for m in sim.modems], extra=voice)
    services_for(path)   # creates and migrates the database
    return path


def doctor(config_path, *args, path_env=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if path_env is not None:
        env["PATH"] = path_env
    result = subprocess.run([sys.executable, "-m", "gateway.shell.cli", "--config", str(config_path), "doctor", *args],
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
        # Only the NTP state may be a warning here (a container has no timedated), and the
        # engine's, which is not started in this test.
        assert {c["name"] for c in report["checks"] if c["status"] != OK} <= {"clock sync", "engine"}
        assert checks["engine"]["status"] == WARN and "not running" in checks["engine"]["detail"]
        for label in ("m0", "m1"):
            assert f"answers AT (IMEI {sim.modems[int(label[1])]['imei']})" in checks[f"modem {label}"]["detail"]
            for part in ("SIM", "network", "signal", "SMSC"):
                assert checks[f"modem {label} {part}"]["status"] == OK
        assert checks["asterisk AMI"]["status"] == OK
        assert checks["asterisk dialplan"]["detail"] == "context allerta-outbound is loaded"
        assert checks["asterisk modules"]["status"] == OK and checks["asterisk sounds"]["status"] == OK
        assert {"configuration", "database", "migrations", "espeak-ng", "sox", "disk", "clock"} <= set(checks)
        # The plain output: one line per check.
        plain = doctor(config_path)
        warned = [c["name"] for c in report["checks"] if c["status"] == WARN]
        assert plain.returncode == 0 and plain.stdout.strip().endswith(
            f"no check failed; {len(warned)} warning(s): {', '.join(warned)}")
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
    # Under a regular file no directory exists, not even for root (tests may run as root, for whom
    # modes mean nothing); a directory that exists but takes no file: test_doctor_config.py.
    path.write_text(f'[general]\ndata_dir = "{not_a_dir}"\n[database]\nurl = "sqlite:///{not_a_dir}/db/allerta.db"\n'
                    f'[[modems]]\nlabel = "m0"\nport = "{tmp_path}/none"\n')
    result = doctor(path, "--json")
    assert result.returncode == 1
    checks = by_name(json.loads(result.stdout))
    assert checks["data directory"]["status"] == FAIL and "not a directory" in checks["data directory"]["detail"]
    assert checks["database directory"]["status"] == FAIL and "does not exist" in checks["database directory"]["detail"]
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
            # Judged from the engine's report (no AT command went to the engine's port).
            for part in ("SIM", "network", "signal", "SMSC"):
                assert checks[f"modem m0 {part}"]["status"] == OK, checks[f"modem m0 {part}"]
                assert "from the running engine" in checks[f"modem m0 {part}"]["detail"]
            # The SMS centre number the simulated SIM holds, as the engine read it.
            assert checks["modem m0 SMSC"]["detail"].startswith("+39")
            assert checks["engine"]["status"] == OK and "engine.lock" in checks["engine"]["detail"]
        finally:
            engine.terminate()
            engine.wait(timeout=30)


def test_clock_check_flags_an_impossible_year():
    assert clock_checks(dt.datetime(1980, 1, 6, tzinfo=dt.timezone.utc))[0].status == FAIL
    assert clock_checks(dt.datetime(2027, 3, 1, tzinfo=dt.timezone.utc))[0].status == OK
    assert clock_checks()[1].status in (OK, WARN)


def _row(**values):
    from types import SimpleNamespace
    base = dict(state="up", port="/dev/allerta/modem-1", signal=20, registration="home", operator="TIM",
                sim_state="READY", smsc="+393359609600", last_error=None, updated_at=NOW - dt.timedelta(seconds=20))
    return SimpleNamespace(**{**base, **values})


NOW = dt.datetime(2025, 6, 1, 12, 0)


def _judged(**values):
    checks = modem_checks_from_report("m1", "/dev/x", _row(**values), NOW, 180)
    return {c.name: c for c in checks}


def test_the_engines_report_gets_the_probes_thresholds():
    good = _judged()
    assert [c.status for c in good.values()] == [OK] * 5
    assert good["modem m1 SMSC"].detail.startswith("+393359609600")
    # No SMS centre on the SIM fails (every send would); not read yet (an older engine) is unknown.
    assert _judged(smsc="")["modem m1 SMSC"].status == FAIL
    assert _judged(smsc=None)["modem m1 SMSC"].status == WARN
    assert good["modem m1 signal"].detail.startswith("CSQ 20")
    # CSQ 99 is unknown, not fine; weak is a warning, unusable a failure (as the probe says).
    assert _judged(signal=99)["modem m1 signal"].status == WARN and "unknown" in _judged(signal=99)["modem m1 signal"].detail
    assert _judged(signal=7)["modem m1 signal"].status == WARN
    assert _judged(signal=3)["modem m1 signal"].status == FAIL
    assert _judged(signal=10)["modem m1 signal"].status == OK
    assert _judged(sim_state="SIM PUK")["modem m1 SIM"].status == FAIL
    for registration in ("denied", "searching", "unregistered"):
        network = _judged(registration=registration)["modem m1 network"]
        assert network.status == FAIL and registration in network.detail
    assert _judged(state="down", last_error="port gone")["modem m1"].status == FAIL
    # A row older than line_health's staleness limit is not believed: the engine is not reporting.
    [stale] = _judged(updated_at=NOW - dt.timedelta(seconds=181)).values()
    assert stale.status == FAIL and "engine not reporting" in stale.detail and "181 s ago" in stale.detail
    [never] = _judged(updated_at=None).values()
    assert never.status == FAIL and "engine not reporting" in never.detail


def test_the_engine_check_says_whether_the_engine_holds_its_lock_and_reports(tmp_path):
    import asyncio

    from gateway.core.backup import hold_engine_lock
    from gateway.core.config import load_config
    from gateway.core.models import Line
    config_path = engine_config(tmp_path, [])
    services = services_for(config_path)
    config = load_config(config_path)
    [check] = engine_checks(config)
    assert check.status == WARN and "not running" in check.detail and "allerta-engine" in check.fix
    lock = asyncio.run(hold_engine_lock(config))     # what 'allerta run' holds while it runs
    try:
        [check] = engine_checks(config)
        assert check.status == WARN and "not reporting: last report none yet" in check.detail
        now = dt.datetime(2025, 6, 1, 12, 0)
        with services.sessions.begin() as s:
            s.add(Line(channel="sms", label="m0", state="up", updated_at=now - dt.timedelta(seconds=30)))
        [check] = engine_checks(config, now=now)
        assert check.status == OK and "running (holds" in check.detail and "30 s ago" in check.detail
        [check] = engine_checks(config, now=now + dt.timedelta(minutes=10))
        assert check.status == FAIL and "not reporting: last report 630 s ago" in check.detail
    finally:
        lock.release()
    assert engine_checks(config)[0].status == WARN


def test_a_missing_module_or_unreadable_sounds_fail_the_doctor(tmp_path):
    """Issue 11: with a module our dialplan needs not loaded, calls were answered and hung up
    with nothing played while the doctor said "no check failed"."""
    with SimulatorProcess(count=1, link_dir=tmp_path / "links") as sim, \
            PbxSimulatorProcess(tmp_path / "pbx", extra_args=["--missing-module", "app_talkdetect",
                                                              "--missing-module", "func_dialplan.so"]) as pbx:
        config_path = doctor_config(tmp_path, sim, pbx, system_user="nobody")
        (tmp_path / "data" / "sounds").chmod(0o700)
        result = doctor(config_path, "--json")
        assert result.returncode == 1, result.stdout + result.stderr
        checks = by_name(json.loads(result.stdout))
        modules = checks["asterisk modules"]
        assert modules["status"] == FAIL
        assert "app_talkdetect" in modules["detail"] and "func_dialplan" in modules["detail"]
        assert "module load app_talkdetect.so" in modules["fix"]
        # Not "context not loaded": without func_dialplan the context cannot be checked.
        assert checks["asterisk dialplan"]["status"] == FAIL
        assert "func_dialplan is not loaded" in checks["asterisk dialplan"]["detail"]
        sounds = checks["asterisk sounds"]
        assert sounds["status"] == FAIL and "user nobody cannot read" in sounds["detail"]
        assert "usermod -aG allerta nobody" in sounds["fix"]
