"""Administration: users, API tokens, the audit log, the configuration (read only)."""
from __future__ import annotations

import json

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select

from gateway.core.config import MODEM_SCHEMA, SCHEMA, TRUNK_SCHEMA, Key
from gateway.core.db import shown_url, utcnow
from gateway.core.models_panel import ApiToken, AuditEntry, User
from web.context import panel
from web.errors import error_message
from web.auth import password_message
from web.params import bounded_int, page_number
from web.security import require_role
from web.tokens import (DEFAULT_DAYS, MAX_DAYS, TOKEN_ROLES, TokenError, create_token, owners_active, revoke_token,
                        token_state)
from web.throttle import NameBlock
from web.users import LANGUAGES, ROLES, UserError, add_user, list_users, refused_names, set_active, set_password, set_role

bp = Blueprint("admin", __name__, url_prefix="/admin")
PAGE_SIZE = 100


@bp.route("/users", methods=["GET", "POST"])
@require_role("admin")
def users():
    p = panel()
    if request.method == "POST":
        action = request.form.get("action", "")
        username = request.form.get("username", "").strip()
        try:
            if action == "add":
                add_user(p.sessions, p.audit, username, request.form.get("password", ""),
                         request.form.get("role", "viewer"), language=request.form.get("language", "it"),
                         actor=current_user.username)
                flash(_("User %(name)s created.", name=username), "success")
            elif action == "role":
                set_role(p.sessions, p.audit, username, request.form.get("role", ""), actor=current_user.username)
                flash(_("Role of %(name)s changed.", name=username), "success")
            elif action in ("disable", "enable"):
                set_active(p.sessions, p.audit, username, action == "enable", actor=current_user.username)
                flash(_("User %(name)s updated.", name=username), "success")
            elif action == "password":
                set_password(p.sessions, p.audit, username, request.form.get("password", ""),
                             actor=current_user.username)
                flash(_("Password of %(name)s changed.", name=username), "success")
            else:
                flash(_("Unknown action."), "error")
        except UserError as exc:
            flash(password_message(exc), "error")
            return render_template("admin/users.html", users=_users(), roles=ROLES, languages=LANGUAGES), 400
        return redirect(url_for("admin.users"))
    return render_template("admin/users.html", users=_users(), roles=ROLES, languages=LANGUAGES)


def _users() -> list[tuple[User, NameBlock | None]]:
    refused = refused_names(panel().sessions)
    return [(user, refused.get(user.username.casefold())) for user in list_users(panel().sessions)]


@bp.route("/audit")
@require_role("admin")
def audit():
    page = page_number(request.args)
    action = request.args.get("action", "")
    with panel().sessions() as s:
        query = select(AuditEntry)
        if action:
            query = query.where(AuditEntry.action == action)
        total = s.scalar(select(func.count()).select_from(query.subquery()))
        entries = list(s.scalars(query.order_by(AuditEntry.id.desc()).limit(PAGE_SIZE)
                                 .offset((page - 1) * PAGE_SIZE)))
        actions = list(s.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action)))
    # The check reads the whole chain, so it runs once, for the first page the button opens; the pager's
    # links leave verify out, so turning pages does not read every entry again each time.
    problems = panel().audit.verify() if request.args.get("verify") == "1" and page == 1 else None
    return render_template("admin/audit.html", entries=entries, page=page, action=action, actions=actions,
                           head=panel().audit.head(),
                           pages=max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE), problems=problems,
                           loads=json.loads, pager_drop=("verify",))


@bp.route("/tokens", methods=["GET", "POST"])
@require_role("admin")
def tokens():
    p = panel()
    new_token = None
    if request.method == "POST":
        if request.form.get("action") == "revoke":
            token_id = bounded_int(request.form, "id")
            if token_id and revoke_token(p.audit, token_id, actor=current_user.username):
                flash(_("Token revoked."), "success")
            else:
                flash(_("No such active token."), "error")
            return redirect(url_for("admin.tokens"))
        days = bounded_int(request.form, "days", DEFAULT_DAYS, low=1, high=MAX_DAYS)
        try:
            _id, new_token = create_token(p.audit, request.form.get("name", ""), request.form.get("role", ""),
                                          actor=current_user.username, owner=current_user.username, days=days)
        except TokenError as exc:
            flash(_("The token was not created: %(reason)s", reason=error_message(exc)), "error")
    with p.sessions() as s:
        rows = list(s.scalars(select(ApiToken).order_by(ApiToken.id.desc())))
        active = owners_active(s, rows)
    now = utcnow()
    states = {row.id: token_state(row, active.get(row.owner, False), now) for row in rows}
    return render_template("admin/tokens.html", tokens=rows, states=states, new_token=new_token,
                           roles=TOKEN_ROLES, default_days=DEFAULT_DAYS, max_days=MAX_DAYS)


@bp.route("/config")
@require_role("admin")
def config():
    cfg = panel().config
    tables = [(f"[{name}]", getattr(cfg, name), schema) for name, schema in SCHEMA.items()]
    tables += [(f"[[modems]] #{index}", modem, MODEM_SCHEMA) for index, modem in enumerate(cfg.modems, 1)]
    tables += [(f"[[trunks]] #{index}", trunk, TRUNK_SCHEMA) for index, trunk in enumerate(cfg.trunks, 1)]
    sections = [(title, [(key, _shown(spec, getattr(values, key)), spec.doc) for key, spec in schema.items()])
                for title, values, schema in tables]
    return render_template("admin/config.html", sections=sections, path=cfg.path)


def _shown(spec: Key, value: object) -> object:
    """A value as the file writes it: a list, not the tuple the frozen config holds; never a secret."""
    if spec.secret and value:
        return "(hidden)"
    if spec is SCHEMA["database"]["url"] and value:
        return shown_url(value)   # a postgresql:// URL may carry the password
    return list(value) if isinstance(value, tuple) else value
