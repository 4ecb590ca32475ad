"""`allerta demo`: simulated modems, the real engine and a drill alert, on a throwaway database.

For a newcomer: one command shows the whole path of an alert. The demo
writes a contact list of synthetic residents of Fiumicino's frazioni as the
registry office would export it (CSV, Italian headers), imports it with the
real importer, creates a drill alert for Isola Sacra, starts ``allerta run``
against simulated GSM modems on pseudo-terminals and follows the alert once a
second until every message is delivered.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import math
import os
import random
import secrets
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import wave
import webbrowser
from contextlib import ExitStack
from pathlib import Path
from typing import NamedTuple

from rich.console import Console

from asterisk.pbx_simulator.harness import PbxSimulatorProcess, SimulatorStartError
from gateway.core.alerts import AlertRequest, Target
from gateway.core.audio import AudioError
from gateway.core.audit import AuditLog, audit_log_for
from gateway.core.config import load_config
from gateway.core.contacts_import import import_contacts
from gateway.core.db import utcnow
from gateway.core.plurals import counted
from gateway.core.services import Services, build_services
from gateway.core.states import Channel, DeliveryState
from gateway.core.voice_messages import VoiceRenderer
from gateway.shell.bench import child_env, ensure_importable_children
from gateway.shell.live_view import cli_language, ctrl_c_sets, nothing_left, watch
from modem.simulator.harness import SimulatorError, SimulatorProcess
from web.serve import free_port  # the panel's module owns sockets, not gateway/
from web.users import add_user, ensure_first_admin

# Frazioni of Fiumicino, with a rough share of the residents.
ZONES: tuple[tuple[str, float], ...] = (
    ("Isola Sacra", 0.20), ("Fregene", 0.16), ("Maccarese", 0.12), ("Aranova", 0.12),
    ("Focene", 0.10), ("Passoscuro", 0.10), ("Palidoro", 0.10), ("Torrimpietra", 0.10),
)
DRILL_ZONE = "Isola Sacra"
DRILL_TEXT = ("Protezione civile Fiumicino: allerta rossa, piena del Tevere. Isola Sacra: salire ai piani alti, "
              "evitare sottopassi, non usare l'auto.")

FIRST_NAMES = ("Marco", "Giulia", "Luca", "Francesca", "Alessandro", "Chiara", "Andrea", "Sara", "Matteo", "Elena",
               "Giuseppe", "Anna", "Paolo", "Maria", "Roberto", "Laura", "Stefano", "Valentina", "Davide", "Rosa",
               "Antonio", "Federica", "Simone", "Silvia", "Giovanni", "Martina", "Fabio", "Lucia", "Claudio", "Teresa")
LAST_NAMES = ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco",
              "Bruno", "Gallo", "Conti", "De Luca", "Mancini", "Costa", "Giordano", "Rizzo", "Lombardi", "Moretti",
              "Barbieri", "Fontana", "Santoro", "Mariani", "Rinaldi", "Caruso", "Ferrara", "Galli", "Martini", "Leone",
              "D'Angelo", "Serra", "Cocco", "Pellegrini", "Palumbo", "Sanna")
# Residents who asked for messages in another language.
FOREIGN_NAMES = {
    "ro": (("Andrei", "Ioana", "Mihai", "Elena", "Florin"), ("Popescu", "Ionescu", "Dumitru", "Stan", "Munteanu")),
    "ar": (("Youssef", "Fatima", "Ahmed", "Amina", "Karim"), ("El Amrani", "Benali", "Haddad", "Mansour", "Saleh")),
    "uk": (("Olena", "Andriy", "Iryna", "Oleksandr", "Natalia"), ("Kovalenko", "Shevchenko", "Bondarenko", "Melnyk",
                                                                  "Tkachenko")),
    "en": (("John", "Emma", "David", "Sarah", "James"), ("Smith", "Brown", "Wilson", "Taylor", "Clarke")),
}
LANGUAGES = (("it", 0.85), ("ro", 0.05), ("uk", 0.04), ("ar", 0.03), ("en", 0.03))
STREETS = ("Via della Scafa", "Via Trincea delle Frasche", "Via Coni Zugna", "Via Redipuglia",
           "Lungomare della Salute", "Via del Faro", "Via Portuense", "Via Aurelia", "Viale di Porto",
           "Via Castellammare", "Via Falzarego", "Via Monte Cadria", "Via del Pesce Luna", "Via Agelli")
MOBILE_PREFIXES = ("320", "328", "329", "333", "335", "338", "339", "340", "347", "348", "349", "366", "380", "393")

SIM_LATENCY_SIGMA = 0.3
SIM_REPORT_DELAY = 2.0
SIM_PROFILES = "generic,huawei,sim800"

# The simulated Asterisk: one trunk, callees who mostly answer and press 1, some busy, away or on voicemail.
DEMO_TRUNK = "pstn"
PBX_POPULATION = {"seed": 2024, "answer": 0.78, "busy": 0.06, "no_answer": 0.08, "invalid_number": 0.01,
                  "voicemail": 0.07, "congestion": 0.0, "press_1": 0.85, "ring_seconds": [3, 12],
                  "listen_seconds": [12, 25]}
# The drill's voice retry policy: short intervals, so the demo ends in minutes.
DEMO_VOICE = {"max_attempts": 3, "voice_interval": 10.0, "voice_growth": 1.5, "voice_cap": 4}
# Demo logins (the panel listens on 127.0.0.1 only; the first admin gets a random password).
DEMO_LOGINS = {"approver": ("demo", "fiumicino-prova"), "operator": ("operatore", "fiumicino-turno")}


# --- synthetic residents ------------------------------------------------------------
def residents_csv(count: int, *, seed: int = 2024) -> bytes:
    """A registry-office export: ';' separated, Italian headers, some landlines, households sharing a number."""
    rng = random.Random(seed)
    used: set[str] = set()

    def unique(make) -> str:
        while True:
            number = make()
            if number not in used:
                used.add(number)
                return number

    def mobile() -> str:
        return unique(lambda: f"{rng.choice(MOBILE_PREFIXES)} {rng.randrange(10**7):07d}")

    def landline() -> str:
        return unique(lambda: f"06 65{rng.randrange(10**6):06d}")

    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(["codice", "cognome", "nome", "telefono", "cellulare", "zona", "lingua", "fragile", "indirizzo"])
    previous: list[str] | None = None
    zones, zone_weights = zip(*ZONES)
    languages, language_weights = zip(*LANGUAGES)
    for i in range(count):
        if previous is not None and rng.random() < 0.06:
            # Someone of the same household: same surname, address and home numbers.
            _code, last, _first, phone, cell, zone, language, _v, address = previous
            first = rng.choice(FIRST_NAMES)
        else:
            zone = rng.choices(zones, zone_weights)[0]
            language = rng.choices(languages, language_weights)[0]
            if language == "it":
                first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            else:
                firsts, lasts = FOREIGN_NAMES[language]
                first, last = rng.choice(firsts), rng.choice(lasts)
            kind = rng.random()
            if kind < 0.12:
                phone, cell = landline(), ""            # landline only: waits for the voice channel
            elif kind < 0.25:
                phone, cell = landline(), mobile()
            else:
                phone, cell = "", mobile()
            address = f"{rng.choice(STREETS)} {rng.randint(1, 180)}"
        vulnerable = "sì" if rng.random() < 0.08 else "no"
        row = [f"FCO{i + 1:06d}", last, first, phone, cell, zone, language, vulnerable, address]
        writer.writerow(row)
        previous = row
    return out.getvalue().encode("utf-8")


def demo_config(directory: Path, links: list[str], *, pbx_port: int | None = None, pbx_secret: str = "",
                channels: int = 4) -> Path:
    """The demo's configuration: the simulated modems and, with ``pbx_port``, the simulated Asterisk."""
    modems = "".join(
        f'\n[[modems]]\nlabel = "sim-{i + 1}"\nport = "{link}"\nper_minute = 120\ndaily_cap = 5000\n'
        for i, link in enumerate(links))
    voice = ""
    if pbx_port is not None:
        voice = f"""[asterisk]
enabled = true
port = {pbx_port}
secret = "{pbx_secret}"
ring_timeout = 30
[[trunks]]
name = "{DEMO_TRUNK}"
dial = "PJSIP/{{number}}@{DEMO_TRUNK}"
max_channels = {channels}
calls_per_second = {max(2, channels)}
caller_id = "+390665210000"
"""
    path = directory / "allerta.toml"
    path.write_text(f"""# Written by 'allerta demo': simulated modems on pseudo-terminals, a simulated Asterisk.
[general]
comune = "Comune di Fiumicino"
data_dir = "{directory / 'data'}"
[engine]
poll_interval = 0.2
health_interval = 10
[retry]
initial_delay = 2
max_delay = 30
send_timeout = 20
modem_probe_interval = 5
[web]
https_port = 0
{voice}{modems}""", encoding="utf-8")
    return path


def wait_for_http(url: str, timeout: float, process: subprocess.Popen | None = None) -> bool:
    """True once ``url`` answers (any HTTP status); False on timeout or when ``process`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            time.sleep(0.2)
    return False


def create_demo_users(sessions, audit) -> dict[str, tuple[str, str]]:  # noqa: ANN001
    """The first admin (random password) and the demo logins: role -> (username, password)."""
    users = {}
    admin = ensure_first_admin(sessions, audit)
    if admin:
        users["admin"] = admin
    for role, (username, password) in DEMO_LOGINS.items():
        add_user(sessions, audit, username, password, role, actor="demo")
        users[role] = (username, password)
    return users


def open_browser(url: str) -> bool:
    """Open the panel in a graphical browser when there is one; never a text browser in this terminal."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform in ("darwin", "win32")):
        return False
    try:
        return webbrowser.open(url, new=2)
    except webbrowser.Error:
        return False


# --- running ------------------------------------------------------------------------
class _Stop(Exception):
    pass


VOICE_DONE = (DeliveryState.CONFIRMED, DeliveryState.ANSWERED, DeliveryState.VOICEMAIL, DeliveryState.FAILED,
              DeliveryState.CANCELLED)


def _progress_line(status: dict, elapsed: float, many_modems: bool) -> str:
    channels = status["channels"]
    parts = [f"{elapsed:5.0f} s"]
    sms = channels.get(Channel.SMS)
    if sms:
        states = sms["by_state"]
        total = sum(states.values())
        text = f"SMS delivered {states.get(DeliveryState.DELIVERED, 0):>{len(str(total))}}/{total}"
        queued = states.get(DeliveryState.PENDING, 0) + states.get(DeliveryState.SUBMITTING, 0)
        text += f" sent {states.get(DeliveryState.SENT, 0)} queued {queued}"
        if states.get(DeliveryState.FAILED):
            text += f" failed {states[DeliveryState.FAILED]}"
        parts.append(text)
    voice = channels.get(Channel.VOICE)
    if voice:
        states = voice["by_state"]
        total = sum(states.values())
        done = sum(states.get(state, 0) for state in VOICE_DONE)
        text = (f"| calls done {done:>{len(str(total))}}/{total} (confirmed {states.get('confirmed', 0)}"
                + "".join(f", {state} {states[state]}" for state in ("answered", "voicemail", "failed")
                          if states.get(state))
                + f") calling {states.get('submitting', 0)} waiting {states.get('pending', 0)}")
        parts.append(text)
    lines = status["lines"]
    modems = {label: entry for label, entry in lines.items() if entry.get("channel", "sms") == "sms"}
    if many_modems:
        up = sum(1 for entry in modems.values() if entry.get("state") == "up")
        parts.append(f"| modems up {up}/{len(modems)}")
    elif modems:
        parts.append("| " + "  ".join(f"{label} {entry['segments_delivered']}/{entry['segments_sent']}"
                                      + ("" if entry.get("state") in ("up", None) else f" ({entry.get('state')})")
                                      for label, entry in sorted(modems.items())))
    for label, entry in sorted(lines.items()):
        if entry.get("channel") == "voice":
            parts.append(f"| {label} {entry.get('in_use') or 0}/{entry.get('limit') or '-'} lines"
                         + ("" if entry.get("state") in ("up", None) else f" ({entry.get('state')})"))
    eta = status["eta_seconds"]
    parts.append("ETA " + ("done" if eta == 0 else "?" if eta is None else f"{eta:.0f} s"))
    return "  ".join(parts)


def _placeholder_message(path: Path, seconds: float = 6.0) -> float:
    """Without espeak-ng: three soft beeps, 8 kHz mono 16-bit (the simulator never plays it anyway)."""
    rate = 8000
    frames = bytearray()
    for i in range(int(seconds * rate)):
        t = i / rate
        on = (t % 2.0) < 0.4
        frames += struct.pack("<h", int(8000 * math.sin(2 * math.pi * 660 * t)) if on else 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    return seconds


def _stop_process(process: subprocess.Popen | None, timeout: float = 20) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _panel_banner(url: str, users: dict[str, tuple[str, str]]) -> str:
    rule = "=" * 72
    rows = [rule, f"  Web panel: {url}"]
    if "approver" in users:
        rows.append(f"  Demo login (approver, may approve and send):  {users['approver'][0]} / {users['approver'][1]}")
    if "operator" in users:
        rows.append(f"  Operator login (its alerts wait for approval): {users['operator'][0]} / {users['operator'][1]}")
    if "admin" in users:
        rows.append(f"  Administrator:                                 {users['admin'][0]} / {users['admin'][1]}")
    rows.append(rule)
    return "\n".join(rows)


def _drill_voice_messages(services: Services, request: AlertRequest) -> None:
    """The drill's voice messages, as 'allerta alert send --voice' renders them; a tone without espeak-ng."""
    renderer = VoiceRenderer.from_config(services.config)
    try:
        renderer.render_alert(request, services.alerts, text_language="it")
    except AudioError as exc:
        print(f"  speech not available ({exc}); the calls play a placeholder tone instead")
        name = renderer.new_name()
        request.audio_path, request.audio_source = str(name), "recording"
        request.audio_seconds = _placeholder_message(name.with_suffix(".wav"))


class _DemoError(Exception):
    """A step cannot go on: the demo prints this after "allerta demo: " and exits with ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class _Child(NamedTuple):
    """A process the demo started and follows (the engine, the panel), with its log."""
    name: str
    process: subprocess.Popen
    log: Path


def run_demo(args: argparse.Namespace) -> int:
    channels = getattr(args, "channels", 8)
    time_scale = getattr(args, "time_scale", 0.1)
    try:
        _check_options(args, channels, time_scale)
        directory = _demo_directory(args.keep)
    except _DemoError as exc:
        print(f"allerta demo: {exc}", file=sys.stderr)
        return exc.code
    ensure_importable_children()
    previous = _stop_on_signals()
    try:
        # Every process the demo starts is entered here: on the way out, whatever happened (a step
        # failing, Ctrl-C, the drill done), they stop in reverse order: panel, engine, PBX, modems.
        with ExitStack() as processes:
            try:
                return _run_steps(args, directory, processes, channels, time_scale)
            except _Stop:
                _say_stopping()
                return 0
            except _DemoError as exc:
                print(f"allerta demo: {exc}", file=sys.stderr)
                return exc.code
            finally:
                # Ignore further signals while stopping: a second Ctrl-C must not leave children behind.
                for s in previous:
                    signal.signal(s, signal.SIG_IGN)
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
        for s, handler in previous.items():
            signal.signal(s, handler)


def _run_steps(args: argparse.Namespace, directory: Path, processes: ExitStack, channels: int,
               time_scale: float) -> int:
    print(f"Allerta demo in {directory}" + ("" if args.keep else " (deleted when the demo ends; --keep DIR keeps it)"))
    sim = _start_modem_simulator(args, directory, processes)
    pbx, pbx_secret = _start_pbx_simulator(directory, processes, channels, time_scale)
    config_path = demo_config(directory, [m["link"] for m in sim.modems], pbx_port=pbx.port,
                              pbx_secret=pbx_secret, channels=channels)
    services = build_services(load_config(config_path))
    audit, users = _seed_municipality(args, directory, services)
    alert_id = _create_drill_alert(services, audit)
    children, panel_url = _start_engine_and_panel(args, directory, config_path, processes)
    banner = _panel_banner(panel_url, users)
    print(banner, flush=True)
    if not args.exit_when_done and not getattr(args, "no_browser", False) and open_browser(panel_url):
        print("(opened in your browser)")
    status, elapsed = _follow_alert(services, alert_id, children, many_modems=args.modems > 6)
    exit_code = _print_summary(args, status, elapsed, services.config.general.drill_prefix)
    _print_hints(directory, config_path, panel_url, alert_id, children, pbx.log_path)
    print(banner)
    if args.exit_when_done:
        return exit_code
    return _wait_for_ctrl_c(children, exit_code)


def _check_options(args: argparse.Namespace, channels: int, time_scale: float) -> None:
    if args.contacts < 1 or args.modems < 1 or channels < 1:
        raise _DemoError("--contacts, --modems and --channels must be at least 1", 2)
    if not 0 < time_scale <= 1:
        raise _DemoError("--time-scale must be greater than 0 and at most 1", 2)


def _demo_directory(keep: str | None) -> Path:
    """``--keep DIR`` (new or empty), or a temporary directory the demo removes at the end."""
    if not keep:
        return Path(tempfile.mkdtemp(prefix="allerta-demo-"))
    directory = Path(keep).resolve()
    if directory.exists() and any(directory.iterdir()):
        raise _DemoError(f"{directory} is not empty; give a new or empty directory to --keep", 2)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _stop_on_signals() -> dict:
    """The first SIGINT or SIGTERM raises _Stop, to stop the demo cleanly; the previous handlers."""
    stopping: list[int] = []

    def on_signal(signum, _frame) -> None:  # noqa: ANN001
        if not stopping:
            stopping.append(signum)
            raise _Stop()

    return {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}


def _say_stopping() -> None:
    print("\nStopping the panel, the engine and the simulators...", flush=True)


def _start_modem_simulator(args: argparse.Namespace, directory: Path, processes: ExitStack) -> SimulatorProcess:
    print(f"Starting {args.modems} simulated GSM modems (profiles {SIM_PROFILES}, about {args.latency:g} s per SMS, "
          f"status report {SIM_REPORT_DELAY:g} s later)...")
    sim = SimulatorProcess(count=args.modems, profile=SIM_PROFILES, link_dir=directory / "modems",
                           latency_median=args.latency, latency_sigma=SIM_LATENCY_SIGMA,
                           report_delay=SIM_REPORT_DELAY, log=directory / "simulator-events.jsonl",
                           ready_timeout=60)
    # Registered before it starts: a Ctrl-C while it starts up still stops it.
    processes.callback(_close_modem_simulator, sim)
    try:
        sim.start()
    except SimulatorError as exc:
        raise _DemoError(f"the modem simulator did not start: {exc}") from None
    return sim


def _close_modem_simulator(sim: SimulatorProcess) -> None:
    if sim.process is None:
        return
    sim.stop()
    try:
        sim.__exit__(None, None, None)  # closes its files and removes its own temporary directory
    except (AttributeError, OSError):
        pass


def _start_pbx_simulator(directory: Path, processes: ExitStack, channels: int,
                         time_scale: float) -> tuple[PbxSimulatorProcess, str]:
    """The simulated Asterisk, entered into ``processes``; with its AMI secret."""
    print(f"Starting a simulated Asterisk (AMI on 127.0.0.1, trunk {DEMO_TRUNK!r} with {channels} channels, "
          f"time {1 / time_scale:g} times faster than real: a call lasts a few seconds)...")
    secret = secrets.token_hex(12)
    pbx = PbxSimulatorProcess(directory / "pbx", trunks={DEMO_TRUNK: channels}, population=PBX_POPULATION,
                              time_scale=time_scale, secret=secret, ready_timeout=30)
    try:
        processes.enter_context(pbx)   # stops itself if it does not become ready
    except SimulatorStartError as exc:
        raise _DemoError(f"the PBX simulator did not start: {exc}") from None
    return pbx, secret


def _seed_municipality(args: argparse.Namespace, directory: Path,
                       services: Services) -> tuple[AuditLog, dict[str, tuple[str, str]]]:
    """Import the synthetic residents with the real importer; create the panel's users."""
    csv_path = directory / "anagrafe-demo.csv"
    csv_path.write_bytes(residents_csv(args.contacts))
    config = services.config
    report = import_contacts(services.sessions, csv_path.read_bytes(), region=config.general.region)
    if not report.imported:
        raise _DemoError(f"the synthetic contact list did not import: {report.fatal or report.rejected[:3]}")
    print(f"Imported {csv_path.name}: {counted(report.contacts_created, 'resident')}, "
          f"{counted(report.numbers_created, 'number')} (landlines get voice calls only), "
          f"{counted(report.zones_created, 'zone')}, {counted(len(report.rejected), 'row')} rejected")
    audit = audit_log_for(config, services.sessions)
    return audit, create_demo_users(services.sessions, audit)


def _create_drill_alert(services: Services, audit: AuditLog) -> int:
    """The drill for DRILL_ZONE, by SMS and voice, recorded in the audit log; its id."""
    request = AlertRequest(text=DRILL_TEXT, target=Target(zones=(DRILL_ZONE,)), channels=("sms", "voice"),
                           drill=True, created_by="demo", max_attempts=DEMO_VOICE["max_attempts"],
                           deadline=utcnow() + dt.timedelta(minutes=60),
                           voice_interval=DEMO_VOICE["voice_interval"], voice_growth=DEMO_VOICE["voice_growth"],
                           voice_cap=DEMO_VOICE["voice_cap"], stop_on_confirm=True)
    _drill_voice_messages(services, request)
    with audit.transaction() as s:  # the alert and its audit entry: both or neither
        alert_id, preview = services.alerts.create(request, session=s)
        audit.record(s, "demo", "alert.send", alert_id, text=DRILL_TEXT, channels=list(request.channels),
                     target=request.target.describe(), drill=True, recipients=preview.recipients,
                     reason="allerta demo: drill")
    print(f"Drill alert {alert_id} for {DRILL_ZONE}: SMS to {preview.recipients.get('sms', 0)} mobile numbers "
          f"({preview.plan.encoding}, {preview.plan.segments} segment(s) each), voice calls to "
          f"{preview.recipients.get('voice', 0)} numbers (landlines too; {request.audio_seconds:.0f} s message, "
          f"up to {DEMO_VOICE['max_attempts']} attempts until someone presses 1)")
    print(f"  text: {preview.sms_text}")
    return alert_id


def _start_engine_and_panel(args: argparse.Namespace, directory: Path, config_path: Path,
                            processes: ExitStack) -> tuple[tuple[_Child, _Child], str]:
    """`allerta run` and `allerta web` in subprocesses, entered into ``processes``; the panel's URL."""
    log_path = directory / "engine.log"
    print(f"Starting the engine (allerta run), log in {log_path}")
    engine = _start_child(processes, config_path, log_path, "run")
    web_log = directory / "panel.log"
    port = getattr(args, "port", None) or free_port()
    panel_url = f"http://127.0.0.1:{port}/"
    print(f"Starting the web panel (allerta web), log in {web_log}")
    web = _start_child(processes, config_path, web_log, "web", "--host", "127.0.0.1", "--port", str(port), "--https-port", "0")
    if not wait_for_http(panel_url + "login", 60, web):
        raise _DemoError(f"the web panel did not start; last lines of {web_log}:\n"
                         + web_log.read_text(errors="replace")[-2000:])
    return (_Child("engine", engine, log_path), _Child("web panel", web, web_log)), panel_url


def _start_child(processes: ExitStack, config_path: Path, log_path: Path, *command: str) -> subprocess.Popen:
    """``allerta --config CONFIG COMMAND...``, output into ``log_path``; stopped with ``processes``."""
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "gateway.shell.cli", "--config", str(config_path),
                                    *command], stdout=log, stderr=subprocess.STDOUT, env=child_env())
    processes.callback(_stop_process, process)
    return process


def _follow_alert(services: Services, alert_id: int, children: tuple[_Child, ...], *,
                  many_modems: bool) -> tuple[dict, float]:
    """Follow the alert until it is finished: its last status and the seconds it took. On a terminal one
    live view redrawn in place (gateway/shell/live_view.py); otherwise one progress line a second."""
    started = time.monotonic()

    def fetch() -> dict:
        for child in children:
            if child.process.poll() is not None:
                raise _DemoError(f"the {child.name} stopped unexpectedly (exit code {child.process.returncode}); "
                                 f"last lines of {child.log}:\n" + child.log.read_text(errors="replace")[-2000:])
        return services.alerts.status(alert_id)

    if sys.stdout.isatty():
        print("The drill alert live; the panel shows the same:", flush=True)
        with ctrl_c_sets(threading.Event()) as stop:
            status = watch(fetch, Console(), cli_language(), done=nothing_left, stop=stop)
        if stop.is_set():  # the view closed cleanly first; then stop the demo as Ctrl-C always did
            raise KeyboardInterrupt
        return status, time.monotonic() - started
    print("Progress once a second" + ("" if many_modems else " (per modem: segments delivered/sent)")
          + "; the panel shows the same live:", flush=True)
    while True:
        time.sleep(1.0)
        status = fetch()
        print(_progress_line(status, time.monotonic() - started, many_modems), flush=True)
        if nothing_left(status):
            return status, time.monotonic() - started


def _print_summary(args: argparse.Namespace, status: dict, elapsed: float, drill_prefix: str) -> int:
    """The outcome on both channels; 0 when every SMS was delivered, else 1."""
    sms_states = status["channels"].get("sms", {}).get("by_state", {})
    voice_states = status["channels"].get("voice", {}).get("by_state", {})
    sms_total = sum(sms_states.values())
    calls = sum(entry.get("calls", 0) for entry in status["lines"].values() if entry.get("channel") == "voice")
    print()
    print(f"Done in {elapsed:.0f} s. SMS: {sms_states.get(DeliveryState.DELIVERED, 0)} of {sms_total} delivered"
          + (f", {sms_states['failed']} failed" if sms_states.get("failed") else "")
          + f" over {args.modems} modems. Voice: {sum(voice_states.values())} numbers, {calls} calls placed; "
          + ", ".join(f"{state} {voice_states[state]}" for state in ("confirmed", "answered", "voicemail", "failed")
                      if voice_states.get(state))
          + f" (drill: every text starts with {drill_prefix.strip()!r}).")
    return 0 if sms_states.get("delivered", 0) == sms_total else 1


def _print_hints(directory: Path, config_path: Path, panel_url: str, alert_id: int, children: tuple[_Child, ...],
                 calls_log: Path) -> None:
    allerta = f"allerta --config {config_path}"
    engine_log = children[0].log
    print("Look around (while the demo runs):")
    print(f"  {panel_url}alerts/{alert_id}    # the alert in the panel: progress by channel and zone, CSV export")
    print(f"  {allerta} alert status {alert_id}        # counts, per-line progress, ETA")
    print(f"  {allerta} modems                # signal, operator, SIM and counters of every modem")
    print(f"  {allerta} alert send --sms --zone Fregene --drill --text \"Prova\"   # the engine picks it up")
    print(f"  tail {engine_log}    # the engine's log;  {directory / 'simulator-events.jsonl'}: what the modems sent;"
          f"  {calls_log}: the calls")


def _wait_for_ctrl_c(children: tuple[_Child, ...], exit_code: int) -> int:
    """Keep the demo up for a look around; ``exit_code`` on Ctrl-C, 1 if the engine or the panel stops."""
    print("Press Ctrl-C to stop.", flush=True)
    try:
        while True:
            time.sleep(1.0)
            for child in children:
                if child.process.poll() is not None:
                    print(f"allerta demo: the {child.name} stopped (exit code {child.process.returncode}); "
                          f"see {child.log}", file=sys.stderr)
                    return 1
    except _Stop:
        _say_stopping()
        return exit_code
