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
import io
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gateway.bench import child_env, ensure_importable_children

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


def demo_config(directory: Path, links: list[str]) -> Path:
    modems = "".join(
        f'\n[[modems]]\nlabel = "sim-{i + 1}"\nport = "{link}"\nper_minute = 120\ndaily_cap = 5000\n'
        for i, link in enumerate(links))
    path = directory / "allerta.toml"
    path.write_text(f"""# Written by 'allerta demo': simulated modems on pseudo-terminals.
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
{modems}""", encoding="utf-8")
    return path


# --- running ------------------------------------------------------------------------
class _Stop(Exception):
    pass


def _progress_line(status: dict, elapsed: float, many_modems: bool) -> str:
    by_state = status["by_state"]
    total = status["recipients"]
    done = by_state["delivered"]
    parts = [f"{elapsed:5.0f} s  delivered {done:>{len(str(total))}}/{total}",
             f"sent {by_state['sent']}", f"queued {by_state['pending'] + by_state['submitting']}"]
    if by_state["failed"]:
        parts.append(f"failed {by_state['failed']}")
    lines = status["lines"]
    if many_modems:
        up = sum(1 for entry in lines.values() if entry.get("state") == "up")
        parts.append(f"modems up {up}/{len(lines)}")
    else:
        parts.append("  ".join(f"{label} {entry['segments_delivered']}/{entry['segments_sent']}"
                               + ("" if entry.get("state") in ("up", None) else f" ({entry.get('state')})")
                               for label, entry in sorted(lines.items())))
    eta = status["eta_seconds"]
    parts.append("ETA " + ("done" if eta == 0 else "?" if eta is None else f"{eta:.0f} s"))
    return "  ".join(parts)


def run_demo(args: argparse.Namespace) -> int:
    from gateway.alerts import AlertRequest, Target
    from gateway.composition import build_services
    from gateway.config import load_config
    from gateway.contacts_import import import_contacts
    from modem.simulator.harness import SimulatorError, SimulatorProcess

    if args.contacts < 1 or args.modems < 1:
        print("allerta demo: --contacts and --modems must be at least 1", file=sys.stderr)
        return 2
    if args.keep:
        directory = Path(args.keep).resolve()
        if directory.exists() and any(directory.iterdir()):
            print(f"allerta demo: {directory} is not empty; give a new or empty directory to --keep",
                  file=sys.stderr)
            return 2
        directory.mkdir(parents=True, exist_ok=True)
    else:
        directory = Path(tempfile.mkdtemp(prefix="allerta-demo-"))
    ensure_importable_children()

    stopping: list[int] = []

    def on_signal(signum, _frame) -> None:  # noqa: ANN001
        if not stopping:
            stopping.append(signum)
            raise _Stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    engine: subprocess.Popen | None = None
    sim: SimulatorProcess | None = None
    exit_code = 0
    try:
        print(f"Allerta demo in {directory}" + ("" if args.keep else " (deleted when the demo ends; --keep DIR keeps it)"))
        print(f"Starting {args.modems} simulated GSM modems (profiles {SIM_PROFILES}, about {args.latency:g} s per SMS, "
              f"status report {SIM_REPORT_DELAY:g} s later)...")
        sim = SimulatorProcess(count=args.modems, profile=SIM_PROFILES, link_dir=directory / "modems",
                               latency_median=args.latency, latency_sigma=SIM_LATENCY_SIGMA,
                               report_delay=SIM_REPORT_DELAY, log=directory / "simulator-events.jsonl",
                               ready_timeout=60)
        try:
            sim.start()
        except SimulatorError as exc:
            print(f"allerta demo: the modem simulator did not start: {exc}", file=sys.stderr)
            return 1
        config_path = demo_config(directory, [m["link"] for m in sim.modems])
        services = build_services(load_config(config_path))

        csv_path = directory / "anagrafe-demo.csv"
        csv_path.write_bytes(residents_csv(args.contacts))
        report = import_contacts(services.sessions, csv_path.read_bytes(),
                                 region=services.config.general["region"])
        if not report.imported:
            print(f"allerta demo: the synthetic contact list did not import: {report.fatal or report.rejected[:3]}",
                  file=sys.stderr)
            return 1
        print(f"Imported {csv_path.name}: {report.contacts_created} residents, {report.numbers_created} numbers "
              f"(landlines wait for the voice channel), {report.zones_created} zones, "
              f"{len(report.rejected)} rows rejected")

        request = AlertRequest(text=DRILL_TEXT, target=Target(zones=(DRILL_ZONE,)), drill=True,
                               created_by="demo", max_attempts=services.config.retry["max_attempts"])
        alert_id, preview = services.alerts.create(request)
        print(f"Drill alert {alert_id} for {DRILL_ZONE}: {preview.recipients.get('sms', 0)} mobile numbers, "
              f"{preview.plan.encoding}, {preview.plan.segments} segment(s) each")
        print(f"  text: {preview.sms_text}")

        log_path = directory / "engine.log"
        print(f"Starting the engine (allerta run), log in {log_path}")
        with open(log_path, "w") as log:
            engine = subprocess.Popen([sys.executable, "-m", "gateway.cli", "--config", str(config_path), "run"],
                                      stdout=log, stderr=subprocess.STDOUT, env=child_env())
        started = time.monotonic()
        many = args.modems > 6
        print("Progress once a second" + ("" if many else " (per modem: segments delivered/sent)") + ":")
        status = services.alerts.status(alert_id)
        while True:
            time.sleep(1.0)
            if engine.poll() is not None:
                print(f"allerta demo: the engine stopped unexpectedly (exit code {engine.returncode}); "
                      f"last lines of {log_path}:", file=sys.stderr)
                print(log_path.read_text(errors="replace")[-2000:], file=sys.stderr)
                return 1
            status = services.alerts.status(alert_id)
            print(_progress_line(status, time.monotonic() - started, many), flush=True)
            by_state = status["by_state"]
            if by_state["pending"] + by_state["submitting"] + by_state["sent"] == 0:
                break
        elapsed = time.monotonic() - started
        by_state = status["by_state"]
        all_delivered = by_state["delivered"] == status["recipients"]
        print()
        print(f"Done in {elapsed:.0f} s: {by_state['delivered']} of {status['recipients']} delivered"
              + (f", {by_state['failed']} failed" if by_state["failed"] else "")
              + f" over {args.modems} modems (drill: every text starts with "
              f"{services.config.general['drill_prefix'].strip()!r}).")
        allerta = f"allerta --config {config_path}"
        print("Look around (while the demo runs):")
        print(f"  {allerta} alert status {alert_id}        # counts, per-modem progress, ETA")
        print(f"  {allerta} modems                # signal, operator, SIM and counters of every modem")
        print(f"  {allerta} alert send --sms --zone Fregene --drill --text \"Prova\"   # the engine picks it up")
        print(f"  tail {log_path}    # the engine's log;  {directory / 'simulator-events.jsonl'}: what the modems sent")
        print("The web panel will join the demo later (it is not part of this version yet).")
        exit_code = 0 if all_delivered else 1
        if args.exit_when_done:
            return exit_code
        print("Press Ctrl-C to stop.", flush=True)
        while True:
            time.sleep(1.0)
            if engine.poll() is not None:
                print(f"allerta demo: the engine stopped (exit code {engine.returncode}); see {log_path}",
                      file=sys.stderr)
                return 1
    except _Stop:
        print("\nStopping the engine and the simulated modems...", flush=True)
        return exit_code
    finally:
        # Ignore further signals while stopping: a second Ctrl-C must not leave children behind.
        for s in previous:
            signal.signal(s, signal.SIG_IGN)
        if engine is not None and engine.poll() is None:
            engine.terminate()
            try:
                engine.wait(timeout=20)
            except subprocess.TimeoutExpired:
                engine.kill()
                engine.wait()
        if sim is not None and sim.process is not None:
            sim.stop()
            try:
                sim.__exit__(None, None, None)  # closes its files and removes its own temporary directory
            except (AttributeError, OSError):
                pass
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
        for s, handler in previous.items():
            signal.signal(s, handler)
