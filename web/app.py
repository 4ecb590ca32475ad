"""The panel's app factory: extensions, blueprints, security headers."""
from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask, render_template, request, session
from flask.sessions import SecureCookieSessionInterface
from flask_babel import get_locale, gettext as _
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import BadRequest

from gateway.core.services import Services, build_services
from web import admin, alerts, api, auth, cap, contacts, dashboard, elections, inbox, zones
from gateway.core.config import Config, load_config
from web.app_user import load_user
from gateway.core.audit import audit_log_for
from web.context import Panel, panel
from web.elections import election_in_force
from web.i18n import DEFAULT_LANGUAGE, LANGUAGES, PanelBabel, compile_catalogues
from web.labels import cause, label, labels
from web.params import BoundedIntConverter
from web.security import check_access, wants_json
from web.users import ROLES

csrf = CSRFProtect()
babel = PanelBabel()
login_manager = LoginManager()

# No outside origin, no inline script or style: everything comes from /static.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


class PanelSessionInterface(SecureCookieSessionInterface):
    """The same app serves HTTP and HTTPS: the cookie is Secure whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)


def _secret_key(config: Config) -> str:
    path = Path(config.web.secret_key_file or os.path.join(config.general.data_dir, "web-secret.key"))
    if path.exists():
        return path.read_text(encoding="ascii").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    return key


def _select_locale() -> str:
    if current_user and current_user.is_authenticated:
        return current_user.language
    return session.get("lang", DEFAULT_LANGUAGE)


def create_app(services_or_config: Services | Config | str | os.PathLike[str],
               test_config: dict[str, Any] | None = None) -> Flask:
    if isinstance(services_or_config, Services):
        services = services_or_config
    else:
        config = services_or_config if isinstance(services_or_config, Config) else load_config(services_or_config)
        services = build_services(config)
    config = services.config
    web = config.web
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=_secret_key(config),
        SESSION_COOKIE_NAME="allerta_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=False,
        PERMANENT_SESSION_LIFETIME=dt.timedelta(minutes=web.session_minutes),
        SESSION_REFRESH_EACH_REQUEST=True,
        REMEMBER_COOKIE_DURATION=dt.timedelta(seconds=0),
        MAX_CONTENT_LENGTH=web.max_upload_mb * 1024 * 1024,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session, which expires on its own
        BABEL_DEFAULT_LOCALE=DEFAULT_LANGUAGE,
        BABEL_DEFAULT_TIMEZONE="Europe/Rome",
        JSON_SORT_KEYS=False,
    )
    if test_config:
        app.config.update(test_config)
    app.session_interface = PanelSessionInterface()
    app.extensions["allerta"] = Panel(services, audit_log_for(config, services.sessions))
    app.extensions["allerta_catalogues"] = compile_catalogues()

    csrf.init_app(app)
    babel.init_app(app, locale_selector=_select_locale)
    login_manager.init_app(app)
    login_manager.user_loader(load_user)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "basic"

    # Before the blueprints: their rules are compiled with the converter in place when they are added.
    app.url_map.converters["int"] = BoundedIntConverter
    for blueprint in (auth.bp, dashboard.bp, contacts.bp, zones.bp, alerts.bp, inbox.bp, admin.bp, elections.bp,
                      api.bp, cap.api_bp, cap.bp):
        app.register_blueprint(blueprint)
    for blueprint in (api.bp, cap.api_bp):
        csrf.exempt(blueprint)  # bearer tokens, no cookies: nothing a foreign page could forge

    app.before_request(check_access)
    app.after_request(_security_headers)
    for code in (400, 401, 403, 404, 405, 413, 500):
        app.register_error_handler(code, _error_page)
    app.register_error_handler(CSRFError, _csrf_error)
    app.add_template_filter(label, "label")
    app.add_template_filter(labels, "labels")
    app.add_template_filter(cause, "cause")
    app.add_template_filter(inbox.local_time, "local_time")

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {"comune": config.general.comune, "ROLES": ROLES, "LANGUAGES": LANGUAGES,
                "two_person_rule": web.two_person_rule, "current_language": lambda: str(get_locale() or "it"),
                "election_period": election_in_force(services.sessions)}
    return app


def _security_headers(response):  # noqa: ANN001, ANN202
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Permissions-Policy"] = "microphone=(self), camera=(), geolocation=()"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    # No Strict-Transport-Security, not even over HTTPS: HSTS binds the whole host, every port, so a
    # browser that once opened https://box:8443 would rewrite http://box:8080 to https://box:8080 (no
    # TLS there) for a year, while waitress keeps serving the panel on plain HTTP. It only becomes
    # right once the plain listener redirects to HTTPS instead of serving the panel.
    if request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"
    return response


_TITLES = {400: "Bad request", 401: "Sign in required", 403: "Not allowed", 404: "Not found",
           405: "Method not allowed", 413: "Upload too large", 500: "Internal error"}


def _error_page(error):  # noqa: ANN001, ANN202
    code = getattr(error, "code", 500) or 500
    messages = {400: _("The request could not be understood."), 401: _("Please sign in."),
                403: _("Your role does not allow this."), 404: _("This page does not exist."),
                405: _("This action is not available here."),
                413: _("The file is too large: at most %(mb)s MB.", mb=panel().web.max_upload_mb),
                500: _("Something went wrong on the server; the error was logged.")}
    message = messages.get(code, str(error))
    if code == 400 and getattr(error, "description", None) not in (None, BadRequest.description):
        message = error.description  # our own abort(400, description=...): says what was wrong
    if wants_json():
        return {"error": _TITLES.get(code, "Error"), "message": message}, code
    return render_template("error.html", code=code, message=message), code


def _csrf_error(error: CSRFError):  # noqa: ANN202
    message = _("The form expired or did not come from this panel. Reload the page and try again.")
    if wants_json():
        return {"error": "CSRF", "message": message}, 400
    return render_template("error.html", code=400, message=message), 400
