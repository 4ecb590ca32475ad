"""Sign in, sign out, and the user's own account (language, password)."""
from __future__ import annotations

import datetime as dt
import math
import time
import unicodedata
from urllib.parse import urlsplit

from flask import Blueprint, flash, make_response, redirect, render_template, request, session, url_for
from flask_babel import gettext as _, ngettext
from flask_login import current_user, login_user, logout_user

from web.app_user import PanelUser
from web.context import panel, remote
from web.i18n import LANGUAGES
from web.security import public, require_role
from web.throttle import retry_after
from web.users import UserError, authenticate, check_current_password, set_password
from gateway.core.models_panel import User

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    r"""Only a path on this site: never an absolute or scheme-relative URL.

    Browsers drop tabs and newlines inside URLs and read a backslash as a slash, so "/\t/evil.example"
    or "/\evil.example" would land on another site; and a newline in a Location header is a 500.
    Any control character or whitespace is therefore refused outright, not cleaned up.
    """
    if not target or any(char.isspace() or unicodedata.category(char).startswith("C") for char in target):
        return url_for("dashboard.index")
    parts = urlsplit(target.strip())
    # A backslash anywhere is refused: it also covers "/\evil.example".
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("dashboard.index")
    return target


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    # Anything but a POST shows the form: a HEAD (which CSRF protection does not check) signs nobody in.
    if request.method != "POST":
        if current_user.is_authenticated:
            return redirect(url_for("dashboard.index"))
        return render_template("auth/login.html", next=request.args.get("next", ""))
    web = panel().web
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    result = authenticate(panel().sessions, panel().audit, username, password,
                          attempts=web.lockout_attempts, lockout_minutes=web.lockout_minutes, remote=remote())
    if result.user is None:
        if result.problem == "throttled":
            return _throttled(result.wait, "auth/login.html", next=request.form.get("next", ""), username=username)
        message = _("This account is disabled.") if result.problem == "disabled" else _("Wrong username or password.")
        flash(message, "error")
        return render_template("auth/login.html", next=request.form.get("next", ""), username=username), 401
    session.clear()  # no session fixation: a fresh session for the signed-in user
    session.permanent = True
    session["seen"] = time.time()
    login_user(PanelUser(result.user))
    return redirect(_safe_next(request.form.get("next")))


def password_message(exc: UserError) -> str:
    """The password policy's refusal in the user's language (web/users.py password_problem)."""
    code = getattr(exc, "code", None)
    return {"short": _("The password must be at least 10 characters long."),
            "username": _("The password must not contain the username."),
            "repetitive": _("The password repeats too few characters: use at least 5 different ones."),
            "common": _("This password is among the most common ones: choose another.")}.get(code, str(exc))


def _throttled(wait: dt.timedelta, template: str, **context):  # noqa: ANN003, ANN202
    """429 with Retry-After: the same words whether the name exists or not."""
    flash(ngettext("Too many failed attempts from this computer: try again in %(num)s minute.",
                   "Too many failed attempts from this computer: try again in %(num)s minutes.",
                   max(1, math.ceil(wait.total_seconds() / 60))), "error")
    response = make_response(render_template(template, **context), 429)
    response.headers["Retry-After"] = str(retry_after(wait))
    return response


@bp.route("/logout", methods=["POST"])
@public
def logout():
    if current_user.is_authenticated:
        # The session lives in a signed cookie, so clearing it only forgets it in this browser: a copy
        # taken before (another tab, a stolen cookie) would still work. Bumping session_version makes
        # load_user refuse every cookie issued so far; it also signs this user out on other devices.
        with panel().audit.transaction() as s:
            s.get(User, current_user.id).session_version += 1
            panel().audit.record(s, current_user.username, "logout", current_user.username)
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/language", methods=["POST"])
@public
def language():
    """Switch the language: stored on the user when signed in, else in the session."""
    lang = request.form.get("lang", "")
    if lang in LANGUAGES:
        if current_user.is_authenticated:
            with panel().audit.transaction() as s:
                user = s.get(User, current_user.id)
                user.language = lang
                panel().audit.record(s, current_user.username, "user.language", current_user.username, language=lang)
        else:
            session["lang"] = lang
    return redirect(_safe_next(request.form.get("next")))


@bp.route("/account", methods=["GET", "POST"])
@require_role("viewer")
def account():
    if request.method == "POST":
        current = request.form.get("current", "")
        new = request.form.get("new", "")
        web = panel().web
        checked = check_current_password(panel().sessions, panel().audit, current_user.username, current,
                                         attempts=web.lockout_attempts, lockout_minutes=web.lockout_minutes,
                                         remote=remote())
        if checked.problem == "throttled":
            return _throttled(checked.wait, "auth/account.html")
        if checked.user is None:
            flash(_("The current password is wrong."), "error")
        elif new != request.form.get("confirm", ""):
            flash(_("The two new passwords differ."), "error")
        else:
            try:
                set_password(panel().sessions, panel().audit, current_user.username, new, actor=current_user.username)
            except UserError as exc:
                flash(password_message(exc), "error")
            else:
                flash(_("Password changed. Please sign in again."), "success")
                logout_user()
                session.clear()
                return redirect(url_for("auth.login"))
        return render_template("auth/account.html"), 400
    return render_template("auth/account.html")
