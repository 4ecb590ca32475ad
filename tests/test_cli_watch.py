"""`allerta alert status --watch`, `contacts import` and `bench` on a real pseudo-terminal (isatty is true) and
through a pipe: the live view is drawn in place on a terminal and the plain lines stay for scripts (issue 16)."""
from __future__ import annotations

import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from sqlalchemy import update

from gateway.core.alerts import AlertRequest, Target
from gateway.core.models import Delivery
from gateway.shell.demo import residents_csv
from tests.engine_harness import _env, allerta

pytestmark = pytest.mark.integration
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class PtyRun:
    """The CLI with stdout (and stderr unless given) on a pty of 40x100, its output read as it comes."""

    def __init__(self, config_path: Path, *args: str, stdout=None) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
        env = {**_env(), "TERM": "xterm-256color", "LANG": "C.UTF-8", "COLUMNS": "100"}
        env.pop("LC_ALL", None), env.pop("LC_MESSAGES", None)
        self.process = subprocess.Popen([sys.executable, "-m", "gateway.shell.cli", "--config", str(config_path),
                                         *args], stdin=slave, stdout=stdout or slave, stderr=slave, env=env)
        os.close(slave)
        self.output = b""

    def read_until(self, predicate, timeout: float = 60.0) -> str:
        """Read until ``predicate(text)`` or the end of output; the text so far."""
        deadline = time.monotonic() + timeout
        while not predicate(self.text) and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                self.output += chunk
        return self.text

    def finish(self, timeout: float = 60.0) -> int:
        self.read_until(lambda _text: False if self.process.poll() is None else True, timeout)
        self.read_until(lambda _text: False, 2.0)  # what is left in the pty after it exited
        code = self.process.wait(timeout=timeout)
        os.close(self.master)
        return code

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", errors="replace")


def _alert(services) -> int:
    alert_id, _ = services.alerts.create(AlertRequest(text="Prova", target=Target(everyone=True)))
    return alert_id


def _deliver_all(services, alert_id: int) -> None:
    with services.sessions.begin() as s:
        s.execute(update(Delivery).where(Delivery.alert_id == alert_id).values(state="delivered"))


def test_watch_draws_one_live_view_and_ends_when_the_alert_is_finished(contacts, config_path):
    alert_id = _alert(contacts)
    total = contacts.alerts.status(alert_id)["recipients"]
    run = PtyRun(config_path, "alert", "status", str(alert_id), "--watch", "--interval", "0.2")
    try:
        drawn = run.read_until(lambda text: "in coda" in text and f"Allerta {alert_id}" in text)
        assert f"0/{total}" in ANSI.sub("", drawn), drawn
        _deliver_all(contacts, alert_id)
        code = run.finish()
    finally:
        if run.process.poll() is None:
            run.process.kill()
    raw = run.text
    assert code == 0, raw
    assert re.search(r"\x1b\[\d*A", raw) and "\x1b[2K" in raw      # redrawn in place, not line after line
    assert "\x1b[?25h" in raw                                        # the cursor given back
    plain = ANSI.sub("", raw)
    assert re.search(rf"SMS +━+ +{total}/{total} 100% +{total} ", plain), plain
    assert "nessuna linea attiva: fine non stimabile" in plain and "· finito ·" in plain and "raggiunti" in plain
    assert "alert " not in plain  # not the plain lines


def test_watch_stops_cleanly_on_ctrl_c(contacts, config_path):
    alert_id = _alert(contacts)
    run = PtyRun(config_path, "alert", "status", str(alert_id), "--watch", "--interval", "0.2")
    try:
        run.read_until(lambda text: f"Allerta {alert_id}" in text and "in coda" in text)
        run.process.send_signal(signal.SIGINT)
        code = run.finish()
    finally:
        if run.process.poll() is None:
            run.process.kill()
    assert code == 130, run.text
    assert "\x1b[?25h" in run.text, repr(run.text[-600:]) and "Traceback" not in run.text


def test_watch_through_a_pipe_prints_the_plain_lines(contacts, config_path):
    alert_id = _alert(contacts)
    before = allerta(config_path, "alert", "status", str(alert_id)).stdout
    process = subprocess.Popen([sys.executable, "-m", "gateway.shell.cli", "--config", str(config_path), "alert",
                                "status", str(alert_id), "--watch", "--interval", "0.2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        first = "".join(process.stdout.readline() for _line in before.splitlines())
        assert first == before  # the plain lines of `alert status`, as they are now
        _deliver_all(contacts, alert_id)
        rest, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    after = allerta(config_path, "alert", "status", str(alert_id)).stdout
    assert process.returncode == 0 and rest == after and "\x1b" not in first + rest + err  # printed again on change
    assert after.startswith(f"alert {alert_id} (active, emergency (Safety)): 4 recipients, GSM-7 x1\n")
    assert "  sms: delivered 4; in progress 0; ETA done" in after and "sms: pending 4" in before


def test_contacts_import_shows_a_bar_on_the_terminal_and_keeps_its_summary(config_path, tmp_path):
    csv = tmp_path / "anagrafe.csv"
    csv.write_bytes(residents_csv(2500))
    summary = tmp_path / "summary.txt"
    with summary.open("w") as out:
        run = PtyRun(config_path, "contacts", "import", str(csv), stdout=out)
        code = run.finish(timeout=120)
    assert code == 0, run.text
    assert "Importazione contatti" in run.text and re.search(r"\d+/\d+", ANSI.sub("", run.text))
    text = summary.read_text()
    assert "\x1b" not in text and re.match(r"\d+ contacts created, 0 updated, 0 unchanged; ", text)


def test_bench_json_stays_parseable_with_progress_on_the_terminal(config_path, tmp_path):
    out = tmp_path / "bench.json"
    with out.open("w") as stdout:
        run = PtyRun(config_path, "bench", "fanout", "--contacts", "300", stdout=stdout)
        code = run.finish(timeout=180)
    assert code == 0, run.text
    result = json.loads(out.read_text())
    assert result and "\x1b" not in out.read_text()
    assert "Misura in corso: allerta bench fanout" in ANSI.sub("", run.text)


def test_the_demo_follows_its_drill_in_one_live_view(tmp_path):
    root = Path(__file__).resolve().parent.parent
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    env = {**_env(), "TERM": "xterm-256color", "LANG": "C.UTF-8"}
    env.pop("LC_ALL", None), env.pop("LC_MESSAGES", None)
    process = subprocess.Popen([sys.executable, "-m", "gateway.shell.cli", "demo", "--contacts", "100", "--modems",
                                "2", "--channels", "8", "--time-scale", "0.02", "--exit-when-done", "--no-browser",
                                "--keep", str(tmp_path / "demo")],
                               stdin=slave, stdout=slave, stderr=slave, env=env, cwd=root)
    os.close(slave)
    run = PtyRun.__new__(PtyRun)
    run.master, run.process, run.output = master, process, b""
    try:
        code = run.finish(timeout=240)
    finally:
        if process.poll() is None:
            process.kill()
    raw = run.text
    assert code == 0, raw[-3000:]
    plain = ANSI.sub("", raw)
    assert re.search(r"\x1b\[\d*A", raw) and "\x1b[2K" in raw            # one view, redrawn in place
    assert "Progress once a second" not in plain and "calls done" not in plain  # not the line-a-second output
    assert re.search(r"SMS +━+ +(\d+)/\1 100%", plain) and re.search(r"Voce +━+ +(\d+)/\1 100%", plain), plain[-3000:]
    assert re.search(r"sim-1 +attiva +\d+ segmenti inviati", plain) and "chiamate per questa allerta" in plain
    assert "Done in" in plain and "· finito ·" in plain


def test_backup_shows_its_phases_on_the_terminal_and_keeps_its_summary(contacts, config_path, tmp_path):
    summary = tmp_path / "summary.txt"
    with summary.open("w") as out:
        run = PtyRun(config_path, "backup", "--out", str(tmp_path / "copy.db"), stdout=out)
        code = run.finish(timeout=120)
    assert code == 0, run.text
    shown = ANSI.sub("", run.text)
    assert "Copia del database" in shown and "Controllo di integrità" in shown
    text = summary.read_text()
    assert "\x1b" not in text and text.startswith("backup of ") and text.endswith(", integrity check ok\n")


def test_bench_sms_counts_its_messages_on_the_terminal(tmp_path):
    out = tmp_path / "bench.json"
    with out.open("w") as stdout:
        run = PtyRun(tmp_path / "unused.toml", "bench", "sms", "--modems", "2", "--messages", "30", "--latency", "0.5",
                     stdout=stdout)
        code = run.finish(timeout=240)
    assert code == 0, run.text
    result = json.loads(out.read_text())
    assert result["delivered"] == 30
    shown = ANSI.sub("", run.text)
    assert "Misura in corso: allerta bench sms" in shown and re.search(r" \d+/30 ", shown), shown[-2000:]
