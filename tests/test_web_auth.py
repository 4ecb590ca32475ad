"""Sign-in, lockout, session expiry, CSRF, cookies, headers, first admin, language."""
from __future__ import annotations

import time

from sqlalchemy import select

from gateway.core.audit import audit_log_for
from gateway.core.models_panel import LoginThrottle, User
from tests.web_support import PASSWORD, client_for, csrf_token, login, make_app, post
from web.users import ensure_first_admin, verify_password


def test_login_and_logout(app):
    client = app.test_client()
    response = login(client, "otto")
    assert response.status_code == 302 and response.location == "/"
    assert client.get("/").status_code == 200
    assert post(client, "/logout").status_code == 302
    assert client.get("/").status_code == 302


def test_wrong_password_and_unknown_user(app):
    client = app.test_client()
    assert login(client, "otto", "wrong password!").status_code == 401
    response = login(client, "nobody", "whatever at all")
    assert response.status_code == 401
    assert "Nome utente o password errati" in response.get_data(as_text=True)


def test_lockout_after_repeated_failures(tmp_path):
    """The name is refused from the address that failed, until lockout_minutes have passed
    (tests/test_login_throttle.py: the owner still signs in from elsewhere)."""
    app = make_app(tmp_path, "[web]\nlockout_attempts = 3\nlockout_minutes = 10\n")
    client = app.test_client()
    for _ in range(2):
        assert login(client, "otto", "not the password").status_code == 401
    assert login(client, "otto", "not the password").status_code == 429
    # Blocked: even the right password is refused now, from this address.
    response = login(client, "otto", PASSWORD)
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 9 * 60
    assert "Troppi tentativi falliti da questo computer" in response.get_data(as_text=True)
    # After the lockout time the right password works again.
    with app.extensions["allerta"].sessions.begin() as s:
        for row in s.scalars(select(LoginThrottle)):
            row.blocked_until = row.blocked_until.replace(year=2000) if row.blocked_until else None
    assert login(client, "otto", PASSWORD).status_code == 302


def test_session_expires_after_inactivity(tmp_path):
    app = make_app(tmp_path, "[web]\nsession_minutes = 5\n")
    client = client_for(app, "operator")
    assert client.get("/").status_code == 200
    with client.session_transaction() as session:
        session["seen"] = time.time() - 6 * 60
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.location
    assert client.get("/").status_code == 302  # really signed out


def test_polling_does_not_keep_a_session_alive(tmp_path):
    app = make_app(tmp_path, "[web]\nsession_minutes = 5\n")
    client = client_for(app, "viewer")
    with client.session_transaction() as session:
        session["seen"] = time.time() - 4 * 60
    assert client.get("/dashboard.json").status_code == 200
    with client.session_transaction() as session:
        assert session["seen"] < time.time() - 3 * 60


def test_csrf_rejected_without_token(app):
    client = client_for(app, "admin")
    response = client.post("/admin/users", data={"action": "add", "username": "mallory", "password": "x" * 12,
                                                  "role": "admin"})
    assert response.status_code == 400
    response = client.post("/alerts/sms-plan", json={"text": "ciao"})
    assert response.status_code == 400
    # Login itself needs the token too (login CSRF).
    fresh = app.test_client()
    fresh.get("/login")
    assert fresh.post("/login", data={"username": "ada", "password": PASSWORD}).status_code == 400
    with app.extensions["allerta"].sessions() as s:
        assert s.scalar(select(User).where(User.username == "mallory")) is None


def test_csrf_header_accepted_for_scripts(app):
    client = client_for(app, "operator")
    token = csrf_token(client, "/")
    response = client.post("/alerts/sms-plan", json={"text": "ciao"}, headers={"X-CSRFToken": token})
    assert response.status_code == 200


def test_cookie_flags_and_security_headers(app):
    client = app.test_client()
    response = client.get("/login")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    secure = client.get("/login", base_url="https://localhost")
    assert "Secure" in secure.headers["Set-Cookie"]
    # HSTS would also bind the plain-HTTP port the panel is served on (tests/test_web_serve.py).
    assert "Strict-Transport-Security" not in secure.headers
    assert "Strict-Transport-Security" not in response.headers


def test_pages_have_no_inline_script_and_no_outside_origin(app):
    client = client_for(app, "admin")
    for path in ("/", "/alerts/new", "/contacts/", "/admin/users", "/admin/audit", "/login"):
        html = client.get(path).get_data(as_text=True)
        assert "<script>" not in html and "onclick=" not in html and "style=" not in html, path
        assert "http://" not in html and "https://" not in html, path


def test_password_change_ends_other_sessions(app, panel):
    first = client_for(app, "operator")
    second = client_for(app, "operator")
    response = post(first, "/account", {"current": PASSWORD, "new": "a brand new password", "confirm":
                                        "a brand new password"})
    assert response.status_code == 302
    assert second.get("/").status_code == 302  # the other session ended
    with panel.sessions() as s:
        assert verify_password(s.scalar(select(User).where(User.username == "otto")).password_hash,
                               "a brand new password")


def test_disabled_user_cannot_sign_in_and_is_signed_out(app):
    client = client_for(app, "operator")
    admin = client_for(app, "admin")
    assert post(admin, "/admin/users", {"action": "disable", "username": "otto"}).status_code == 302
    assert client.get("/").status_code == 302
    assert login(app.test_client(), "otto").status_code == 401


def test_passwords_are_hashed_with_argon2(panel):
    with panel.sessions() as s:
        for user in s.scalars(select(User)):
            assert user.password_hash.startswith("$argon2id$")
            assert PASSWORD not in user.password_hash


def test_first_admin(tmp_path):
    from gateway.core.services import build_services
    from gateway.core.config import load_config
    from tests.support import write_config
    services = build_services(load_config(write_config(tmp_path)))
    audit = audit_log_for(services.config, services.sessions)
    created = ensure_first_admin(services.sessions, audit)
    assert created is not None
    username, password = created
    assert username == "admin" and len(password) >= 12
    assert ensure_first_admin(services.sessions, audit) is None  # a second init changes nothing
    from web.app import create_app
    app = create_app(services, {"TESTING": True})
    assert login(app.test_client(), username, password).status_code == 302


def test_open_redirect_refused(app):
    # Browsers strip tabs and newlines inside a URL and read "\\" as "/": each of these would leave the site.
    hostile = ["//evil.example/", "/\t/evil.example", "/\\evil.example", "/\n/evil.example", " //evil.example",
               "https://evil.example/", "javascript:alert(1)", "/ok\r\nSet-Cookie: x=1", "evil.example"]
    for target in hostile:
        client = app.test_client()
        token = csrf_token(client)
        response = client.post("/login", data={"username": "otto", "password": PASSWORD, "csrf_token": token,
                                               "next": target})
        assert response.status_code == 302 and response.location == "/", target
        client = client_for(app, "viewer")
        response = post(client, "/language", {"lang": "en", "next": target})
        assert response.status_code == 302 and response.location == "/", target
    # A path of this site still works.
    client = app.test_client()
    response = client.post("/login", data={"username": "otto", "password": PASSWORD,
                                           "csrf_token": csrf_token(client), "next": "/contacts/?q=Rossi"})
    assert response.location == "/contacts/?q=Rossi"


def test_logout_ends_the_session_on_the_server(app):
    client = client_for(app, "operator")
    # A copy of the cookie taken while signed in (another tab, or a stolen cookie).
    with client.session_transaction() as session:
        copied = dict(session)
    assert post(client, "/logout").status_code == 302
    thief = app.test_client()
    with thief.session_transaction() as session:
        session.update(copied)
    response = thief.get("/")
    assert response.status_code == 302 and "/login" in response.location
    assert thief.get("/dashboard.json").status_code == 401
    # Signing in again works, with a session the old cookie cannot ride on.
    assert client_for(app, "operator").get("/").status_code == 200
    with thief.session_transaction() as session:
        session.update(copied)
    assert thief.get("/").status_code == 302


def test_language_italian_by_default_english_per_user(app):
    client = client_for(app, "operator")
    html = client.get("/").get_data(as_text=True)
    assert 'lang="it"' in html and "Allerte attive" in html
    post(client, "/language", {"lang": "en", "next": "/"})
    html = client.get("/").get_data(as_text=True)
    assert 'lang="en"' in html and "Active alerts" in html
    other = client_for(app, "viewer")  # another user keeps Italian
    assert 'lang="it"' in other.get("/").get_data(as_text=True)


def test_scripts_get_401_json_when_the_session_expired(tmp_path):
    app = make_app(tmp_path, "[web]\nsession_minutes = 5\n")
    calls = [("/alerts/sms-plan", {"json": {"text": "ciao"}}),
             ("/alerts/preview", {"data": {"text": "Prova", "zones": "Fregene", "channels": "sms"},
                                  "headers": {"Accept": "application/json"}})]
    for path, kwargs in calls:
        client = client_for(app, "operator")
        token = csrf_token(client, "/")
        with client.session_transaction() as session:
            session["seen"] = time.time() - 6 * 60
        headers = {"X-CSRFToken": token, **kwargs.pop("headers", {})}
        response = client.post(path, headers=headers, **kwargs)
        assert response.status_code == 401 and response.is_json, (path, response.status_code)
        assert response.get_json()["message"] == "Accedi, per favore."
        # Signed out for real, and the next page says why.
        page = client.get("/", follow_redirects=True).get_data(as_text=True)
        assert "La sessione è scaduta" in page, path
    # A person opening a page still gets the login page.
    client = client_for(app, "operator")
    with client.session_transaction() as session:
        session["seen"] = time.time() - 6 * 60
    response = client.get("/alerts/new", headers={"Accept": "text/html,*/*;q=0.8"})
    assert response.status_code == 302 and "/login" in response.location
