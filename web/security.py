"""Who may open what: every view declares its role, and a view that declares none is refused.

``require_role`` only marks the view; the check runs in ``check_access``
(a ``before_request`` hook of the app), so a route someone forgets to mark
fails closed (403) instead of being open.
"""
from __future__ import annotations

import time
from typing import Callable, TypeVar

from flask import abort, current_app, flash, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, logout_user

from web.users import RANK, has_role

F = TypeVar("F", bound=Callable)
PUBLIC = "public"
TOKEN = "token"   # the JSON API checks its own bearer token


def require_role(role: str) -> Callable[[F], F]:
    if role not in RANK:
        raise ValueError(role)

    def mark(view: F) -> F:
        view.min_role = role  # type: ignore[attr-defined]
        return view
    return mark


def public(view: F) -> F:
    view.min_role = PUBLIC  # type: ignore[attr-defined]
    return view


def token_auth(view: F) -> F:
    view.min_role = TOKEN  # type: ignore[attr-defined]
    return view


def view_role(endpoint: str | None) -> str | None:
    if endpoint is None:
        return None
    if endpoint == "static":
        return PUBLIC
    view = current_app.view_functions.get(endpoint)
    return getattr(view, "min_role", None)


def check_access():  # noqa: ANN201 - a Flask before_request hook
    role = view_role(request.endpoint)
    if request.endpoint is None:
        return None  # 404/405 handled by Flask
    if role in (PUBLIC, TOKEN):
        return None
    if role is None:
        abort(403)  # a view nobody marked: refused, not open
    if not current_user.is_authenticated:
        if wants_json():
            abort(401)
        return redirect(url_for("auth.login", next=request.full_path if request.method == "GET" else None))
    # Inactivity expiry, checked on the server: the cookie's own lifetime is only advice to the browser.
    now = time.time()
    limit = current_app.config["PERMANENT_SESSION_LIFETIME"].total_seconds()
    seen = session.get("seen", 0)
    if now - seen > limit:
        logout_user()
        session.clear()
        # Flashed for JSON callers too: the next page the person opens says why they must sign in.
        flash(_("Your session expired. Please sign in again."), "warning")
        if wants_json():
            abort(401)  # a script cannot show the login page a redirect would give it
        return redirect(url_for("auth.login"))
    # Polling endpoints (the live progress) do not keep an idle session alive.
    if not getattr(current_app.view_functions[request.endpoint], "passive", False):
        session["seen"] = now
    if not has_role(current_user.role, role):
        abort(403)
    return None


def wants_json() -> bool:
    """The request comes from a script or another system, not from a person opening a page: it gets
    errors (401 included) as JSON, never a redirect to the login page it could not show."""
    if request.path.startswith("/api/") or request.path.endswith(".json") or request.is_json:
        return True
    return request.accept_mimetypes.best_match(("text/html", "application/json")) == "application/json"


def passive(view: F) -> F:
    """A view that does not count as activity (polled by the page's script)."""
    view.passive = True  # type: ignore[attr-defined]
    return view
