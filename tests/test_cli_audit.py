"""What the command line changes or sends is on the panel's hash-chained audit log."""
import json
import os
import pwd

from sqlalchemy import select

from gateway.shell.cli import main
from gateway.core.models_panel import AlertApproval, AuditEntry

CONTACTS = "nome;cellulare;zona\nMario Rossi;333 111 0001;Fregene\nAnna Bianchi;333 111 0002;Fregene\n"
ACTOR = f"cli:{pwd.getpwuid(os.geteuid()).pw_name}"


def _cli(config_path, capsys, *args) -> str:
    code = main(["--config", str(config_path), *args])
    out, err = capsys.readouterr()
    assert code == 0, (args, err)
    return out


def _entries(services) -> list[AuditEntry]:
    with services.sessions() as s:
        return list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_send_cancel_import_and_restore_are_audited_and_the_chain_verifies(services, config_path, tmp_path, capsys):
    csv = tmp_path / "contatti.csv"
    csv.write_text(CONTACTS, encoding="utf-8")
    _cli(config_path, capsys, "contacts", "import", str(csv))
    backup = tmp_path / "backup.db"
    _cli(config_path, capsys, "backup", "--out", str(backup))
    alert_id = int(_cli(config_path, capsys, "alert", "send", "--sms", "--zone", "Fregene",
                        "--text", "Prova di allerta").split()[-1])
    _cli(config_path, capsys, "alert", "cancel", str(alert_id), "--reason", "prova finita")
    assert "audit log intact: 3 entries" in _cli(config_path, capsys, "audit", "verify")

    imported, sent, cancelled = _entries(services)
    assert [e.actor for e in (imported, sent, cancelled)] == [ACTOR] * 3
    assert (imported.action, imported.target) == ("contacts.import", "contatti.csv")
    assert json.loads(imported.details)["created"] == 2
    assert (sent.action, sent.target) == ("alert.send", str(alert_id))
    details = json.loads(sent.details)
    # The command line has no second person: the entry says the rule was bypassed.
    assert details["bypassed_two_person_rule"] is True and details["via"] == "cli"
    assert details["recipients"] == {"sms": 2} and details["text"] == "Prova di allerta"
    with services.sessions() as s:
        approval = s.scalar(select(AlertApproval).where(AlertApproval.alert_id == alert_id))
    assert (approval.decision, approval.decided_by) == ("bypassed", ACTOR)
    assert (cancelled.action, json.loads(cancelled.details)) == ("alert.cancel", {"deliveries_stopped": 2,
                                                                              "reason": "prova finita"})
    lost_newest = f"{cancelled.id} {cancelled.hash}"

    # The backup's log ends at the import: the restore is recorded on it, with the
    # newest entry it took away, and verify does not call it a removal.
    _cli(config_path, capsys, "restore", str(backup))
    assert "audit log intact: 2 entries" in _cli(config_path, capsys, "audit", "verify")
    first, restored = _entries(services)
    assert first.hash == imported.hash
    assert (restored.actor, restored.action, restored.target) == (ACTOR, "database.restore", "backup.db")
    assert json.loads(restored.details)["previous_newest_entry"] == lost_newest


def test_a_refused_alert_writes_no_entry(services, config_path, capsys):
    assert main(["--config", str(config_path), "alert", "send", "--sms", "--zone", "Nowhere",
                 "--text", "Prova"]) == 2
    capsys.readouterr()
    assert _entries(services) == []
