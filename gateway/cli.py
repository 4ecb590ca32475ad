"""The `allerta` command."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path

from gateway.config import DEFAULT_CONFIG_PATH, ConfigError, load_config, starter_config


class CliError(Exception):
    """A problem the operator must fix; printed without a traceback."""


def _configure_logging(verbose: bool) -> None:
    # One line per event on stdout: systemd's journal adds the time.
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stdout,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("gsmmodem").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _services(args: argparse.Namespace):
    from gateway.composition import build_services
    return build_services(load_config(args.config))


def _print_json(data) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


# --- init -----------------------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> int:
    from gateway.composition import build_services
    path = Path(args.config)
    if not path.exists():
        if args.data_dir:
            data_dir = os.path.abspath(args.data_dir)
        elif str(path) == DEFAULT_CONFIG_PATH:
            data_dir = "/var/lib/allerta"
        else:
            data_dir = os.path.join(os.path.dirname(os.path.abspath(path)), "data")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(starter_config(data_dir), encoding="utf-8")
        print(f"wrote {path}")
    config = load_config(path)
    Path(config.general["data_dir"]).mkdir(parents=True, exist_ok=True)
    build_services(config)
    print(f"database ready: {config.database_url}")
    return 0


# --- contacts -------------------------------------------------------------------
def cmd_contacts_import(args: argparse.Namespace) -> int:
    from gateway.contacts_import import import_contacts
    services = _services(args)
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise CliError(f"{args.file}: {exc.strerror}") from None
    report = import_contacts(services.sessions, data, region=services.config.general["region"], strict=args.strict)
    if args.json:
        _print_json({"imported": report.imported, "fatal": report.fatal, "created": report.contacts_created,
                     "updated": report.contacts_updated, "unchanged": report.contacts_unchanged,
                     "numbers_created": report.numbers_created, "zones_created": report.zones_created,
                     "groups_created": report.groups_created, "ignored_columns": report.ignored_columns,
                     "rejected": [{"line": e.line, "column": e.column, "reason": e.reason} for e in report.rejected]})
    else:
        if report.fatal:
            print(f"{args.file}: {report.fatal}; nothing imported", file=sys.stderr)
        for error in report.rejected:
            print(f"{args.file}: {error}", file=sys.stderr)
        if report.imported:
            print(f"{report.contacts_created} contacts created, {report.contacts_updated} updated, "
                  f"{report.contacts_unchanged} unchanged; {report.numbers_created} new numbers, "
                  f"{report.zones_created} new zones, {report.groups_created} new groups; "
                  f"{len(report.rejected)} rows rejected")
        elif not report.fatal:
            print("nothing imported" + (" (--strict and some rows were rejected)" if report.rejected else ""),
                  file=sys.stderr)
        if report.ignored_columns:
            print(f"ignored columns: {', '.join(report.ignored_columns)}")
    if report.fatal or (args.strict and report.rejected):
        return 1
    return 2 if report.rejected else 0


# --- alerts ---------------------------------------------------------------------
def cmd_alert_send(args: argparse.Namespace) -> int:
    from gateway.alerts import AlertError, AlertRequest, Target
    services = _services(args)
    channels = tuple(c for c, on in (("sms", args.sms),) if on)
    if not channels:
        raise CliError("choose a channel: --sms")
    request = AlertRequest(text=args.text, channels=channels, drill=args.drill, priority=args.priority,
                           target=Target(everyone=args.all, zones=tuple(args.zone), groups=tuple(args.group),
                                         numbers=tuple(args.to)),
                           max_attempts=services.config.retry["max_attempts"])
    try:
        sms_text, plan = services.alerts.plan(request)
        # State the cost before anything is stored.
        print(f"encoding {plan.encoding}, {plan.segments} segment(s) per message"
              + (" (typographic characters replaced to stay in GSM-7)" if plan.transliterated else ""),
              file=sys.stderr)
        alert_id, preview = services.alerts.create(request)
    except AlertError as exc:
        raise CliError(str(exc)) from None
    print(f"{preview.recipients.get('sms', 0)} recipients, {preview.total_segments} segments in total"
          + (" [DRILL]" if args.drill else ""), file=sys.stderr)
    print(alert_id)
    return 0


def cmd_alert_status(args: argparse.Namespace) -> int:
    from gateway.alerts import AlertError
    services = _services(args)
    try:
        status = services.alerts.status(args.id)
    except AlertError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        _print_json(status)
        return 0
    drill = " [ESERCITAZIONE/DRILL]" if status["drill"] else ""
    print(f"alert {status['alert']} ({status['state']}){drill}: {status['recipients']} recipients, "
          f"{status['encoding']} x{status['segments']}")
    print("  " + ", ".join(f"{k} {v}" for k, v in status["by_state"].items()))
    if status["possible_duplicates"]:
        print(f"  {status['possible_duplicates']} possibly sent twice (engine restart)")
    for line, entry in sorted(status["lines"].items()):
        print(f"  {line}: {entry.get('state', '?')}, {entry['segments_sent']} sent, "
              f"{entry['segments_delivered']} delivered")
    eta = status["eta_seconds"]
    print("  ETA: " + ("done" if eta == 0 else "unknown: no modem up" if eta is None else f"{eta:.0f} s"))
    return 0


def cmd_alert_cancel(args: argparse.Namespace) -> int:
    from gateway.alerts import AlertError
    services = _services(args)
    try:
        count = services.alerts.cancel(args.id)
    except AlertError as exc:
        raise CliError(str(exc)) from None
    print(f"alert {args.id} cancelled: {count} deliveries stopped before going out")
    return 0


# --- engine -----------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from gateway.composition import run_engine
    services = _services(args)
    return asyncio.run(run_engine(services, once=args.once))


def cmd_modems(args: argparse.Namespace) -> int:
    from sqlalchemy import select
    from gateway.models import Line
    services = _services(args)
    with services.sessions() as session:
        lines = session.scalars(select(Line).where(Line.channel == "sms").order_by(Line.label)).all()
    rows = [{"label": l.label, "state": l.state, "port": l.port, "imei": l.imei, "signal": l.signal,
             "registration": l.registration, "operator": l.operator, "sim": l.sim_state,
             "sent_today": l.sent_today, "daily_cap": l.daily_cap, "sent_total": l.sent_total,
             "failed_total": l.failed_total, "rate_per_minute": l.rate_per_minute, "last_error": l.last_error,
             "updated_at": l.updated_at.isoformat() + "Z" if l.updated_at else None} for l in lines]
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("no modem has reported yet (is 'allerta run' running?)")
    for r in rows:
        print(f"{r['label']:<12} {r['state']:<10} {r['port'] or '-':<24} IMEI {r['imei'] or '-'}  "
              f"CSQ {r['signal'] if r['signal'] is not None else '-'}  {r['registration'] or '-'}  "
              f"{r['operator'] or '-'}  SIM {r['sim'] or '-'}  today {r['sent_today']}/{r['daily_cap']}"
              + (f"  last error: {r['last_error']}" if r['last_error'] else ""))
    return 0


def cmd_simulate_modems(args: argparse.Namespace) -> int:
    from modem.simulator.cli import run
    return run(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo
    return run_demo(args)


def cmd_bench(args: argparse.Namespace) -> int:
    from gateway import bench
    result = bench.run(args)
    print(json.dumps(result, indent=2))
    return 0


# --- parser -------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="allerta", description="Emergency alerts by SMS and voice, on premise.")
    parser.add_argument("--config", default=os.environ.get("ALLERTA_CONFIG", DEFAULT_CONFIG_PATH),
                        help=f"configuration file (default {DEFAULT_CONFIG_PATH}, or $ALLERTA_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="write a starter configuration and create the database")
    p.add_argument("--data-dir", help="data directory for a new configuration")
    p.set_defaults(func=cmd_init)

    contacts = sub.add_parser("contacts", help="manage contacts").add_subparsers(dest="action", required=True)
    p = contacts.add_parser("import", help="import a CSV export (Italian or English headers)")
    p.add_argument("file")
    p.add_argument("--strict", action="store_true", help="import nothing if any row is rejected")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_contacts_import)

    alert = sub.add_parser("alert", help="send and follow alerts").add_subparsers(dest="action", required=True)
    p = alert.add_parser("send", help="create an alert and queue it for the engine")
    p.add_argument("--sms", action="store_true", help="send by SMS to mobile numbers")
    target = p.add_argument_group("recipients")
    target.add_argument("--zone", action="append", default=[], help="a zone (repeatable)")
    target.add_argument("--group", action="append", default=[], help="a group (repeatable)")
    target.add_argument("--all", action="store_true", help="every contact")
    target.add_argument("--to", action="append", default=[], help="a single number (repeatable)")
    p.add_argument("--text", required=True)
    p.add_argument("--drill", action="store_true", help="an exercise: marked in the text and in reports")
    p.add_argument("--priority", action="store_true", help="goes before every other alert")
    p.set_defaults(func=cmd_alert_send)
    p = alert.add_parser("status", help="progress of an alert")
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_alert_status)
    p = alert.add_parser("cancel", help="stop what has not gone out")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_alert_cancel)

    p = sub.add_parser("run", help="run the engine")
    p.add_argument("--once", action="store_true", help="drain the queue (and status reports) and exit")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("modems", help="health of every modem, as last written by the engine")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_modems)

    simulate = sub.add_parser("simulate", help="simulators for drills, demos and tests").add_subparsers(
        dest="what", required=True)
    p = simulate.add_parser("modems", help="GSM modems on pseudo-terminals")
    try:
        from modem.simulator.cli import add_arguments
        add_arguments(p)
    except ImportError:  # TEMP while the simulator is written
        pass
    p.set_defaults(func=cmd_simulate_modems)

    p = sub.add_parser("demo", help="simulated modems, engine and a drill alert on a throwaway database")
    p.add_argument("--contacts", type=int, default=3000)
    p.add_argument("--modems", type=int, default=4)
    p.add_argument("--keep", metavar="DIR", help="keep the demo's files in DIR")
    p.set_defaults(func=cmd_demo)

    bench = sub.add_parser("bench", help="benchmarks; print JSON").add_subparsers(dest="what", required=True)
    p = bench.add_parser("sms", help="engine plus simulated modems")
    p.add_argument("--modems", type=int, default=64)
    p.add_argument("--messages", type=int, default=3000)
    p.add_argument("--latency", type=float, default=0.5)
    p.set_defaults(func=cmd_bench)
    p = bench.add_parser("fanout", help="time to create an alert for many recipients")
    p.add_argument("--contacts", type=int, default=100_000)
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return args.func(args)
    except (ConfigError, CliError) as exc:
        print(f"allerta: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
