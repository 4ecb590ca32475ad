"""`allerta doctor` on a configuration that cannot load: one FAIL line naming the key, never a traceback."""
import pytest

from gateway.core.checks import FAIL, OK, WARN
from gateway.core.config import load_config
from gateway.shell.cli import main
from gateway.shell import doctor
from gateway.shell.doctor import exit_code, run_checks
from tests.support import write_config

BAD_TRUNK = """[asterisk]
enabled = true
[[trunks]]
name = "pstn"
dial = "{dial}"
"""


@pytest.mark.parametrize("dial, problem", [
    ("PJSIP/{number}@pstn,x", "options after a comma (',x') are not allowed"),
    ("PJSIP/pstn", "the template must contain {number} exactly once"),
    ("PJSIP/{numero}@pstn", "unknown placeholder {numero}"),
    ("PJSIP/{number@pstn", "a '{' or '}' without its pair"),
    ("PJSIP/{number} @pstn", "whitespace is not allowed"),
])
def test_a_bad_dial_string_is_a_failed_configuration_check(tmp_path, dial, problem):
    path = write_config(tmp_path, BAD_TRUNK.format(dial=dial))
    checks = run_checks(str(path))
    assert [(c.name, c.status) for c in checks] == [("configuration", FAIL)]
    assert checks[0].detail.startswith(f"{path}: [trunks #1] dial: {problem}")
    assert exit_code(checks) == 1


def test_doctor_prints_the_failed_check_and_exits_1(tmp_path, capsys):
    path = write_config(tmp_path, BAD_TRUNK.format(dial="PJSIP/{number}@pstn,x"))
    assert main(["--config", str(path), "doctor"]) == 1
    out, err = capsys.readouterr()
    assert f"FAIL  configuration: {path}: [trunks #1] dial: options after a comma" in out
    assert "1 check(s) failed" in out and "Traceback" not in out + err


def test_a_directory_that_takes_no_file_is_reported_not_writable(tmp_path, monkeypatch):
    # A directory refusing new files even to root (a read-only mount, /proc) cannot be made inside
    # the repository's temporary directory, so the refusal is the one the doctor's probe would get.
    def refuse(**_kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(doctor.tempfile, "TemporaryFile", refuse)
    check = doctor._writable_check("database directory", tmp_path, "[database] url")
    assert check.status == FAIL
    assert check.detail == f"{tmp_path} is not writable: Permission denied" and "[database] url" in check.fix


def test_doctor_warns_when_a_trunk_hides_its_number_or_shows_another_than_the_hotline(tmp_path):
    trunks = "".join(f'[[trunks]]\nname = "{name}"\ndial = "PJSIP/{{number}}@{name}"\ncaller_id = "{caller_id}"\n'
                     for name, caller_id in (("empty", ""), ("other", "0665210000"), ("ours", "+39 06 6599 9000")))
    config = load_config(write_config(tmp_path, "[asterisk]\nenabled = true\n" + trunks,
                                      hotline_number="06 6599 9000"))
    checks = {c.name: c for c in doctor.caller_id_checks(config)}
    assert checks["caller ID empty"].status == WARN and "cannot call back" in checks["caller ID empty"].detail
    assert checks["caller ID other"].status == WARN and "not the hotline number" in checks["caller ID other"].detail
    assert checks["caller ID ours"].status == OK
