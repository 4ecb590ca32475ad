"""The `allerta` command."""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
import threading
import time
from pathlib import Path

from rich.console import Console
from sqlalchemy import select
from sqlalchemy.orm import Session

from asterisk.asterisk_config import ConfigRenderError, render_configs
from asterisk.pbx_simulator import cli as pbx_simulator_cli
from gateway.core import zones
from gateway.core.alerts import AlertError, AlertRequest, Target, answers_audited
from gateway.core.audio import VOICES, AudioError, render_tts
from gateway.core.audit import AuditLog, audit_log_for, local_actor
from gateway.core.channels import ChannelUnusable
from gateway.core.config import DEFAULT_CONFIG_PATH, ConfigError, load_config, starter_config
from gateway.core.contacts import ContactError, erase_number
from gateway.core.contacts_import import import_contacts
from gateway.core.backup import sqlite_path
from gateway.core.db import shown_url, utcnow
from gateway.core.files import write_private
from gateway.core.logs import configure_logging
from gateway.core.models import Line
from gateway.core.models_panel import AlertApproval
from gateway.core.nodes import nodes_seen
from gateway.core.plurals import counted
from gateway.core.polls import Poll
from gateway.core.services import build_services
from gateway.core.quiet_hours import local_time
from gateway.core.states import (DUPLICATE_CAUSE_LABELS, AlertCategory, ApprovalDecision, CapCategory, Channel,
                                 NodeState)
from gateway.core.voice_messages import NoVoice, VoiceRenderer, discard, spoken_language
from gateway.core.zones import Kind, ZoneError
from gateway.shell import bench, cap_cli, elections_cli, inbox_cli, ops_cli, report_cli
from gateway.shell.composition import run_engine
from gateway.shell.live_view import cli_language, ctrl_c_sets, finished, watch
from gateway.shell.progress import counted_steps, label, stderr_console
from modem.simulator import cli as modem_simulator_cli
from web import cli as web_cli
from web.users import ensure_first_admin


class CliError(Exception):
    """A problem the operator must fix; printed without a traceback."""


def _configure_logging(verbose: bool) -> None:
    # One line per event on stdout: systemd's journal adds the time (gateway/core/logs.py).
    configure_logging(verbose)


def _services(args: argparse.Namespace):
    return build_services(load_config(args.config))


def _audit(services):
    return audit_log_for(services.config, services.sessions)


def _print_json(data) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _printed_as_json_or_empty(rows: list[dict], as_json: bool, empty: str) -> bool:
    """A listing's JSON (``--json``) or the sentence for no rows: True when that was all to print."""
    if as_json:
        _print_json(rows)
        return True
    if not rows:
        print(empty)
        return True
    return False


# --- init -----------------------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> int:
    path = Path(args.config)
    if not path.exists():
        if args.data_dir:
            data_dir = os.path.abspath(args.data_dir)
        elif str(path) == DEFAULT_CONFIG_PATH:
            data_dir = "/var/lib/allerta"
        else:
            data_dir = os.path.join(os.path.dirname(os.path.abspath(path)), "data")
        path.parent.mkdir(parents=True, exist_ok=True)
        # 0600 from the start: the admin adds the AMI secret and SIM PINs to it.
        write_private(path, starter_config(data_dir), exclusive=True)
        print(f"wrote {path}")
    config = load_config(path)
    Path(config.general.data_dir).mkdir(parents=True, exist_ok=True)
    services = build_services(config)
    # As the systemd install leaves them: residents' numbers are for the allerta user and its group only.
    _narrow(Path(config.general.data_dir), 0o750)
    database_file = sqlite_path(config.database_url)
    if database_file:
        _narrow(Path(database_file), 0o640)
    print(f"database ready: {shown_url(config.database_url)}")
    # The panel's first administrator (wired here, the composition level, so gateway's
    # domain code never depends on web/).
    created = ensure_first_admin(services.sessions,
                                 audit_log_for(config, services.sessions))
    if created:
        print(f"panel administrator: {created[0]}  password: {created[1]}  (shown once; change it under Account)")
    return 0


def _narrow(path: Path, mode: int) -> None:
    """Take away every permission beyond ``mode`` (never add one the admin took away)."""
    current = path.stat().st_mode & 0o777
    if current & ~mode:
        path.chmod(current & mode)


# --- contacts -------------------------------------------------------------------
def cmd_contacts_import(args: argparse.Namespace) -> int:
    services = _services(args)
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise CliError(f"{args.file}: {exc.strerror}") from None
    # As the panel records its imports (web/contacts.py), rejected and fatal ones too, in the import's transaction.
    audit = _audit(services)
    # A bar on stderr when it is a terminal (100,000 rows take a while); stdout's summary is unchanged.
    # The bar stays through the commit, which takes a while too ("Salvataggio").
    with counted_steps(label("reading"), None, stderr_console()) as update, audit.transaction() as s:
        stored = [0]

        def importing(done: int, total: int) -> None:
            stored[0] = done
            update(done, total, label("import"))
        report = import_contacts(services.sessions, data, region=services.config.general.region,
                                 strict=args.strict, session=s, progress=importing)
        update(stored[0], stored[0] or None, label("saving"))
        audit.record(s, local_actor(), "contacts.import", Path(args.file).name[:120],
                     imported=report.imported, created=report.contacts_created,
                     updated=report.contacts_updated, rejected=len(report.rejected), strict=args.strict,
                     fatal=report.fatal or None)
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
            print(f"{counted(report.contacts_created, 'contact')} created, {report.contacts_updated} updated, "
                  f"{report.contacts_unchanged} unchanged; {counted(report.numbers_created, 'new number')}, "
                  f"{counted(report.zones_created, 'new zone')}, {counted(report.groups_created, 'new group')}; "
                  f"{counted(len({e.line for e in report.rejected}), 'row')} rejected")
        elif not report.fatal:
            print("nothing imported" + (" (--strict and some rows were rejected)" if report.rejected else ""),
                  file=sys.stderr)
        if report.ignored_columns:
            print(f"ignored columns: {', '.join(report.ignored_columns)}")
    if report.fatal or (args.strict and report.rejected):
        return 1
    return 2 if report.rejected else 0


def cmd_contacts_erase(args: argparse.Namespace) -> int:
    services = _services(args)
    try:
        erased = erase_number(_audit(services), args.number, region=services.config.general.region,
                              actor=local_actor())
    except ContactError as exc:
        raise CliError(str(exc)) from None
    print(f"{erased.e164} erased: taken from {counted(len(erased.contacts), 'contact')}, "
          f"{counted(erased.deliveries_cancelled, 'delivery', 'deliveries')} waiting for it cancelled")
    for contact_id, name in erased.left_without_number:
        print(f"  contact {contact_id} ({name}) has no number left: "
              "delete it in the panel if the person is to be forgotten too")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    services = _services(args)
    try:
        merged = zones.merge(_audit(services), args.kind, args.source, args.into, actor=local_actor())
    except ZoneError as exc:
        raise CliError(str(exc)) from None
    print(f"{args.kind} {merged.source_name} merged into {merged.target_name}: "
          f"{counted(merged.contacts_moved, 'contact')} moved")
    return 0


def _add_directory_commands(sub: argparse._SubParsersAction, contacts: argparse._SubParsersAction) -> None:
    """`contacts erase`, `zones merge` and `groups merge`: the panel's services (gateway/core/contacts.py
    and zones.py) from the command line."""
    p = contacts.add_parser("erase", help="take a number from every contact and forget it; "
                                          "what still waits to be sent to it is cancelled")
    p.add_argument("number")
    p.set_defaults(func=cmd_contacts_erase)
    for kind in Kind:
        actions = sub.add_parser(f"{kind}s", help=f"manage {kind}s").add_subparsers(dest="action", required=True)
        p = actions.add_parser("merge", help=f"move everyone of {kind} A into {kind} B and remove A "
                                             "(names as in the panel, any case)")
        p.add_argument("source", metavar="A")
        p.add_argument("into", metavar="B")
        p.set_defaults(func=cmd_merge, kind=kind)
        if kind is Kind.ZONE:
            cap_cli.add_zone_commands(actions)


# --- alerts ---------------------------------------------------------------------
def _voice_messages(args: argparse.Namespace, services, request) -> None:
    """Render the alert's voice messages into Asterisk's sounds directory, into ``request``.

    As the panel and the API do (gateway/core/voice_messages.py): ``--lang`` is the language
    the text is written in, ``--audio`` a recording that replaces the speech.
    """
    renderer = VoiceRenderer.from_config(services.config)
    try:
        renderer.render_alert(request, services.alerts, text_language=args.lang, recording=args.audio)
    except AudioError as exc:
        raise CliError(str(exc)) from None


def _translations(pairs: list[str]) -> dict[str, str]:
    translations = {}
    for pair in pairs:
        lang, sep, text = pair.partition("=")
        if not sep or not lang.strip():
            raise CliError(f"--translation {pair!r}: write LANG=TEXT, e.g. --translation 'en=Flood warning'")
        translations[lang.strip().lower()] = text
    return translations


def _poll(args: argparse.Namespace) -> Poll | None:
    if args.poll_question is None and not args.poll_option and args.poll_closes is None:
        return None
    closes = None
    if args.poll_closes is not None:
        try:
            moment = dt.datetime.fromisoformat(args.poll_closes)
        except ValueError:
            raise CliError(f"--poll-closes {args.poll_closes!r}: not a date and time (e.g. 2026-12-04T18:00)") from None
        closes = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)  # naive: the box's local time
    return Poll(args.poll_question or "", tuple(args.poll_option), closes)


def cmd_alert_send(args: argparse.Namespace) -> int:
    services = _services(args)
    config = services.config
    channels = tuple(c for c, on in ((Channel.SMS, args.sms), (Channel.VOICE, args.voice)) if on)
    if not channels:
        raise CliError("choose a channel: --sms, --voice or both")
    if args.audio and not args.voice:
        raise CliError("--audio is for voice alerts: add --voice")
    voice = config.voice
    deadline_minutes = args.deadline_minutes or voice.deadline_minutes
    request = AlertRequest(
        text=args.text, channels=channels, drill=args.drill, priority=args.priority, created_by=local_actor(),
        target=Target(everyone=args.all, zones=tuple(args.zone), groups=tuple(args.group), numbers=tuple(args.to)),
        max_attempts=args.max_attempts or (voice.max_attempts if args.voice else config.retry.max_attempts),
        deadline=utcnow() + dt.timedelta(minutes=deadline_minutes),
        voice_interval=voice.interval if args.interval is None else args.interval,
        voice_growth=voice.growth, voice_cap=args.cap or voice.per_number_cap,
        stop_on_confirm=voice.stop_on_confirm,
        sms_fallback=args.fallback_sms or voice.sms_fallback,
        translations=_translations(args.translation),
        category=args.category, cap_category=args.cap_category,
        # Whoever may run this on the box sends without a second person (see _audit_send): an
        # approver's standing, so their election-period reason counts.
        election_reason=args.election_reason, election_reason_by=local_actor() if args.election_reason else None,
        asks_confirmation=args.ask_confirmation, poll=_poll(args))
    if args.voice and not args.audio:
        # Only a language asked for explicitly is an error; a recipient's language we
        # cannot speak falls back to the Italian message.
        try:
            spoken_language(args.lang)
        except NoVoice:
            raise CliError(f"--lang {args.lang}: no voice for this language; "
                           f"supported: {', '.join(sorted(VOICES))}") from None
    try:
        sms_text, plan = services.alerts.plan(request)
        preview = services.alerts.preview(request)  # unknown zones etc. fail before any audio is rendered
        # State the cost before anything is stored.
        print(f"encoding {plan.encoding}, {counted(plan.segments, 'segment')} per message"
              + (" (typographic characters replaced to stay in GSM-7)" if plan.transliterated else ""),
              file=sys.stderr)
        parts = ([f"{counted(preview.recipients.get('sms', 0), 'SMS recipient')}, "
                  f"{counted(preview.total_segments, 'segment')} in all"]
                 if args.sms else [])
        if args.voice:
            parts.append(f"{counted(preview.recipients.get('voice', 0), 'number')} to call")
        print(", ".join(parts) + (" [DRILL]" if args.drill else "") + f" [{_category_words(request)}]",
              file=sys.stderr)
        if args.voice:
            _voice_messages(args, services, request)
            print(f"voice message: {request.audio_seconds:.1f} s ({request.audio_source})"
                  + "".join(f", {lang} {seconds:.1f} s" for lang, (_path, seconds)
                            in sorted(request.translation_audio.items())), file=sys.stderr)
        audit = _audit(services)
        with audit.transaction() as s:  # the alert and its audit entry: both or neither
            alert_id, created = services.alerts.create(request, session=s)
            _audit_send(services, audit, s, request, alert_id, created.recipients)
    except AlertError as exc:
        discard(request)
        raise CliError(str(exc)) from None
    held = services.alerts.quiet_hold(request.category, max(utcnow(), request.send_at or utcnow()))
    if held is not None:
        print(f"held until {local_time(held):%H:%M} (quiet hours)", file=sys.stderr)
    print(alert_id)
    return 0


def _category_words(request: AlertRequest) -> str:
    if request.category == AlertCategory.INFORMATION:
        return "information"
    return f"emergency: {request.cap_category}" if request.cap_category else "emergency"


def _audit_send(services, audit: AuditLog, s: Session, request, alert_id: int,
                recipients: dict[str, int]) -> None:
    """The panel's "alert.send" entry, for an alert sent from the command line.

    Whoever can run this command on the box can send without a second person:
    the entry says so, and with [web] two_person_rule on, the alert's approval
    row is "bypassed" as when an approver sends alone from the panel.
    """
    actor = local_actor()
    rule = services.config.web.two_person_rule
    if rule:
        s.add(AlertApproval(alert_id=alert_id, requested_by=actor, decision=ApprovalDecision.BYPASSED, decided_by=actor,
                            decided_at=utcnow(), reason="sent from the command line"))
    audit.record(s, actor, "alert.send", alert_id, text=request.text, channels=list(request.channels),
                 target=request.target.describe(), drill=request.drill, recipients=recipients,
                 two_person_rule=rule, bypassed_two_person_rule=rule, via="cli",
                 translations=sorted(request.translations) or None, category=request.category,
                 cap_category=request.cap_category, election_reason=request.election_reason or None,
                 **answers_audited(request))


def cmd_alert_status(args: argparse.Namespace) -> int:
    services = _services(args)

    def fetch() -> dict:
        try:
            return services.alerts.status(args.id)
        except AlertError as exc:
            raise CliError(str(exc)) from None

    status = fetch()
    if args.json:
        _print_json(status)
        return 0
    if not args.watch:
        print("\n".join(_status_lines(status)))
        return 0
    try:
        if sys.stdout.isatty():  # one view redrawn in place (gateway/shell/live_view.py)
            with ctrl_c_sets(threading.Event()) as stop:
                watch(fetch, Console(), cli_language(), interval=args.interval, stop=stop)
            return 130 if stop.is_set() else 0
        # Not a terminal: the plain lines of `alert status` again whenever a figure changes, for scripts.
        shown: list[str] = []
        while True:
            lines = _status_lines(status)
            if lines != shown:
                print("\n".join(lines), flush=True)
                shown = lines
            if finished(status):
                return 0
            time.sleep(args.interval)
            status = fetch()
    except KeyboardInterrupt:
        return 130


def _status_lines(status: dict) -> list[str]:
    """What `allerta alert status` prints: the alert, each channel with its ETA, each line's figures."""
    lines = []
    drill = " [ESERCITAZIONE/DRILL]" if status["drill"] else ""
    category = status["category"] + (f" ({status['cap_category']})" if status["cap_category"] else "")
    lines.append(f"alert {status['alert']} ({status['state']}, {category}){drill}: "
                 f"{counted(status['recipients'], 'recipient')}, {status['encoding']} x{status['segments']}")
    if status["held_until"]:
        held = dt.datetime.fromisoformat(status["held_until"].removesuffix("Z"))
        lines.append(f"  held until {local_time(held):%H:%M} (quiet hours)")
    if status["election_reason"]:
        lines.append(f"  election period: sent with the reason of {status['election_reason_by']}: "
                     f"{status['election_reason']}")
    for channel, info in status["channels"].items():
        eta = info["eta_seconds"]
        lines.append(f"  {channel}: " + ", ".join(f"{k} {v}" for k, v in sorted(info["by_state"].items()))
                     + f"; in progress {info['in_progress']}; ETA "
                     + ("done" if eta == 0 else "unknown: no line up" if eta is None else f"{eta:.0f} s"))
    if status["possible_duplicates"]:
        causes = ", ".join(f"{count} {DUPLICATE_CAUSE_LABELS.get(cause, cause)}"
                           for cause, count in sorted(status["possible_duplicates_by_cause"].items()))
        lines.append(f"  {status['possible_duplicates']} possibly sent twice ({causes})")
    poll = status["poll"]
    if poll:
        lines.append(f"  poll {poll['question']!r}: {counted(poll['votes'], 'vote')} ({poll['changed']} changed)"
                     + ("" if poll["open"] else ", closed") + "; "
                     + ", ".join(f"{o['number']} {o['text']!r} {o['votes']}" for o in poll["options"]))
    for line, entry in sorted(status["lines"].items()):
        # Every node's lines (docs/nodes.md), each with the node that drives it.
        where = f" ({entry['node']})" if entry.get("node") else ""
        if entry.get("channel") == Channel.VOICE:
            lines.append(f"  {line}{where}: {entry.get('state', '?')}, {entry['in_use']}/{entry['limit']} calls now, "
                         f"{counted(entry['calls'], 'call')} for this alert")
        else:
            lines.append(f"  {line}{where}: {entry.get('state', '?')}, {entry['segments_sent']} sent, "
                         f"{entry['segments_delivered']} delivered")
    return lines


def cmd_alert_cancel(args: argparse.Namespace) -> int:
    services = _services(args)
    audit = _audit(services)
    try:
        # Whoever runs this on the box may stop any alert (as a panel admin may); who and why are recorded,
        # in the cancel's own transaction.
        with audit.transaction() as s:
            count = services.alerts.cancel(args.id, session=s)
            audit.record(s, local_actor(), "alert.cancel", args.id, deliveries_stopped=count,
                         reason=args.reason.strip() or None)
    except AlertError as exc:
        raise CliError(str(exc)) from None
    print(f"alert {args.id} cancelled: {counted(count, 'delivery', 'deliveries')} stopped before going out")
    return 0


# --- engine -----------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    services = _services(args)
    try:
        return asyncio.run(run_engine(services, once=args.once))
    except ChannelUnusable as exc:
        raise CliError(str(exc)) from None


def cmd_modems(args: argparse.Namespace) -> int:
    services = _services(args)
    with services.sessions() as session:
        # Every node's modems (each engine writes its own; docs/nodes.md), by node then label.
        lines = session.scalars(select(Line).where(Line.channel == Channel.SMS).order_by(Line.node, Line.label)).all()
    rows = [{"label": l.label, "node": l.node, "state": l.state, "port": l.port, "imei": l.imei, "signal": l.signal,
             "registration": l.registration, "operator": l.operator, "sim": l.sim_state, "smsc": l.smsc,
             "sent_today": l.sent_today, "daily_cap": l.daily_cap, "sent_total": l.sent_total,
             "failed_total": l.failed_total, "rate_per_minute": l.rate_per_minute, "last_error": l.last_error,
             "updated_at": l.updated_at.isoformat() + "Z" if l.updated_at else None} for l in lines]
    if _printed_as_json_or_empty(rows, args.json, "no modem has reported yet (is 'allerta run' running?)"):
        return 0
    for r in rows:
        print(f"{r['label']:<12} {r['node'] or '-':<12} {r['state']:<10} {r['port'] or '-':<24} IMEI {r['imei'] or '-'}  "
              f"CSQ {r['signal'] if r['signal'] is not None else '-'}  {r['registration'] or '-'}  "
              f"{r['operator'] or '-'}  SIM {r['sim'] or '-'}  SMSC {r['smsc'] or '-'}  "
              f"today {r['sent_today']}/{r['daily_cap']}"
              + (f"  last error: {r['last_error']}" if r['last_error'] else ""))
    return 0


def cmd_nodes(args: argparse.Namespace) -> int:
    services = _services(args)
    with services.sessions() as session:
        views = nodes_seen(session)
    rows = [{"node": v.name, "host": v.host, "pid": v.pid, "state": v.state, "live": v.live,
             "heartbeat_seconds_ago": round(v.heartbeat_age, 1), "lease_seconds": v.lease_seconds,
             "started_at": v.started_at.isoformat() + "Z", "taken_over_by": v.taken_over_by} for v in views]
    if _printed_as_json_or_empty(rows, args.json, "no engine has run on this database yet"):
        return 0
    for r in rows:
        # Ages on the database's clock: what the takeover acts on.
        late = "" if r["live"] or r["state"] != NodeState.UP else f", SILENT (lease {r['lease_seconds']:.0f} s)"
        taken = f", work taken over by {r['taken_over_by']}" if r["taken_over_by"] else ""
        print(f"{r['node']:<16} {r['state']:<8} {r['host']} pid {r['pid']}, heartbeat "
              f"{r['heartbeat_seconds_ago']:.0f} s ago{late}{taken}")
    return 0


def cmd_simulate_modems(args: argparse.Namespace) -> int:
    return modem_simulator_cli.run(args)


def cmd_simulate_pbx(args: argparse.Namespace) -> int:
    return pbx_simulator_cli.run(args)


def cmd_audio_render(args: argparse.Namespace) -> int:
    try:
        info = render_tts(args.text, args.lang, args.out, intro=args.intro, fallback=args.fallback)
    except AudioError as exc:
        raise CliError(str(exc)) from None
    print(json.dumps({"path": str(info.path), "seconds": round(info.seconds, 2), "sample_rate": info.sample_rate,
                      "channels": info.channels, "bits": info.bits}))
    return 0


def cmd_asterisk_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    a = config.asterisk
    try:
        files = render_configs(a.username, a.secret, config.sounds_dir, context=a.context,
                               ami_port=a.port, hotline_context=a.hotline_context, agi_port=a.agi_port)
    except ConfigRenderError as exc:
        raise CliError(f"[asterisk]: {exc}") from None
    gid = _asterisk_output_dir(Path(args.out)) if args.out else None
    for name, text in files.items():
        if args.out:
            # manager_allerta.conf holds the AMI secret: 0640, never world-readable.
            write_private(Path(args.out) / name, text, 0o640, gid=gid)
            print(f"wrote {Path(args.out) / name}")
        else:
            print(f";; ---- {name} ----")
            print(text)
    return 0


def _asterisk_output_dir(out: Path) -> int | None:
    """Create ``out`` (0750) if needed; the group its files must get so Asterisk can read them.

    That is the group of the directory above (Debian's /etc/asterisk belongs to group
    asterisk), applied only when we run as root: Asterisk does not run as root, and
    with 0640 files the group is its only way in.
    """
    if not out.is_dir():
        out.mkdir(parents=True, mode=0o750)
        if os.geteuid() == 0:
            os.chown(out, -1, out.parent.stat().st_gid)
    return out.parent.stat().st_gid if os.geteuid() == 0 else None


def cmd_demo(args: argparse.Namespace) -> int:
    # Imported here, not at the top: the demo pulls in both simulators' harnesses, the panel and
    # its TLS server, start-up cost that `allerta run` and every other command would pay.
    from gateway.shell.demo import run_demo

    return run_demo(args)


def cmd_bench(args: argparse.Namespace) -> int:
    # The JSON goes to stdout; while the bench runs, its progress (messages sent, for bench sms) and the time
    # spent on stderr, a terminal only: a run through a pipe asks nothing more of the database.
    console = stderr_console()
    with counted_steps(f"{label('bench')}: allerta bench {args.what}", None, console) as update:
        result = bench.run(args, progress=update if console is not None else None)
    print(json.dumps(result, indent=2))
    return 0


# --- parser -------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="allerta", description="Emergency alerts by SMS and voice, on premise.")
    parser.add_argument("--config", default=os.environ.get("ALLERTA_CONFIG", DEFAULT_CONFIG_PATH),
                        help=f"configuration file (default {DEFAULT_CONFIG_PATH}, or $ALLERTA_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_init_command(sub)
    _add_contacts_commands(sub)
    _add_alert_commands(sub)
    _add_engine_commands(sub)
    _add_simulate_commands(sub)
    _add_voice_tool_commands(sub)
    _add_demo_command(sub)
    ops_cli.add_commands(sub)
    cap_cli.add_commands(sub)
    elections_cli.add_commands(sub)
    inbox_cli.add_commands(sub)
    web_cli.add_commands(sub)
    _add_bench_commands(sub)
    return parser


def _add_init_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init", help="write a starter configuration and create the database")
    p.add_argument("--data-dir", help="data directory for a new configuration")
    p.set_defaults(func=cmd_init)


def _add_contacts_commands(sub: argparse._SubParsersAction) -> None:
    """`contacts import`, then `contacts erase`, `zones merge` and `groups merge`."""
    contacts = sub.add_parser("contacts", help="manage contacts").add_subparsers(dest="action", required=True)
    p = contacts.add_parser("import", help="import a CSV export (Italian or English headers)")
    p.add_argument("file")
    p.add_argument("--strict", action="store_true", help="import nothing if any row is rejected")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_contacts_import)
    _add_directory_commands(sub, contacts)


def _add_alert_commands(sub: argparse._SubParsersAction) -> None:
    alert = sub.add_parser("alert", help="send and follow alerts").add_subparsers(dest="action", required=True)
    _add_alert_send_command(alert)
    p = alert.add_parser("status", help="progress of an alert")
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")
    p.add_argument("--watch", action="store_true",
                   help="follow it until it is finished: a live view on a terminal, the plain lines again "
                        "whenever a figure changes otherwise")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between two reads with --watch (default 1)")
    p.set_defaults(func=cmd_alert_status)
    p = alert.add_parser("cancel", help="stop what has not gone out")
    p.add_argument("id", type=int)
    p.add_argument("--reason", default="", help="why: written in the audit log")
    p.set_defaults(func=cmd_alert_cancel)
    report_cli.add_report_command(alert)


def _add_alert_send_command(alert: argparse._SubParsersAction) -> None:
    p = alert.add_parser("send", help="create an alert and queue it for the engine")
    p.add_argument("--sms", action="store_true", help="send by SMS to mobile numbers")
    p.add_argument("--voice", action="store_true", help="call every number (landlines too) through Asterisk")
    target = p.add_argument_group("recipients")
    target.add_argument("--zone", action="append", default=[], help="a zone (repeatable)")
    target.add_argument("--group", action="append", default=[], help="a group (repeatable)")
    target.add_argument("--all", action="store_true", help="every contact")
    target.add_argument("--to", action="append", default=[], help="a single number (repeatable)")
    p.add_argument("--text", required=True, help="the message (SMS text, and speech unless --audio is given)")
    p.add_argument("--audio", help="voice: a recording (WAV, MP3, OGG) instead of synthesised speech")
    p.add_argument("--lang", default="it", help="voice: language the text is written in (default it); every "
                   "recipient hears the introduction and closing in their own language")
    p.add_argument("--translation", action="append", default=[], metavar="LANG=TEXT",
                   help="the message in another language (repeatable): recipients of that language get it, "
                        "by SMS and spoken")
    p.add_argument("--fallback-sms", action="store_true", help="voice: unconfirmed mobiles get the SMS at the end")
    p.add_argument("--max-attempts", type=int, help="attempts per number (default from the configuration)")
    p.add_argument("--interval", type=float, help="voice: seconds between calls to a number (grows)")
    p.add_argument("--cap", type=int, help="voice: hard cap of calls per number")
    p.add_argument("--deadline-minutes", type=float, help="nothing is tried after this many minutes")
    p.add_argument("--drill", action="store_true", help="an exercise: marked in the text and in reports")
    p.add_argument("--priority", action="store_true", help="goes before every other alert")
    p.add_argument("--category", choices=list(AlertCategory),
                   help="emergency (life safety: ignores STOP INFO, quiet hours and the election lock) or "
                        "information (public utility); default emergency")
    p.add_argument("--cap-category", metavar="CAP",
                   help=f"what an emergency is about, as CAP says it: {', '.join(CapCategory)} (default "
                        "Safety)")
    p.add_argument("--election-reason", metavar="TEXT",
                   help="during an election period (allerta elections list), why this information message is "
                        "impersonal and indispensable (law 28/2000, art. 9): kept with the alert and audited")
    answers = p.add_argument_group("answers by SMS (one or the other)")
    answers.add_argument("--ask-confirmation", action="store_true",
                         help="the SMS ends with 'Rispondi OK per confermare.'")
    answers.add_argument("--poll-question", help="a poll: the SMS ends with the question and "
                         "'Rispondi 1 se ..., 2 se ...'; one vote per number")
    answers.add_argument("--poll-option", action="append", default=[], metavar="TEXT",
                         help="an option of the poll, in order (2 to 9)")
    answers.add_argument("--poll-closes", metavar="TIME", help="votes after this time do not count "
                         "(ISO 8601; without an offset, the box's local time)")
    p.set_defaults(func=cmd_alert_send)


def _add_engine_commands(sub: argparse._SubParsersAction) -> None:
    """`run`, `modems` and `nodes`."""
    p = sub.add_parser("run", help="run the engine")
    p.add_argument("--once", action="store_true", help="drain the queue (and status reports) and exit")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("modems", help="health of every modem, as last written by the engine")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_modems)

    p = sub.add_parser("nodes", help="the engines sharing the database and their heartbeats (docs/nodes.md)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_nodes)


def _add_simulate_commands(sub: argparse._SubParsersAction) -> None:
    simulate = sub.add_parser("simulate", help="simulators for drills, demos and tests").add_subparsers(
        dest="what", required=True)
    p = simulate.add_parser("modems", help="GSM modems on pseudo-terminals")
    modem_simulator_cli.add_arguments(p)
    p.set_defaults(func=cmd_simulate_modems)

    p = simulate.add_parser("pbx", help="an Asterisk AMI server with simulated callees")
    pbx_simulator_cli.add_arguments(p)
    p.set_defaults(func=cmd_simulate_pbx)


def _add_voice_tool_commands(sub: argparse._SubParsersAction) -> None:
    """`audio render` and `asterisk config`."""
    audio = sub.add_parser("audio", help="voice messages").add_subparsers(dest="action", required=True)
    p = audio.add_parser("render", help="render text to an 8 kHz WAV with espeak-ng, for checking")
    p.add_argument("--text", required=True)
    p.add_argument("--lang", default="it")
    p.add_argument("--intro", help="e.g. 'Messaggio del Comune di Fiumicino.'")
    p.add_argument("--fallback", action="store_true", help="read an unsupported language in Italian")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_audio_render)

    p = sub.add_parser("asterisk", help="Asterisk integration").add_subparsers(dest="action", required=True)
    p = p.add_parser("config", help="the dialplan and AMI user we ship, filled from our configuration")
    p.add_argument("--print", action="store_true", help="print them (default)")
    p.add_argument("--out", help="write them into this directory instead")
    p.set_defaults(func=cmd_asterisk_config)


def _add_demo_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="simulated modems and Asterisk, engine, web panel and a drill alert "
                                    "on a throwaway database")
    p.add_argument("--contacts", type=int, default=3000)
    p.add_argument("--modems", type=int, default=4)
    p.add_argument("--keep", metavar="DIR", help="keep the demo's files in DIR")
    p.add_argument("--latency", type=float, default=1.0, help="median seconds a simulated modem takes per SMS")
    p.add_argument("--channels", type=int, default=8, help="voice channels of the simulated trunk")
    p.add_argument("--time-scale", type=float, default=0.1,
                   help="simulated calls run at this fraction of real time (0.1: ten times faster)")
    p.add_argument("--port", type=int, help="HTTP port of the panel on 127.0.0.1 (default: a free one)")
    p.add_argument("--no-browser", action="store_true", help="do not open the panel in a browser")
    p.add_argument("--exit-when-done", action="store_true",
                   help="exit once the drill alert is done on both channels")
    p.set_defaults(func=cmd_demo)


DATABASE_URL_HELP = ("an EMPTY database to run on instead of a temporary SQLite file, e.g. "
                     "postgresql+psycopg://allerta@/allerta_bench?host=/var/run/postgresql")


def _add_bench_commands(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="benchmarks; print JSON").add_subparsers(dest="what", required=True)
    p = bench.add_parser("sms", help="engine plus simulated modems")
    p.add_argument("--modems", type=int, default=64)
    p.add_argument("--messages", type=int, default=3000)
    p.add_argument("--latency", type=float, default=0.5)
    p.add_argument("--report-delay", type=float, default=0.05, help="seconds from submit to status report")
    p.add_argument("--keep", metavar="DIR", help="keep the benchmark's files (database, logs) in DIR")
    p.add_argument("--cprofile", metavar="FILE", help="run the engine under cProfile, stats to FILE")
    p.add_argument("--lock-db", metavar="SECONDS", type=float, default=0.0,
                   help="write-lock the database for SECONDS once a fifth of the messages went out; "
                        "report the send rate during and outside the lock (SQLite only)")
    p.add_argument("--database-url", metavar="URL", help=DATABASE_URL_HELP)
    p.add_argument("--profile", default="telit",
                   help="simulated modem model: telit (status reports in the SR memory, the path measured since "
                        "the first figures), generic or huawei (reports stored with received SMS), sim800")
    p.add_argument("--nodes", type=int, metavar="N",
                   help="N engines on one PostgreSQL (--database-url, else a throwaway cluster), --modems each, "
                        "sharing the alert; ratios per node and in total (docs/nodes.md)")
    p.add_argument("--kill-after", type=float, metavar="SECONDS",
                   help="with --nodes: kill -9 the first node SECONDS after its first submit; report the takeover")
    p.add_argument("--lease", type=float, default=10.0, help="with --nodes: [engine] lease_seconds of each node")
    p.set_defaults(func=cmd_bench)
    p = bench.add_parser("voice", help="engine plus the PBX simulator (time-scaled)")
    p.add_argument("--channels", type=int, default=30)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--message-seconds", type=float, default=20.0)
    p.add_argument("--time-scale", type=float, default=0.02)
    p.set_defaults(func=cmd_bench)
    p = bench.add_parser("hotline", help="callers ringing the hotline while an alert keeps the trunk busy")
    p.add_argument("--channels", type=int, default=30)
    p.add_argument("--inbound-reserved", type=int, default=10)
    p.add_argument("--callers", type=int, default=600)
    p.add_argument("--minutes", type=float, default=10.0, help="simulated minutes the callers are spread over")
    p.add_argument("--time-scale", type=float, default=0.05)
    p.add_argument("--keep", metavar="DIR", help="keep the benchmark's files in DIR")
    p.set_defaults(func=cmd_bench)
    p = bench.add_parser("inbound", help="a reply storm while an SMS alert goes out over simulated modems")
    p.add_argument("--modems", type=int, default=8)
    p.add_argument("--recipients", type=int, default=10_000, help="the alert's recipients")
    p.add_argument("--messages", type=int, default=2000, help="replies that arrive while it goes out")
    p.add_argument("--latency", type=float, default=0.1, help="seconds per SMS submission on a modem")
    p.add_argument("--keep", metavar="DIR", help="keep the benchmark's files (database, logs) in DIR")
    p.set_defaults(func=cmd_bench)
    p = bench.add_parser("fanout", help="time to create an alert for many recipients")
    p.add_argument("--contacts", type=int, default=100_000)
    p.add_argument("--keep", metavar="DIR", help="keep the benchmark's database in DIR")
    p.add_argument("--database-url", metavar="URL", help=DATABASE_URL_HELP)
    p.set_defaults(func=cmd_bench)
    p = bench.add_parser("web", help="server time of the panel's pages over a seeded database")
    p.add_argument("--contacts", type=int, default=100_000)
    p.add_argument("--requests", type=int, default=30, help="timed requests per page")
    p.add_argument("--exports", type=int, default=3, help="timed CSV exports of the big alert")
    p.add_argument("--reports", type=int, default=2, help="timed after-action reports (PDF) of the big alert")
    p.add_argument("--keep", metavar="DIR", help="keep the benchmark's database in DIR")
    p.set_defaults(func=cmd_bench)


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
