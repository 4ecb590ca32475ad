"""The audit log: written by every change, shown to admins, verified by `allerta audit verify`."""
from __future__ import annotations

import re

from sqlalchemy import delete, func, select, update

from gateway.shell.cli import main
from gateway.core.models_panel import AuditEntry
from tests.web_support import client_for, post


def _actions(panel) -> list[str]:
    with panel.sessions() as s:
        return list(s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_changes_are_audited_and_chained(app, panel):
    operator = client_for(app, "operator")
    post(operator, "/contacts/new", {"name": "Audit Test", "numbers": "3330001111"})
    post(operator, "/alerts/new", {"text": "Prova", "zones": "Fregene", "channels": "sms", "action": "submit"})
    admin = client_for(app, "admin")
    post(admin, "/admin/tokens", {"name": "protezione civile", "role": "operator"})
    actions = _actions(panel)
    for expected in ("user.create", "login", "contact.create", "alert.request", "token.create"):
        assert expected in actions
    with panel.sessions() as s:
        entries = list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    assert entries[0].prev_hash == "0" * 64
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:]))
    assert panel.audit.verify() == []


def test_admins_see_the_log_and_can_verify_it(app):
    admin = client_for(app, "admin")
    html = admin.get("/admin/audit").get_data(as_text=True)
    assert "user.create" in html and "login" in html
    assert "integro" in admin.get("/admin/audit?verify=1").get_data(as_text=True)
    assert client_for(app, "approver").get("/admin/audit").status_code == 403


def test_verify_detects_an_edited_entry(app, panel, tmp_path, capsys):
    with panel.sessions.begin() as s:
        s.execute(update(AuditEntry).where(AuditEntry.id == 2).values(actor="qualcun altro"))
    problems = panel.audit.verify()
    assert problems and "entry 2" in problems[0] and "changed" in problems[0]
    assert main(["--config", str(tmp_path / "allerta.toml"), "audit", "verify"]) == 1
    assert "entry 2" in capsys.readouterr().err
    assert "manomesso" in client_for(app, "admin").get("/admin/audit?verify=1").get_data(as_text=True)


def test_verify_detects_a_removed_entry(app, panel, tmp_path, capsys):
    with panel.sessions.begin() as s:
        s.execute(delete(AuditEntry).where(AuditEntry.id == 3))
    problems = panel.audit.verify()
    assert any("entry 4" in p for p in problems) and any("3 to 3" in p for p in problems)
    assert main(["--config", str(tmp_path / "allerta.toml"), "audit", "verify"]) == 1
    assert "removed" in capsys.readouterr().err


def test_verify_detects_removal_of_the_newest_entries(app, panel, tmp_path, capsys):
    with panel.sessions() as s:
        last = s.scalar(select(AuditEntry.id).order_by(AuditEntry.id.desc()).limit(1))
    with panel.sessions.begin() as s:
        s.execute(delete(AuditEntry).where(AuditEntry.id == last))
    problems = panel.audit.verify()
    assert problems and f"entry {last}" in problems[0]
    assert main(["--config", str(tmp_path / "allerta.toml"), "audit", "verify"]) == 1


def test_verify_passes_on_an_intact_log(app, tmp_path, capsys):
    assert main(["--config", str(tmp_path / "allerta.toml"), "audit", "verify"]) == 0
    assert "intact" in capsys.readouterr().out


def test_users_cli(tmp_path, capsys, monkeypatch):
    from tests.support import write_config
    config = str(write_config(tmp_path))
    assert main(["--config", config, "users", "add", "mario", "--role", "operator", "--generate"]) == 0
    out = capsys.readouterr().out
    assert "mario (operator) added; password: " in out
    password = out.rsplit(": ", 1)[1].strip()
    assert len(password) >= 12
    import io
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["--config", config, "users", "passwd", "mario", "--password-stdin"]) == 2
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["--config", config, "users", "passwd", "mario", "--password-stdin"]) == 0
    assert main(["--config", config, "users", "disable", "mario"]) == 0
    capsys.readouterr()
    assert main(["--config", config, "users", "list", "--json"]) == 0
    import json
    users = json.loads(capsys.readouterr().out)
    assert users == [{"username": "mario", "role": "operator", "language": "it", "active": False,
                      "refused_from_addresses": 0, "refused_until": None, "last_login_at": None}]
    assert main(["--config", config, "users", "add", "mario", "--role", "viewer", "--generate"]) == 2
    assert main(["--config", config, "audit", "verify"]) == 0


def test_the_chain_is_verified_once_not_on_every_page(app, panel, monkeypatch):
    with panel.sessions.begin() as s:
        # Enough entries for three pages of the pager (web/admin.py PAGE_SIZE).
        for i in range(210):
            panel.audit.record(s, "test", "test.entry", i)
    calls = []
    real_verify = panel.audit.verify
    monkeypatch.setattr(panel.audit, "verify", lambda: calls.append(1) or real_verify())
    admin = client_for(app, "admin")
    first = admin.get("/admin/audit?verify=1").get_data(as_text=True)
    assert "integro" in first and len(calls) == 1
    # The pager's links do not carry verify along.
    links = re.findall(r'<nav class="pager">.*?</nav>', first, re.S)[0]
    assert "page=2" in links and "verify" not in links
    second = admin.get("/admin/audit?page=2&verify=1").get_data(as_text=True)
    assert len(calls) == 1 and "integro" not in second and "pagina 2 di 3" in second


def test_the_csv_export_is_audited_when_it_starts(app, panel):
    approver = client_for(app, "approver")
    response = post(approver, "/alerts/new", {"text": "Prova", "zones": "Fregene", "channels": "sms",
                                              "action": "send_now", "reason": "r"})
    alert_id = int(response.location.rsplit("/", 1)[1])
    operator = client_for(app, "operator")
    export = operator.get(f"/alerts/{alert_id}/export.csv", buffered=False)
    # Not one row read yet, and the entry is there: a download cut short still left a trace.
    with panel.sessions() as s:
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "alert.export"))
    assert entry is not None and (entry.actor, entry.target) == ("otto", str(alert_id))
    assert export.get_data(as_text=True).startswith("delivery,number")
    export.close()
    with panel.sessions() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "alert.export")) == 1
