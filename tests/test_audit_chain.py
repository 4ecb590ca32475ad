"""The audit chain is keyed: who can write the database but not read the key cannot rewrite it."""
from __future__ import annotations

import hashlib
import json
import os
import stat

import pytest
from sqlalchemy import delete, select, update

from gateway.core.audit import (AuditKeyError, anchor_path_for, audit_key_path, canonical, entry_hash,
                                load_audit_key, parse_head)
from gateway.core.models_panel import AuditEntry
from gateway.shell.cli import main


def _entries(panel) -> list[AuditEntry]:
    with panel.sessions() as s:
        return list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def _rewrite(panel, data_dir, entry_id: int, actor: str, hasher) -> None:
    """What an attacker with write access to the database (and the anchor) does: edit one entry,
    recompute every hash after it with ``hasher(prev, text)`` and write an old-style anchor."""
    prev = None
    with panel.sessions.begin() as s:
        for entry in s.scalars(select(AuditEntry).order_by(AuditEntry.id)):
            if prev is None and entry.id < entry_id:
                continue
            if entry.id == entry_id:
                entry.actor = actor
                prev = entry.prev_hash
            details = json.loads(entry.details)
            entry.prev_hash = prev
            entry.hash = hasher(prev, canonical(entry.id, entry.at, entry.actor, entry.action, entry.target, details))
            prev = entry.hash
            last = entry
    anchor_path_for(data_dir).write_text(f"{last.id} {last.hash} {'f' * 64}\n", encoding="ascii")


def test_a_chain_rewritten_with_plain_sha256_fails(app, panel, tmp_path):
    assert panel.audit.verify() == []
    _rewrite(panel, panel.config.general.data_dir, 2, "qualcun altro",
             lambda prev, text: hashlib.sha256((prev + text).encode()).hexdigest())
    problems = panel.audit.verify()
    assert any("entry 2" in p and "without the audit key" in p for p in problems), problems
    assert main(["--config", str(tmp_path / "allerta.toml"), "audit", "verify"]) == 1


def test_a_chain_rewritten_with_another_key_fails(app, panel):
    _rewrite(panel, panel.config.general.data_dir, 2, "qualcun altro",
             lambda prev, text: entry_hash(b"guessed key 0123456789", prev, text))
    problems = panel.audit.verify()
    assert any("entry 2" in p for p in problems)
    assert any("anchor" in p and "not written with the audit key" in p for p in problems), problems


def test_removing_the_newest_entries_with_the_anchor_fails(app, panel, tmp_path, capsys):
    newest = _entries(panel)[-1].id
    with panel.sessions.begin() as s:
        s.execute(delete(AuditEntry).where(AuditEntry.id >= newest - 1))
    anchor_path_for(panel.config.general.data_dir).unlink()
    problems = panel.audit.verify()
    assert problems and "missing" in problems[0]
    assert main(["--config", str(tmp_path / "allerta.toml"), "audit", "verify"]) == 1
    assert "audit-anchor is missing" in capsys.readouterr().err


def test_the_head_from_the_log_book_catches_a_rewrite_by_someone_holding_the_key(app, panel, tmp_path, capsys):
    config = str(tmp_path / "allerta.toml")
    assert main(["--config", config, "audit", "head"]) == 0
    line = capsys.readouterr().out.splitlines()[0].split(None, 1)[1].strip()
    count, digest = parse_head(line)
    assert count == len(_entries(panel)) and len(digest) == 16
    assert main(["--config", config, "audit", "verify", "--head", line]) == 0
    assert "matches the log book" in capsys.readouterr().out

    # Root, who can read the key, rewrites entry 2 and everything after it, anchor included.
    key = load_audit_key(audit_key_path(panel.config))
    _rewrite(panel, panel.config.general.data_dir, 2, "qualcun altro",
             lambda prev, text: entry_hash(key, prev, text))
    panel.audit._write_anchor(_entries(panel)[-1].id, _entries(panel)[-1].hash)
    assert panel.audit.verify() == []          # the chain alone cannot tell...
    assert main(["--config", config, "audit", "verify", "--head", line]) == 1   # ...the log book can
    assert f"entry {count}" in capsys.readouterr().err
    assert main(["--config", config, "audit", "verify", "--head", "12 xyz"]) == 2


def test_head_as_json_and_on_the_admin_page(app, panel, tmp_path, capsys):
    from tests.web_support import client_for
    assert main(["--config", str(tmp_path / "allerta.toml"), "audit", "head", "--json"]) == 0
    head = json.loads(capsys.readouterr().out)
    newest = _entries(panel)[-1]
    assert head["digest"] == newest.hash and head["count"] == newest.id and head["short"] == newest.hash[:16]
    html = client_for(app, "admin").get("/admin/audit").get_data(as_text=True)
    newest = _entries(panel)[-1]          # the admin's login, written before the page
    assert newest.hash[:16] in html and "registro cartaceo" in html


def test_entries_from_before_the_key_are_accepted_until_a_keyed_one_follows(app, panel):
    entries = _entries(panel)
    # An upgraded box: its first entries were chained with plain SHA-256.
    prev = "0" * 64
    with panel.sessions.begin() as s:
        for entry in s.scalars(select(AuditEntry).order_by(AuditEntry.id)):
            text = canonical(entry.id, entry.at, entry.actor, entry.action, entry.target, json.loads(entry.details))
            entry.prev_hash, entry.hash = prev, hashlib.sha256((prev + text).encode()).hexdigest()
            prev = entry.hash
    panel.audit.write("test", "after.upgrade")
    assert panel.audit.verify() == []
    # A plain entry after a keyed one is a forgery.
    with panel.sessions.begin() as s:
        last = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        text = canonical(last.id, last.at, "intruso", last.action, last.target, json.loads(last.details))
        s.execute(update(AuditEntry).where(AuditEntry.id == last.id).values(
            actor="intruso", hash=hashlib.sha256((last.prev_hash + text).encode()).hexdigest()))
    assert any(f"entry {len(entries) + 1}" in p for p in panel.audit.verify())


def test_the_key_file_is_private_and_a_bad_one_is_a_clear_error(app, panel, tmp_path):
    path = audit_key_path(panel.config)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(load_audit_key(path)) == 32
    bad = tmp_path / "bad.key"
    bad.write_text("not hex\n")
    with pytest.raises(AuditKeyError, match="bad.key: cannot read the audit key"):
        load_audit_key(bad)


def test_a_missing_key_with_a_keyed_log_fails_verify(app, panel, tmp_path, capsys):
    audit_key_path(panel.config).unlink()      # a new key is made: it cannot vouch for the old entries
    assert main(["--config", str(tmp_path / "allerta.toml"), "audit", "verify"]) == 1
    assert "without the audit key" in capsys.readouterr().err


def test_panel_users_changed_from_the_command_line_are_audited_with_the_unix_user(tmp_path):
    from gateway.core.audit import local_actor
    from gateway.core.config import load_config
    from gateway.core.services import build_services
    from tests.support import write_config
    config = str(write_config(tmp_path))
    assert main(["--config", config, "users", "add", "lucia", "--role", "viewer", "--generate"]) == 0
    assert main(["--config", config, "users", "disable", "lucia"]) == 0
    services = build_services(load_config(config))
    with services.sessions() as s:
        actors = {(e.action, e.actor) for e in s.scalars(select(AuditEntry))}
    assert {a for _, a in actors} == {local_actor()} and local_actor().startswith("cli:")
