"""`allerta` sub-commands of the panel (web, users, audit)."""
from __future__ import annotations

import argparse
import getpass
import json
import sys

from sqlalchemy import func, select

from gateway.core.audit import audit_log_for, local_actor, parse_head
from gateway.core.config import load_config
from gateway.core.db import utcnow
from gateway.core.models_panel import ApiToken, AuditEntry
from gateway.core.services import build_services
from web.tokens import (DEFAULT_DAYS, MAX_DAYS, TOKEN_ROLES, TokenError, create_token, owners_active, revoke_token,
                        token_state)
from web.users import UserError, add_user, generate_password, list_users, refused_names, set_active, set_password


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the panel's sub-commands on the main parser."""
    p = sub.add_parser("web", help="serve the operator panel (HTTP with waitress, HTTPS with cheroot)")
    p.add_argument("--host", help="address to listen on (default [web] listen)")
    p.add_argument("--port", type=int, help="HTTP port (default [web] port)")
    p.add_argument("--https-port", type=int, help="HTTPS port, 0 for none (default [web] https_port)")
    p.set_defaults(func=cmd_web)

    users = sub.add_parser("users", help="panel users").add_subparsers(dest="action", required=True)
    p = users.add_parser("add", help="add a user (the password is asked, or generated and printed once)")
    p.add_argument("username")
    p.add_argument("--role", required=True, choices=("viewer", "operator", "approver", "admin"))
    p.add_argument("--language", default="it", choices=("it", "en"))
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.add_argument("--generate", action="store_true", help="generate a password and print it once")
    p.set_defaults(func=cmd_users_add)
    p = users.add_parser("passwd", help="set a user's password (ends their sessions, unlocks the account)")
    p.add_argument("username")
    p.add_argument("--password-stdin", action="store_true")
    p.add_argument("--generate", action="store_true")
    p.set_defaults(func=cmd_users_passwd)
    for name, active, text in (("disable", False, "disable a user (ends their sessions)"),
                               ("enable", True, "enable a disabled user")):
        p = users.add_parser(name, help=text)
        p.add_argument("username")
        p.set_defaults(func=cmd_users_active, active=active)
    p = users.add_parser("list", help="list users")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_users_list)

    tokens = sub.add_parser("tokens", help="API tokens for other systems").add_subparsers(dest="action", required=True)
    p = tokens.add_parser("create", help="create a token and print it once (only its hash is stored)")
    p.add_argument("name", help="which system uses it; unique")
    p.add_argument("--role", required=True, choices=TOKEN_ROLES)
    p.add_argument("--expires", type=int, default=DEFAULT_DAYS, metavar="DAYS",
                   help=f"days until it stops working (default {DEFAULT_DAYS}, at most {MAX_DAYS})")
    p.add_argument("--owner", metavar="USER",
                   help="the panel account it acts for; it dies with that account (default: the only active admin)")
    p.set_defaults(func=cmd_tokens_create)
    p = tokens.add_parser("list", help="list tokens: name, role, owner, expiry, state")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tokens_list)
    p = tokens.add_parser("revoke", help="revoke a token by name")
    p.add_argument("name")
    p.set_defaults(func=cmd_tokens_revoke)

    audit = sub.add_parser("audit", help="the audit log").add_subparsers(dest="action", required=True)
    p = audit.add_parser("verify", help="check the keyed hash chain; exit 1 naming any edited or removed entry")
    p.add_argument("--head", metavar="'COUNT DIGEST'",
                   help="the head written in the paper log book ('allerta audit head'): that entry must be unchanged")
    p.set_defaults(func=cmd_audit_verify)
    p = audit.add_parser("head", help="the newest entry's count, date and digest, to write in the paper log book")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_audit_head)


def _panel(args: argparse.Namespace):  # noqa: ANN202
    services = build_services(load_config(args.config))
    return services, audit_log_for(services.config, services.sessions)


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """(password, generated)."""
    if args.generate:
        return generate_password(args.username), True
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n"), False
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise SystemExit("allerta: the two passwords differ")
    return first, False


def _fail(message: str) -> int:
    print(f"allerta: {message}", file=sys.stderr)
    return 2


def cmd_web(args: argparse.Namespace) -> int:
    # Imported here, not at the top: Flask, every panel page and the TLS server cost ~0.2 s of
    # start-up that every other `allerta` command (this module builds their parser) would pay.
    from web.app import create_app
    from web.serve import serve

    services = build_services(load_config(args.config))
    app = create_app(services)
    try:
        serve(app, services.config, host=args.host, port=args.port, https_port=args.https_port)
    except (OSError, FileNotFoundError) as exc:
        return _fail(str(exc))
    return 0


def cmd_users_add(args: argparse.Namespace) -> int:
    services, audit = _panel(args)
    password, generated = _password(args)
    try:
        add_user(services.sessions, audit, args.username, password, args.role, language=args.language, actor=local_actor())
    except UserError as exc:
        return _fail(str(exc))
    print(f"user {args.username} ({args.role}) added" + (f"; password: {password}" if generated else ""))
    return 0


def cmd_users_passwd(args: argparse.Namespace) -> int:
    services, audit = _panel(args)
    password, generated = _password(args)
    try:
        set_password(services.sessions, audit, args.username, password, actor=local_actor())
    except UserError as exc:
        return _fail(str(exc))
    print(f"password of {args.username} changed" + (f": {password}" if generated else ""))
    return 0


def cmd_users_active(args: argparse.Namespace) -> int:
    services, audit = _panel(args)
    try:
        set_active(services.sessions, audit, args.username, args.active, actor=local_actor())
    except UserError as exc:
        return _fail(str(exc))
    print(f"user {args.username} {'enabled' if args.active else 'disabled'}")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    services, _audit = _panel(args)
    refused = refused_names(services.sessions)
    rows = []
    for u in list_users(services.sessions):
        block = refused.get(u.username.casefold())
        rows.append({"username": u.username, "role": u.role, "language": u.language, "active": u.active,
                     # A name is refused per address (web/throttle.py), never for everyone.
                     "refused_from_addresses": block.addresses if block else 0,
                     "refused_until": block.until.isoformat() + "Z" if block else None,
                     "last_login_at": u.last_login_at.isoformat() + "Z" if u.last_login_at else None})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['username']:<20} {r['role']:<9} {r['language']}  {'active' if r['active'] else 'disabled'}"
                  + (f"  sign-in refused from {r['refused_from_addresses']} address(es) until {r['refused_until']}"
                     if r["refused_until"] else ""))
    return 0


def _default_owner(services) -> str:  # noqa: ANN001
    """The only active admin: an installer provisioning a token on a fresh box has made just that one."""
    admins = [u.username for u in list_users(services.sessions) if u.role == "admin" and u.active]
    if len(admins) != 1:
        raise TokenError("give --owner USER, the panel account the token acts for "
                         f"(active admins: {', '.join(admins) or 'none; add one with allerta users add'})")
    return admins[0]


def cmd_tokens_create(args: argparse.Namespace) -> int:
    services, audit = _panel(args)
    try:
        owner = args.owner or _default_owner(services)
        _id, token = create_token(audit, args.name, args.role, actor=local_actor(), owner=owner, days=args.expires)
    except TokenError as exc:
        return _fail(str(exc))
    print(token)
    print(f"(token {args.name.strip()!r}, {args.role}, acting for {owner}, valid {args.expires} days: "
          "copy it now, it is not shown again)", file=sys.stderr)
    return 0


def cmd_tokens_list(args: argparse.Namespace) -> int:
    services, _audit = _panel(args)
    with services.sessions() as s:
        rows = list(s.scalars(select(ApiToken).order_by(ApiToken.name)))
        active = owners_active(s, rows)
    now = utcnow()
    found = [{"name": t.name, "role": t.role, "owner": t.owner, "prefix": t.prefix,
              "created_at": t.created_at.isoformat() + "Z",
              "expires_at": t.expires_at.isoformat() + "Z" if t.expires_at else None,
              "last_used_at": t.last_used_at.isoformat() + "Z" if t.last_used_at else None,
              "state": token_state(t, active.get(t.owner, False), now)} for t in rows]
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        for t in found:
            print(f"{t['name']:<24} {t['role']:<9} {t['owner'] or '-':<12} expires {t['expires_at'] or '-':<28} "
                  f"{t['state']}")
    return 0


def cmd_tokens_revoke(args: argparse.Namespace) -> int:
    _services, audit = _panel(args)
    if not revoke_token(audit, name=args.name, actor=local_actor()):
        return _fail(f"no active token named {args.name!r}")
    print(f"token {args.name!r} revoked")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    try:
        head = parse_head(args.head) if args.head else None
    except ValueError as exc:
        return _fail(f"--head: {exc}")
    services, audit = _panel(args)
    problems = audit.verify(head)
    with services.sessions() as s:
        count = s.scalar(select(func.count()).select_from(AuditEntry))
    if problems:
        for problem in problems:
            print(f"audit: {problem}", file=sys.stderr)
        print(f"audit log NOT intact: {len(problems)} problem(s) in {count} entries", file=sys.stderr)
        return 1
    print(f"audit log intact: {count} entries" + (f", entry {head[0]} matches the log book" if head else ""))
    return 0


def cmd_audit_head(args: argparse.Namespace) -> int:
    _services, audit = _panel(args)
    head = audit.head()
    at = head.at.isoformat(timespec="seconds") if head.at else None
    if args.json:
        print(json.dumps({"count": head.count, "at": at, "digest": head.digest, "short": head.short}))
    else:
        print(f"{at or '-'}  {head.line()}")
        print(f"(write it in the log book; later: allerta audit verify --head '{head.line()}')")
    return 0
