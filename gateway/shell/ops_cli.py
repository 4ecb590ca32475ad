"""`allerta` sub-commands of the appliance (install, doctor, backup, restore, selftest)."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from gateway.core.audit import anchor_path_for, audit_log_for, local_actor
from gateway.core.backup import BackupError, backup_sqlite, pg_dump_hint, restore_sqlite, sqlite_path
from gateway.core.config import load_config
from gateway.core.models_ops import SelfTestRun
from gateway.core.plurals import counted
from gateway.core.selftest import SelfTestError, SelfTestSettings, start_run, summary
from gateway.core.services import build_services
from gateway.shell import doctor
from gateway.shell.install import InstallError, install_systemd
from gateway.shell.progress import label, phases, stderr_console


def _fail(message: str) -> int:
    print(f"allerta: {message}", file=sys.stderr)
    return 1


def cmd_install(args: argparse.Namespace) -> int:
    if not args.systemd:
        return _fail("choose what to install: --systemd")
    try:
        report = install_systemd(args.root, binary=args.bin, config_path=str(Path(args.config).absolute()),
                                 activate=False if args.no_activate else None)
    except InstallError as exc:
        return _fail(str(exc))
    for path in report.written:
        print(f"wrote {path}")
    if report.config_created:
        print(f"wrote {report.config_created} (starter configuration: edit it)")
    for command in report.ran:
        print(f"ran {' '.join(command)}")
    print("next:")
    for step in report.next_steps:
        print(f"  {step}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    if not args.verbose:
        # The AMI client logs its link at INFO: keep the doctor's output to its own lines.
        logging.getLogger().setLevel(logging.WARNING)
    checks = doctor.run_checks(args.config)
    if args.json:
        print(json.dumps(doctor.as_json(checks), indent=2, ensure_ascii=False))
    else:
        for check in checks:
            print(check.line())
        print(doctor.summary(checks))
    return doctor.exit_code(checks)


def _sqlite_file(config) -> Path | None:  # noqa: ANN001 - a gateway.core.config.Config
    """The SQLite database file, or None after printing the PostgreSQL tools to use instead."""
    db = sqlite_path(config.database_url)
    if db is None:
        print(pg_dump_hint(config.database_url), file=sys.stderr)
    return db


def cmd_backup(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    try:
        db = _sqlite_file(config)
        if db is None:
            return 2
        # The copy and the integrity check, each with a spinner and its time, on stderr when a terminal.
        with phases(stderr_console()) as phase:
            result = backup_sqlite(db, Path(args.out), lambda step: phase(label(f"backup_{step}")))
    except BackupError as exc:
        return _fail(str(exc))
    print(f"backup of {db} written to {result.path}: {counted(result.bytes, 'byte')}, "
          f"{counted(result.deliveries, 'delivery', 'deliveries')}, "
          "integrity check ok")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    try:
        db = _sqlite_file(config)
        if db is None:
            return 2
        previous = _audit_anchor(config)
        result = restore_sqlite(config, db, Path(args.file))
    except BackupError as exc:
        return _fail(str(exc))
    saved = result.saved
    _audit_restore(config, args.file, saved, previous)
    print(f"restored {args.file} into {db}" + (f"; the previous database is kept in {saved}" if saved else ""))
    if result.migrated:
        print(f"the backup's schema (revision {result.backup_revision}) was migrated to revision {result.revision}")
    print("start the engine and the panel again: systemctl start allerta-engine allerta-web")
    return 0


def _audit_anchor(config) -> str | None:
    """"<id> <digest>" of the newest entry this box wrote (the anchor's signature left out)."""
    try:
        return " ".join(anchor_path_for(config.general.data_dir).read_text(encoding="ascii").split()[:2]) or None
    except OSError:
        return None


def _audit_restore(config, backup: str, saved: Path | None, previous_anchor: str | None) -> None:
    """Record the restore on the restored database's chain.

    The backup's log ends before the entries written since it was taken, so the
    anchor file (the newest entry this box wrote) no longer matches and
    ``audit verify`` would call the restore a removal. This entry is written on
    the restored chain, moves the anchor to itself, and keeps the old anchor
    (id and hash of the newest entry lost with the restore) in its details, so
    what the restore took away stays on record.
    """
    services = build_services(config)   # applies newer migrations, as the engine would
    audit_log_for(config, services.sessions).write(
        local_actor(), "database.restore", Path(backup).name, backup=str(Path(backup).resolve()),
        previous_database=str(saved) if saved else None, previous_newest_entry=previous_anchor)


def cmd_selftest(args: argparse.Namespace) -> int:
    services = build_services(load_config(args.config))
    settings = SelfTestSettings.from_config(services.config)
    try:
        run_id = start_run(services.sessions, services.alerts, settings, trigger="cli")
    except SelfTestError as exc:
        return _fail(str(exc))

    def read() -> SelfTestRun:
        with services.sessions() as session:
            return session.get(SelfTestRun, run_id)

    run = read()
    if run.result == "failed":   # could not even start (no reachable number, no voice message)
        return _fail(f"self-test {run_id} failed: {summary(json.loads(run.details or '{}'))}")
    print(f"self-test {run_id} started: alert {run.alert_id} to {len(settings.numbers)} staff number(s) "
          f"by {' and '.join(settings.channels)}; the engine sends it and judges it within "
          f"{settings.timeout.total_seconds() / 60:g} min")
    if not args.wait:
        return 0
    # The running engine sends the test and records the verdict: wait for it, a little past the timeout.
    deadline = time.monotonic() + settings.timeout.total_seconds() + 2 * settings.check_interval + 5
    while run.result is None and time.monotonic() < deadline:
        time.sleep(min(1.0, settings.check_interval))
        run = read()
    if run.result is None:
        print(f"allerta: self-test {run_id}: no verdict yet. Is the engine running ('allerta run', "
              "systemctl status allerta-engine)?", file=sys.stderr)
        return 2
    details = json.loads(run.details or "{}")
    print(f"self-test {run_id}: {run.result} ({summary(details)})")
    for missing in details.get("not_reached", []):
        error = f": {missing['error']}" if missing.get("error") else ""
        print(f"  not reached by {missing['channel']}: {missing['number']} ({missing['state']}{error})")
    return 0 if run.result == "ok" else 1


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the appliance's sub-commands on the main parser."""
    p = sub.add_parser("install", help="install the systemd units, user, directories and udev rules")
    p.add_argument("--systemd", action="store_true", help="the systemd appliance files (required)")
    p.add_argument("--root", default="/", help="install under this directory instead of / (for images, tests)")
    p.add_argument("--bin", help="the allerta command the units run (default: this environment's)")
    p.add_argument("--no-activate", action="store_true",
                   help="only write files: do not run systemd-sysusers, systemd-tmpfiles, udevadm, systemctl")
    p.set_defaults(func=cmd_install)

    p = sub.add_parser("doctor", help="check configuration, database, modems, Asterisk, tools, disk, clock")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("backup", help="a consistent copy of the database, also while the engine runs")
    p.add_argument("--out", required=True, help="file to write (SQLite database)")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("selftest", help="send a test SMS and a test call to the staff numbers ([ops] selftest_numbers)")
    p.add_argument("--wait", action="store_true",
                   help="wait for the verdict (the engine must be running); exit 1 if the self-test failed")
    p.set_defaults(func=cmd_selftest)

    p = sub.add_parser("restore", help="replace the database with a backup (the engine and the panel must be stopped)")
    p.add_argument("file")
    p.set_defaults(func=cmd_restore)
