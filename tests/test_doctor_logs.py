"""The engine's journal output: no phone number in full at INFO, no secret or PIN ever.

An integration run with everything that logs: SMS with transient and permanent
+CMS errors, a modem unplugged mid-run, an inbound SMS, SIMs with a PIN, voice
calls that are busy, unanswered or to invalid numbers, SMS fallback.
"""
import logging
import os
import re
import subprocess
import sys

import pytest

from asterisk.pbx_simulator.harness import PbxSimulatorProcess
from gateway.core.alerts import AlertRequest, Target
from gateway.core.contacts_import import import_contacts
from modem.simulator.harness import SimulatorProcess
from gateway.core.logs import JournalFormatter, is_journal
from tests.engine_harness import _env, services_for, wait_until

pytestmark = pytest.mark.integration

SECRET = "Zq7-ami-secret-never-logged"
PIN = "4321"


def people(count: int) -> bytes:
    rows = ["nome;cellulare;telefono;zona"]
    rows += [f"P{i};333 700 {i:04d};06 6700 {i:04d};Fiumara" for i in range(count)]
    return ("\n".join(rows) + "\n").encode()


def test_engine_logs_mask_numbers_and_never_show_secrets(tmp_path):
    population = {"seed": 3, "answer": 0.5, "busy": 0.15, "no_answer": 0.15, "invalid_number": 0.1,
                  "voicemail": 0.1, "press_1": 0.5, "ring_seconds": [1, 3], "listen_seconds": [2, 4]}
    with PbxSimulatorProcess(tmp_path / "pbx", trunks={"trunk1": 6}, population=population, time_scale=0.01,
                             secret=SECRET) as pbx, \
            SimulatorProcess(count=2, link_dir=tmp_path / "links", latency_median=0.02, report_delay=0.05,
                             pin=PIN) as sim:
        modems = "".join(f'\n[[modems]]\nlabel = "m{i}"\nport = "{m["link"]}"\nper_minute = 6000\npin = "{PIN}"\n'
                         for i, m in enumerate(sim.modems))
        config_path = tmp_path / "allerta.toml"
        config_path.write_text(f"""[general]
data_dir = "{tmp_path / 'data'}"
[engine]
poll_interval = 0.05
report_timeout = 5
[retry]
initial_delay = 0.1
max_delay = 0.5
modem_probe_interval = 1
[asterisk]
enabled = true
port = {pbx.port}
secret = "{SECRET}"
[[trunks]]
name = "trunk1"
dial = "PJSIP/{{number}}@trunk1"
max_channels = 6
calls_per_second = 100
{modems}""", encoding="utf-8")
        services = services_for(config_path)
        assert import_contacts(services.sessions, people(40)).imported
        services.alerts.create(AlertRequest(text="Allerta: piani alti", target=Target(zones=("Fiumara",))))
        (tmp_path / "msg.wav").write_bytes(b"")
        services.alerts.create(AlertRequest(text="Allerta", channels=("voice",), target=Target(zones=("Fiumara",)),
                                            audio_path=str(tmp_path / "msg"), audio_seconds=3.0, max_attempts=2,
                                            voice_interval=0.1, voice_growth=1.0, voice_cap=2, sms_fallback=True))
        sim.control({"cmd": "cms_errors", "modem": "modem-0", "rate": 0.3, "code": 38})
        sim.control({"cmd": "cms_errors", "modem": "modem-1", "rate": 0.1, "code": 21})
        sim.control({"cmd": "incoming_sms", "modem": "modem-1", "sender": "+393337009999", "text": "STOP"})
        log_path = tmp_path / "engine.log"
        # stdout is "the journal": JOURNAL_STREAM names this very file, as systemd names its socket.
        out = open(log_path, "w")
        journal = os.fstat(out.fileno())
        engine = subprocess.Popen([sys.executable, "-m", "gateway.shell.cli", "--config", str(config_path), "run", "--once"],
                                  stdout=out, stderr=subprocess.STDOUT,
                                  env=dict(_env(), JOURNAL_STREAM=f"{journal.st_dev}:{journal.st_ino}"))
        out.close()
        try:
            assert wait_until(lambda: len(sim.log_records("submit")) >= 10, 60)
            sim.control({"cmd": "unplug", "modem": "modem-1", "seconds": 1.0})
            assert engine.wait(timeout=300) in (0, 1)
        finally:
            if engine.poll() is None:
                engine.kill()
    log = log_path.read_text()
    lines = log.splitlines()
    # Every line carries its journal priority; a warning is <4>, so journalctl -p warning finds it.
    assert lines and all(re.match(r"<[3467]>(DEBUG|INFO|WARNING|ERROR|CRITICAL) ", line) for line in lines), \
        [line for line in lines if not re.match(r"<[3467]>", line)][:5]
    assert any(line.startswith("<4>WARNING ") and "m1" in line for line in lines)
    assert "event=failed" in log and "line m1 is down" in log and "event=inbound" in log   # the run logged plenty
    # One key=value line per delivery event: submit, failure, status report, call outcome.
    event = r"alert=\d+ delivery=\d+ channel={channel} line={line} to=\+39\*\*\*\*\d{{3}} outcome={outcome}"
    assert re.search(r"^<6>INFO \S+: event=submitted " + event.format(channel="sms", line=r"m\d", outcome="sent"),
                     log, re.M)
    assert re.search(r"^<6>INFO \S+: event=failed " + event.format(channel="sms", line=r"m\d", outcome=r"\S+"),
                     log, re.M)
    assert re.search(r"^<6>INFO \S+: event=status_report " + event.format(channel="sms", line=r"m\d",
                                                                          outcome="delivered") + r" ref=\d+",
                     log, re.M)
    assert re.search(r"event=(call|failed) " + event.format(channel="voice", line=r"\S+",
                                                           outcome="(confirmed|answered|voicemail|busy|no_answer)"),
                     log)
    assert set(re.findall(r" to=(\S+)", log)) and all(re.fullmatch(r"\+39\*\*\*\*\d{3}", to)
                                                      for to in re.findall(r" to=(\S+)", log))
    numbers = [f"333700{i:04d}" for i in range(40)] + [f"066700{i:04d}" for i in range(40)] + ["3337009999"]
    # Also written with spaces, dots or dashes inside.
    squeezed = re.sub(r"(?<=\d)[ .\-](?=\d)", "", log)
    leaked = sorted({n for n in numbers if n in squeezed})
    assert not leaked, f"full numbers in the INFO log: {leaked[:5]}\n" + "\n".join(
        l for l in squeezed.splitlines() if any(n in l for n in leaked[:5]))[:3000]
    assert SECRET not in log
    assert not re.search(rf"(PIN|CPIN)\D{{0,4}}{PIN}", log)


def test_a_failure_reason_naming_the_number_is_masked_in_the_log(contacts, caplog):
    """Channels may put the number in a reason ("no voice trunk is allowed to call +39..."):
    it is stored for operators, but the INFO log masks it."""
    import asyncio
    import logging

    from gateway.core.channels import DeliveryFailed
    from gateway.core.failures import Failure, FailureKind
    from tests.test_dispatcher import FakeChannel, make_dispatcher
    number = "+393201234567"
    contacts.alerts.create(AlertRequest(text="x", target=Target(numbers=(number,))))
    channel = FakeChannel(script={number: [DeliveryFailed(Failure(FailureKind.NUMBER, f"cannot encode for {number}",
                                                                  permanent=True))]})
    with caplog.at_level(logging.INFO):
        asyncio.run(make_dispatcher(contacts, channel).run(asyncio.Event(), once=True))
    assert "cannot encode for +39****567" in caplog.text
    assert "3201234567" not in caplog.text


def test_journal_lines_carry_the_priority_and_keep_a_traceback_on_one_line():
    formatter = JournalFormatter("%(levelname)s %(name)s: %(message)s")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("x").makeRecord("x", logging.ERROR, __file__, 1, "send failed", (), sys.exc_info())
    text = formatter.format(record)
    assert text.startswith("<3>ERROR x: send failed\\nTraceback (most recent call last):")
    assert "\n" not in text and "ValueError: boom" in text
    warning = logging.getLogger("x").makeRecord("x", logging.WARNING, __file__, 1, "m1 lost", (), None)
    debug = logging.getLogger("x").makeRecord("x", logging.DEBUG, __file__, 1, "AT", (), None)
    assert formatter.format(warning) == "<4>WARNING x: m1 lost" and formatter.format(debug).startswith("<7>")


def test_only_the_stream_systemd_names_is_the_journal(tmp_path):
    with open(tmp_path / "out", "w") as out, open(tmp_path / "other", "w") as other:
        info = os.fstat(out.fileno())
        environ = {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
        assert is_journal(out, environ)
        assert not is_journal(other, environ)      # e.g. stdout redirected to a file by the admin
        assert not is_journal(out, {})


def test_lines_written_by_hand_carry_a_timestamp_and_the_journals_do_not(tmp_path):
    """Issue 11: run by hand (JOURNAL_STREAM unset) the engine's lines said nothing about when."""
    import re
    from gateway.core.logs import formatter_for
    record = logging.getLogger("allerta.voice").makeRecord("allerta.voice", logging.WARNING, __file__, 1,
                                                           "trunk1 down", (), None)
    with open(tmp_path / "out", "w") as out:
        by_hand = formatter_for(out, {}).format(record)
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4} WARNING allerta.voice: trunk1 down", by_hand)
        info = os.fstat(out.fileno())
        journal = formatter_for(out, {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}).format(record)
        assert journal == "<4>WARNING allerta.voice: trunk1 down"   # journald stamps its entries itself
