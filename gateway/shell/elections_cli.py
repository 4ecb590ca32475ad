"""`allerta elections add | list | revoke`: the election periods (law 28/2000, art. 9) from the command line.

The panel's admin page (web/elections.py) does the same through gateway/core/elections.py; whoever runs
these commands on the box acts as an administrator, recorded in the audit log as cli:<unix user>.
"""
from __future__ import annotations

import argparse
import json
import sys

from gateway.core.audit import audit_log_for, local_actor
from gateway.core.config import load_config
from gateway.core.db import utcnow
from gateway.core.elections import (ElectionError, add_period, list_periods, parse_moment, revoke_period,
                                    scheduled_information)
from gateway.core.services import build_services


def _fail(message: str) -> int:
    print(f"allerta: {message}", file=sys.stderr)
    return 2


def cmd_add(args: argparse.Namespace) -> int:
    services = build_services(load_config(args.config))
    try:
        starts = parse_moment(args.starts, option="--from")
        ends = parse_moment(args.ends, option="--to", end_of_day=True)
        period = add_period(audit_log_for(services.config, services.sessions), starts, ends, args.description,
                            actor=local_actor())
    except ElectionError as exc:
        return _fail(str(exc))
    print(f"election period {period.id} recorded: {period.description}, {period.local_span()} (Italian time)")
    with services.sessions() as s:
        scheduled = scheduled_information(s, period)
    if scheduled:
        print(f"information alerts scheduled inside it, decided before the period existed: "
              f"{', '.join(map(str, scheduled))} (review them: 'allerta alert cancel ID')", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    services = build_services(load_config(args.config))
    periods = list_periods(services.sessions)
    now = utcnow()
    if args.json:
        print(json.dumps([period.as_json(now) for period in periods], indent=2, ensure_ascii=False))
        return 0
    if not periods:
        print("no election period recorded")
    for period in periods:
        print(f"{period.id:>4}  {period.state(now):<9} {period.local_span()}  {period.description}"
              f"  (by {period.created_by})")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    services = build_services(load_config(args.config))
    try:
        period = revoke_period(audit_log_for(services.config, services.sessions), args.id, actor=local_actor())
    except ElectionError as exc:
        return _fail(str(exc))
    print(f"election period {period.id} revoked: {period.description}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    elections = sub.add_parser("elections", help="election periods: information messages need an approver's "
                                                 "reason during them (law 28/2000, art. 9)")
    actions = elections.add_subparsers(dest="action", required=True)
    p = actions.add_parser("add", help="record a period, from the calling of the election to the close of the polls")
    p.add_argument("--from", dest="starts", required=True, metavar="WHEN",
                   help="YYYY-MM-DD (from 00:00) or 'YYYY-MM-DD HH:MM', Italian time")
    p.add_argument("--to", dest="ends", required=True, metavar="WHEN",
                   help="YYYY-MM-DD (to the end of that day) or 'YYYY-MM-DD HH:MM', Italian time")
    p.add_argument("--description", required=True, help="which election, e.g. 'Comunali 2027': shown on the banner")
    p.set_defaults(func=cmd_add)
    p = actions.add_parser("list", help="every period recorded, newest first")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = actions.add_parser("revoke", help="revoke a period recorded by mistake (kept, marked revoked)")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_revoke)
