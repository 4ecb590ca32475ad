"""`allerta inbox`: the messages citizens wrote, a reply from the console, help requests handled; audited."""
from __future__ import annotations

import datetime as dt
import json
import os
import pwd

from sqlalchemy import select

from gateway.core.db import utcnow
from gateway.core.models import InboundSms
from gateway.core.models_citizens import HelpRequest, SmsReply
from gateway.core.models_panel import AuditEntry
from gateway.core.states import InboundKind, ReplyReason, ReplyState
from gateway.shell.cli import main

ACTOR = f"cli:{pwd.getpwuid(os.geteuid()).pw_name}"


def _cli(config_path, capsys, *args: str) -> tuple[int, str, str]:
    code = main(["--config", str(config_path), "inbox", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _seed(services) -> dict:
    now = utcnow()
    with services.sessions.begin() as s:
        rows = [InboundSms(line="modem-1", sender=sender, text=text, kind=kind, outcome=outcome, handled=True,
                           received_at=now - dt.timedelta(minutes=minutes))
                for sender, text, kind, outcome, minutes in (
                    ("+393331110001", "STOP", InboundKind.COMMAND, "opted out", 30),
                    ("+393331110002", "AIUTO\nacqua in casa", InboundKind.HELP_REQUEST, "help request raised", 5),
                    ("+393475556666", "boh", InboundKind.UNRECOGNISED, "commands sent", 10))]
        s.add_all(rows)
        s.flush()
        request = HelpRequest(inbound_id=rows[1].id, e164="+393331110002", text=rows[1].text, received_at=rows[1].received_at)
        s.add(request)
        s.flush()
        return {"stop": rows[0].id, "help_sms": rows[1].id, "odd": rows[2].id, "help": request.id}


def test_inbox_lists_newest_first_and_filters(contacts, config_path, capsys):
    ids = _seed(contacts)
    code, out, _err = _cli(config_path, capsys)
    lines = out.splitlines()
    assert code == 0 and [int(line.split()[0]) for line in lines] == [ids["help_sms"], ids["odd"], ids["stop"]]
    assert "Anna Rossi" in lines[0] and "'AIUTO acqua in casa'" in lines[0] and "help_request" in lines[0]
    code, out, _err = _cli(config_path, capsys, "--kind", "command")
    assert [int(line.split()[0]) for line in out.splitlines()] == [ids["stop"]]
    code, out, _err = _cli(config_path, capsys, "--limit", "1")
    assert out.splitlines()[-1] == "(1 of 3: --limit for more)"
    code, _out, err = _cli(config_path, capsys, "--limit", "-1")
    assert code == 2 and "--limit -1: give a number from 1 to" in err


def test_inbox_json(contacts, config_path, capsys):
    ids = _seed(contacts)
    code, out, _err = _cli(config_path, capsys, "--json", "--sender", "3331110001")
    data = json.loads(out)
    assert code == 0 and data["total"] == 1
    (message,) = data["messages"]
    assert (message["id"], message["sender"], message["name"], message["kind"], message["outcome"], message["line"]) == \
        (ids["stop"], "+393331110001", "Mario Rossi", "command", "opted out", "modem-1")
    assert message["received_at"].endswith("Z") and message["incomplete"] is False


def test_inbox_reply_is_queued_and_audited_with_the_cli_actor(contacts, config_path, capsys):
    ids = _seed(contacts)
    code, out, _err = _cli(config_path, capsys, "reply", str(ids["odd"]), "--text", "Scriva ISCRIVI per ricevere le allerte.")
    assert code == 0 and "queued to +393475556666" in out
    with contacts.sessions() as s:
        reply = s.scalar(select(SmsReply))
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "inbox.reply"))
    assert (reply.e164, reply.reason, reply.state, reply.created_by, reply.inbound_id) == \
        ("+393475556666", ReplyReason.OPERATOR, ReplyState.PENDING, ACTOR, ids["odd"])
    assert (entry.actor, entry.target, json.loads(entry.details)["reply"]) == (ACTOR, str(ids["odd"]), reply.id)


def test_inbox_reply_refused_says_why_and_queues_nothing(contacts, config_path, capsys):
    ids = _seed(contacts)
    code, _out, err = _cli(config_path, capsys, "reply", str(ids["odd"]), "--text", "x" * 500)
    assert code == 2 and "needs 4 SMS, at most 3" in err
    code, _out, err = _cli(config_path, capsys, "reply", "999999", "--text", "ciao")
    assert code == 2 and "no incoming message with id 999999" in err
    with contacts.sessions() as s:
        assert s.scalar(select(SmsReply)) is None and s.scalar(select(AuditEntry)) is None


def test_help_requests_listed_and_marked_handled(contacts, config_path, capsys):
    ids = _seed(contacts)
    code, out, _err = _cli(config_path, capsys, "help-requests")
    assert code == 0 and "Anna Rossi" in out and "VULNERABLE" in out and "OPEN" in out
    code, out, _err = _cli(config_path, capsys, "handled", str(ids["help"]), "--note", "richiamata")
    assert code == 0 and "marked handled" in out
    with contacts.sessions() as s:
        request = s.get(HelpRequest, ids["help"])
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "help.handled"))
    assert (request.handled_by, request.note, entry.actor) == (ACTOR, "richiamata", ACTOR)
    assert _cli(config_path, capsys, "help-requests")[1].strip() == "no open help request"
    code, _out, err = _cli(config_path, capsys, "handled", str(ids["help"]))
    assert code == 2 and "already handled" in err
