"""`allerta inbox`: what citizens wrote, an operator's reply, help requests handled (gateway/core/inbox.py).

The same services as the panel's Inbox: a reply from the console is checked,
queued below the alerts and audited as "cli:<user>", exactly as one from the browser.
"""
from __future__ import annotations

import argparse
import json
import sys

from gateway.core import inbox
from gateway.core.audit import audit_log_for, local_actor
from gateway.core.config import load_config
from gateway.core.replies import ReplyError
from gateway.core.services import build_services


MAX_LIMIT = 100_000


def _fail(message: str) -> int:
    print(f"allerta: {message}", file=sys.stderr)
    return 2


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def cmd_inbox(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= MAX_LIMIT:
        return _fail(f"--limit {args.limit}: give a number from 1 to {MAX_LIMIT}")
    services = build_services(load_config(args.config))
    query = inbox.InboxQuery(kind=args.kind, sender=args.sender)
    try:
        with services.sessions() as s:
            messages, total = inbox.list_messages(s, query, limit=args.limit)
    except inbox.InboxError as exc:
        return _fail(str(exc))
    if args.json:
        _print_json({"total": total, "messages": messages})
        return 0
    if not messages:
        print("no message")
    for m in messages:
        who = f"{m['sender']} ({m['name']})" if m["name"] else m["sender"]
        flags = (" [incomplete]" if m["incomplete"] else "") + (f" alert {m['alert_id']}" if m["alert_id"] else "")
        print(f"{m['id']:>6} {m['received_at']} {m['line']:<10} {who}: {_one_line(m['text'])!r} -> "
              f"{m['kind'] or 'not processed yet'}{': ' + m['outcome'] if m['outcome'] else ''}{flags}")
    if total > len(messages):
        print(f"({len(messages)} of {total}: --limit for more)")
    return 0


def cmd_inbox_reply(args: argparse.Namespace) -> int:
    services = build_services(load_config(args.config))
    audit = audit_log_for(services.config, services.sessions)
    try:
        queued = inbox.reply(audit, args.id, args.text, actor=local_actor(), region=services.config.general.region)
    except (inbox.InboxError, ReplyError) as exc:
        return _fail(f"reply to message {args.id} not sent: {exc}")
    print(f"reply {queued.id} queued to {queued.e164}: it goes out when no alert is waiting")
    return 0


def cmd_inbox_help_requests(args: argparse.Namespace) -> int:
    services = build_services(load_config(args.config))
    with services.sessions() as s:
        rows = inbox.help_requests(s, open_only=not args.all)
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("no open help request" if not args.all else "no help request")
    for h in rows:
        person = ", ".join(filter(None, (h["name"], h["address"], h["zone"], "VULNERABLE" if h["vulnerable"] else "",
                                         h["needs"])))
        state = f"handled by {h['handled_by']} at {h['handled_at']}" if h["handled_at"] else "OPEN"
        print(f"{h['id']:>5} {h['received_at']} {h['e164']} ({person or 'unknown'}): {_one_line(h['text'])!r} "
              f"alert {h['alert_id'] or '-'} {state}")
    return 0


def cmd_inbox_handled(args: argparse.Namespace) -> int:
    services = build_services(load_config(args.config))
    audit = audit_log_for(services.config, services.sessions)
    try:
        request = inbox.mark_handled(audit, args.id, actor=local_actor(), note=args.note)
    except inbox.InboxError as exc:
        return _fail(str(exc))
    print(f"help request {request.id} from {request.e164} marked handled")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inbox", help="SMS received from citizens, newest first; reply, handle help requests")
    p.add_argument("--json", action="store_true")
    p.add_argument("--kind", choices=inbox.KINDS, help="only messages understood as this")
    p.add_argument("--sender", help="only numbers containing this")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.set_defaults(func=cmd_inbox)
    actions = p.add_subparsers(dest="action")
    reply = actions.add_parser("reply", help="answer one message by SMS (queued below alerts, audited)")
    reply.add_argument("id", type=int, help="the message's id, as `allerta inbox` lists it")
    reply.add_argument("--text", required=True)
    reply.set_defaults(func=cmd_inbox_reply)
    helps = actions.add_parser("help-requests", help="help requests still open (--all: handled ones too)")
    helps.add_argument("--all", action="store_true")
    helps.add_argument("--json", action="store_true")
    helps.set_defaults(func=cmd_inbox_help_requests)
    handled = actions.add_parser("handled", help="mark a help request handled (audited): its alarm ends")
    handled.add_argument("id", type=int, help="the help request's id")
    handled.add_argument("--note", default="", help="what was done")
    handled.set_defaults(func=cmd_inbox_handled)
