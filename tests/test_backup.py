"""`allerta backup` while the engine sends, and `allerta restore` (refused while it runs)."""
import sqlite3
from collections import Counter

import pytest
from sqlalchemy import select

from gateway.core.alerts import AlertRequest, Target
from gateway.core.backup import integrity_problems
from gateway.core.contacts_import import import_contacts
from gateway.core.models import Delivery
from modem.simulator.harness import SimulatorProcess
from tests.engine_harness import (allerta, contacts_csv, engine_config, services_for, start_engine, states,
                                  wait_until)

pytestmark = pytest.mark.integration


def recorded(services, alert_id):
    """Deliveries the engine has recorded as gone out: id -> state."""
    with services.sessions() as s:
        rows = s.execute(select(Delivery.id, Delivery.state).where(
            Delivery.alert_id == alert_id, Delivery.state.in_(("sent", "delivered")))).all()
    return dict(rows)


def backup_states(path, alert_id):
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT id, state FROM deliveries WHERE alert_id = ?", (alert_id,)).fetchall())
    finally:
        conn.close()


def test_backup_while_sending_restores_every_recorded_delivery(tmp_path):
    with SimulatorProcess(count=2, link_dir=tmp_path / "links", latency_median=0.05, latency_sigma=0.2,
                          report_delay=0.05) as sim:
        config_path = engine_config(tmp_path, [m["link"] for m in sim.modems], per_minute=600, report_timeout=3)
        services = services_for(config_path)
        import_contacts(services.sessions, contacts_csv(300))
        alert_id, _ = services.alerts.create(AlertRequest(text="Allerta: piani alti", target=Target(everyone=True)))
        engine = start_engine(config_path, log_path=tmp_path / "engine.log")
        backup = tmp_path / "backups" / "allerta-backup.db"
        try:
            assert wait_until(lambda: len(recorded(services, alert_id)) >= 40, 60)
            before = recorded(services, alert_id)
            result = allerta(config_path, "backup", "--out", str(backup))
            assert "integrity check ok" in result.stdout
            in_flight = states(services, alert_id)
            # Not yet sent: 'pending', or 'submitting' (claimed ahead by the engine, see store_worker.py).
            assert in_flight["pending"] + in_flight["submitting"] > 0, \
                "the backup must be taken while the alert is being sent"
            # A restore under a running engine is refused and changes nothing.
            refused = allerta(config_path, "restore", str(backup), check=False)
            assert refused.returncode == 1 and "engine is running" in refused.stderr
        finally:
            engine.terminate()
            assert engine.wait(timeout=60) == 0
        assert integrity_problems(backup) == []
        saved = backup_states(backup, alert_id)
        assert len(saved) == 300
        # Every delivery recorded before the backup is in it, at least as far along.
        assert all(saved[i] in ("sent", "delivered") and (state != "delivered" or saved[i] == "delivered")
                   for i, state in before.items())
        assert Counter(saved.values())["pending"] + Counter(saved.values())["submitting"] > 0

        # Restore: the database goes back to the backup's content; the replaced one is kept.
        after_engine = states(services, alert_id)
        assert after_engine != Counter(saved.values())
        result = allerta(config_path, "restore", str(backup))
        assert "previous database is kept in" in result.stdout
        assert backup_states(tmp_path / "data" / "allerta.db", alert_id) == saved
        assert integrity_problems(tmp_path / "data" / "allerta.db") == []
        kept = list((tmp_path / "data").glob("allerta.db.before-restore-*"))
        assert len(kept) == 1 and Counter(backup_states(kept[0], alert_id).values()) == after_engine
        # And the engine runs on it: the restored alert goes out to everyone left. (Status
        # reports the modems gave after the backup were consumed then: those stay 'sent'.)
        allerta(config_path, "run", "--once", timeout=300)
        final = states(services_for(config_path), alert_id)
        assert set(final) <= {"sent", "delivered"} and final["delivered"] >= 290, final


def test_restore_refuses_a_damaged_or_foreign_file(tmp_path):
    config_path = engine_config(tmp_path, [])
    services_for(config_path)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)
    result = allerta(config_path, "restore", str(garbage), check=False)
    assert result.returncode == 1 and "integrity check failed" in result.stderr and "nothing restored" in result.stderr
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.commit()
    result = allerta(config_path, "restore", str(foreign), check=False)
    assert result.returncode == 1 and "not an Allerta database" in result.stderr


def test_postgresql_gets_a_pg_dump_hint(tmp_path):
    config_path = engine_config(tmp_path, [], extra='[database]\nurl = "postgresql://allerta:pw@localhost/allerta"\n')
    result = allerta(config_path, "backup", "--out", str(tmp_path / "x.db"), check=False)
    assert result.returncode == 2 and "pg_dump" in result.stderr and "pw" not in result.stderr


def _serve_panel(config_path, tmp_path):
    """`allerta web` in its own process, up once it answers /login; HTTPS off (no certificate needed)."""
    import http.client
    import subprocess
    import sys

    from web.serve import free_port
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "gateway.shell.cli", "--config", str(config_path), "web",
                                "--port", str(port), "--https-port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def answers():
        assert process.poll() is None, process.stdout.read()
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/login")
            return connection.getresponse().status == 200
        except OSError:
            return False
    assert wait_until(answers, 30), "allerta web did not start"
    return process


def test_restore_refuses_while_the_panel_serves_the_same_database(tmp_path):
    config_path = engine_config(tmp_path, [])
    services_for(config_path)
    backup = tmp_path / "b.db"
    allerta(config_path, "backup", "--out", str(backup))
    panel = _serve_panel(config_path, tmp_path)
    try:
        refused = allerta(config_path, "restore", str(backup), check=False)
        assert refused.returncode == 1 and "panel is running" in refused.stderr, refused.stderr
        assert "systemctl stop allerta-web" in refused.stderr
        assert not list((tmp_path / "data").glob("allerta.db.before-restore-*"))   # nothing touched
    finally:
        panel.terminate()
        panel.wait(timeout=30)
    # The lock goes with the process (no stale pid file): the restore now runs.
    result = allerta(config_path, "restore", str(backup))
    assert "restored" in result.stdout


def _at_revision(backup, revision):
    conn = sqlite3.connect(backup)
    try:
        conn.execute("UPDATE alembic_version SET version_num = ?", (revision,))
        conn.commit()
    finally:
        conn.close()


def test_restore_refuses_a_newer_schema_and_migrates_an_older_one(tmp_path):
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    from gateway.core.backup import schema_revision
    from gateway.core.db import MIGRATIONS_DIR, make_engine
    config_path = engine_config(tmp_path, [])
    services_for(config_path)
    db = tmp_path / "data" / "allerta.db"
    head = schema_revision(db)

    newer = tmp_path / "newer.db"
    allerta(config_path, "backup", "--out", str(newer))
    _at_revision(newer, "9999_from_the_future")
    refused = allerta(config_path, "restore", str(newer), check=False)
    assert refused.returncode == 1 and "newer version of Allerta" in refused.stderr, refused.stderr
    assert "9999_from_the_future" in refused.stderr and "nothing restored" in refused.stderr
    assert schema_revision(db) == head and not list(db.parent.glob("allerta.db.before-restore-*"))

    # A backup taken before the last migration: restored, then brought to this version's schema.
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    previous = ScriptDirectory.from_config(cfg).get_revision(head).down_revision
    assert previous, "needs at least two migrations"
    older = tmp_path / "older.db"
    engine = make_engine(f"sqlite:///{older}")
    cfg.attributes["engine"] = engine
    command.upgrade(cfg, previous)
    engine.dispose()
    assert schema_revision(older) == previous
    result = allerta(config_path, "restore", str(older))
    assert f"revision {previous}) was migrated to revision {head}" in result.stdout, result.stdout
    assert schema_revision(db) == head
    assert allerta(config_path, "audit", "verify").returncode == 0
