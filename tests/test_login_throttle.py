"""Refused sign-ins are throttled per (name, address) and per address, never against the account alone;
unknown and blocked names answer alike; a flood of refusals writes a few audit entries; the API is
throttled per address; the password policy refuses the common and the obvious."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from gateway.core.models_panel import AuditEntry, LoginThrottle
from tests.web_support import PASSWORD, ROLE_USERS, client_for, csrf_token, make_app, post
from web import users
from web.tokens import create_token
from web.users import PasswordError, password_problem, set_password

# Run on SQLite and on PostgreSQL (conftest.py, tests/pg_support.py).
pytestmark = pytest.mark.both_databases

APPROVER = ROLE_USERS["approver"]


def _client(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def _login(client, username: str, password: str):
    return client.post("/login", data={"username": username, "password": password, "csrf_token": csrf_token(client)})


def _flash(response) -> str:
    return re.search(r'class="flash error"[^>]*>(.*?)<', response.get_data(as_text=True), re.S).group(1).strip()


def test_an_attacker_cannot_lock_the_owner_out(app):
    attacker, owner = _client(app, "10.0.0.66"), _client(app, "10.0.0.7")
    statuses = [_login(attacker, APPROVER, "guessing wrong").status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 401, 429]
    assert _login(attacker, APPROVER, PASSWORD).status_code == 429  # blocked from there, right password or not
    assert _login(owner, APPROVER, PASSWORD).status_code == 302      # the approver still signs in at their desk


def test_unknown_and_blocked_names_answer_alike(app, monkeypatch):
    hashes = []
    real = users.verify_password
    monkeypatch.setattr(users, "verify_password", lambda h, p: hashes.append(1) or real(h, p))
    answers = {}
    for name in (APPROVER, "nessuno-qui"):
        client = _client(app, f"10.0.1.{len(answers) + 1}")
        answers[name] = [(r.status_code, _flash(r), r.headers.get("Retry-After"))
                         for r in (_login(client, name, "guessing wrong") for _ in range(7))]
    assert answers[APPROVER] == answers["nessuno-qui"]
    assert [status for status, _, _ in answers[APPROVER]] == [401] * 4 + [429] * 3
    # Same cost too: every answer, blocked or unknown, did one password hash.
    assert len(hashes) == 14


def test_an_address_that_keeps_failing_waits_longer_and_longer(app, panel):
    client = _client(app, "10.0.2.9")
    for n in range(10):  # ten names, twice each: no pair is blocked, the address is counted
        assert _login(client, f"nome{n}", "guessing wrong").status_code == 401
    response = _login(client, "nome-x", "guessing wrong")
    assert response.status_code == 429 and response.headers["Retry-After"] == "1"
    waits = []
    for _ in range(4):
        with panel.sessions.begin() as s:  # the wait passes
            row = s.scalar(select(LoginThrottle).where(LoginThrottle.scope == "address"))
            row.blocked_until = row.blocked_until.replace(year=2000)
        waits.append(int(_login(client, "nome-y", "guessing wrong").headers["Retry-After"]))
    assert waits == [2, 4, 8, 16]
    assert _login(client, APPROVER, PASSWORD).status_code == 429
    assert _login(_client(app, "10.0.2.10"), APPROVER, PASSWORD).status_code == 302


def test_a_flood_of_refusals_writes_a_few_audit_entries(app, panel):
    with panel.sessions() as s:
        before = s.scalar(select(func.count()).select_from(AuditEntry))
    client = _client(app, "10.0.3.3")
    for _ in range(200):
        _login(client, APPROVER, "guessing wrong")
    with panel.sessions() as s:
        entries = list(s.scalars(select(AuditEntry).where(AuditEntry.id > before)))
    assert [e.action for e in entries] == ["login.failed", "login.blocked"]
    assert '"failures": 5' in entries[1].details


def test_the_current_password_check_counts(app):
    client = client_for(app, "operator")
    for expected in (400, 400, 400, 400, 429):
        response = post(client, "/account", {"current": "guessing wrong", "new": "una nuova parola lunga",
                                             "confirm": "una nuova parola lunga"})
        assert response.status_code == expected
    response = post(client, "/account", {"current": PASSWORD, "new": "una nuova parola lunga",
                                         "confirm": "una nuova parola lunga"})
    assert response.status_code == 429  # even with the right one, until the wait is over


def test_the_api_is_throttled_per_address(app, panel):
    _id, token = create_token(panel.audit, "meteo", "viewer", actor="ada", owner="ada")
    attacker, system = _client(app, "10.0.4.4"), _client(app, "10.0.4.5")
    statuses = [attacker.get("/api/v1/lines", headers={"Authorization": f"Bearer allerta_guess{n}"}).status_code
                for n in range(22)]
    assert statuses == [401] * 20 + [429] * 2
    response = attacker.get("/api/v1/lines", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1
    assert system.get("/api/v1/lines", headers={"Authorization": f"Bearer {token}"}).status_code == 200


@pytest.mark.parametrize("password, code", [
    ("aaaaaaaaaa", "repetitive"), ("1212121212", "repetitive"), ("password123", "common"),
    ("Password2024!", "common"), ("qwertyuiop", "common"), ("1234567890", "common"),
    ("protezionecivile", "common"), ("anna-2024-segreta", "username"), ("corta", "short")])
def test_the_password_policy_refuses_the_obvious(password, code):
    problem = password_problem(password, "anna")
    assert isinstance(problem, PasswordError) and problem.code == code


def test_the_password_policy_accepts_a_reasonable_one_and_the_panel_says_why_in_italian(app, panel):
    assert password_problem("cane-gatto-mare-42", "anna") is None
    with pytest.raises(PasswordError):
        set_password(panel.sessions, panel.audit, APPROVER, "aaaaaaaaaa", actor="ada")
    admin = client_for(app, "admin")
    response = post(admin, "/admin/users", {"action": "password", "username": APPROVER, "password": "password123"})
    assert response.status_code == 400 and "tra le più comuni" in response.get_data(as_text=True)


def test_admins_see_who_is_refused_and_a_new_password_lifts_it(app, panel):
    attacker = _client(app, "10.0.4.4")
    for _ in range(5):
        _login(attacker, APPROVER, "guessing wrong")
    admin = client_for(app, "admin")
    page = admin.get("/admin/users").get_data(as_text=True)
    row = re.search(rf"<td>{APPROVER}</td>.*?</tr>", page, re.S).group(0)
    assert "da 1 indirizzo fino a" in row
    assert list(users.refused_names(panel.sessions)) == [APPROVER.casefold()]
    set_password(panel.sessions, panel.audit, APPROVER, "una password nuova e lunga", actor="test")
    assert users.refused_names(panel.sessions) == {}
    assert _login(attacker, APPROVER, "una password nuova e lunga").status_code == 302
