"""HEAD changes nothing, the CSV export's header, and each change committed with its audit entry (issue 10)."""
from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from gateway.core.audit import AuditLog
from gateway.core.models import Alert, Contact, Delivery
from gateway.core.models_panel import AlertApproval, AuditEntry
from tests.web_support import PASSWORD, ROLE_USERS, client_for, csrf_token, post
from web import alert_flow

FORM = {"text": "Allerta rossa: salire ai piani alti", "zones": "Fregene", "channels": "sms"}
CSV = "nome;cellulare;zona\nLucia Bianchi;333 111 0099;Fregene\n".encode()


def _counts(panel) -> tuple[int, int, int, int]:
    with panel.sessions() as s:
        return tuple(s.scalar(select(func.count()).select_from(model))
                     for model in (Alert, Delivery, Contact, AuditEntry))


def _uploads(panel) -> list:
    from pathlib import Path
    return sorted((Path(panel.config.general.data_dir) / "uploads").glob("import-*"))


def test_head_with_a_form_changes_nothing(app, panel):
    """Flask-WTF checks no CSRF token on HEAD: a view that took every non-GET for a POST acted on it."""
    approver = client_for(app, "approver")
    before = _counts(panel)
    for action in ("draft", "submit", "send_now"):
        approver.head("/alerts/new", data={**FORM, "action": action, "reason": "argine rotto"})
    approver.head("/contacts/import", data={"file": (io.BytesIO(CSV), "contatti.csv")})
    anonymous = app.test_client()
    anonymous.head("/login", data={"username": ROLE_USERS["admin"], "password": PASSWORD})
    assert _counts(panel) == before and _uploads(panel) == []
    assert anonymous.get("/alerts/").status_code == 302  # not signed in


def test_head_with_a_form_changes_nothing_on_any_route(app, panel):
    """Every route that takes both GET and POST, as an admin: HEAD is a GET."""
    admin = client_for(app, "admin")
    alert_id = int(post(admin, "/alerts/new", {**FORM, "action": "draft"}).location.rsplit("/", 1)[1])
    with panel.sessions() as s:
        contact_id = s.scalar(select(Contact.id))
    before = _counts(panel)
    token = csrf_token(admin, "/account")
    values = {"alert_id": alert_id, "contact_id": contact_id}
    form = {**FORM, "action": "send_now", "reason": "r", "csrf_token": token, "name": "Nuovo", "numbers": "3331110077",
            "username": "intruso", "password": PASSWORD * 2, "role": "admin", "current": PASSWORD,
            "new": PASSWORD * 2, "confirm": PASSWORD * 2}
    checked = 0
    for rule in app.url_map.iter_rules():
        if {"GET", "POST"} <= rule.methods and rule.endpoint != "static":
            path = rule.rule
            for name, value in values.items():
                path = path.replace(f"<int:{name}>", str(value))
            assert "<" not in path, path
            assert admin.head(path, data=form).status_code < 500, path
            checked += 1
    assert checked >= 6
    assert _counts(panel) == before
    assert admin.get("/account").status_code == 200  # the password did not change: still signed in


def test_csv_export_says_its_charset_once(app, panel):
    approver = client_for(app, "approver")
    alert_id = int(post(approver, "/alerts/new", {**FORM, "action": "send_now", "reason": "r"})
                   .location.rsplit("/", 1)[1])
    response = approver.get(f"/alerts/{alert_id}/export.csv")
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"


@pytest.fixture
def audit_fails(monkeypatch):
    """The audit entry of ``action`` cannot be written (a full disk, a broken chain)."""
    record = AuditLog.record

    def failing(action: str):
        def fake(self, session, actor, what, *args, **kwargs):
            if what == action:
                raise RuntimeError("audit write failed")
            return record(self, session, actor, what, *args, **kwargs)
        monkeypatch.setattr(AuditLog, "record", fake)
    return failing


def _alert(panel, alert_id: int) -> Alert:
    with panel.sessions() as s:
        return s.get(Alert, alert_id)


def test_an_approval_whose_audit_entry_fails_is_not_made(app, panel, audit_fails):
    waiting = int(post(client_for(app, "operator"), "/alerts/new", {**FORM, "action": "submit"})
                  .location.rsplit("/", 1)[1])
    audit_fails("alert.approve")
    with pytest.raises(RuntimeError):
        alert_flow.approve(panel, waiting, actor="anna", role="approver")
    assert _alert(panel, waiting).state == "awaiting_approval" and _counts(panel)[1] == 0
    with panel.sessions() as s:
        assert s.scalar(select(AlertApproval.decision).where(AlertApproval.alert_id == waiting)) == "pending"


def test_a_cancel_whose_audit_entry_fails_is_not_made(app, panel, audit_fails):
    live = int(post(client_for(app, "approver"), "/alerts/new", {**FORM, "action": "send_now", "reason": "r"})
               .location.rsplit("/", 1)[1])
    audit_fails("alert.cancel")
    with pytest.raises(RuntimeError):
        alert_flow.cancel(panel, live, actor="anna", role="approver", reason="zona sbagliata")
    assert _alert(panel, live).state == "active"
    with panel.sessions() as s:
        assert set(s.scalars(select(Delivery.state).where(Delivery.alert_id == live))) == {"pending"}


def test_an_alert_whose_audit_entry_fails_is_not_created(app, panel, audit_fails):
    before = _counts(panel)
    audit_fails("alert.send")
    with pytest.raises(RuntimeError):
        post(client_for(app, "approver"), "/alerts/new", {**FORM, "action": "send_now", "reason": "r"})
    audit_fails("alert.request")
    with pytest.raises(RuntimeError):
        post(client_for(app, "operator"), "/alerts/new", {**FORM, "action": "submit"})
    assert _counts(panel)[:2] == before[:2]


def test_an_import_whose_audit_entry_fails_is_not_made(app, panel, audit_fails):
    operator = client_for(app, "operator")
    html = post(operator, "/contacts/import", {"file": (io.BytesIO(CSV), "contatti.csv")}).get_data(as_text=True)
    token = html.split('name="token" value="', 1)[1].split('"', 1)[0]
    before = _counts(panel)
    audit_fails("contacts.import")
    with pytest.raises(RuntimeError):
        post(operator, "/contacts/import/confirm", {"token": token, "filename": "contatti.csv"})
    assert _counts(panel)[2] == before[2]
