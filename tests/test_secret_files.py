"""Files holding the AMI secret, SIM PINs or residents' numbers are private from their first byte."""
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import gateway.core.backup as backup
from tests.engine_harness import _env

SECRET = "s3cr3t-ami-Xq9"


def allerta_with_umask_0(config: Path, *args: str) -> subprocess.CompletedProcess:
    """The CLI under umask 0: any mode we get is the one the code asked for, not the umask's."""
    result = subprocess.run([sys.executable, "-m", "gateway.shell.cli", "--config", str(config), *args],
                            capture_output=True, text=True, timeout=120, env=_env(),
                            preexec_fn=lambda: os.umask(0))
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.integration
def test_asterisk_config_out_writes_the_ami_secret_0640(tmp_path):
    config = tmp_path / "allerta.toml"
    config.write_text(f'[general]\ndata_dir = "{tmp_path / "data"}"\n[asterisk]\nsecret = "{SECRET}"\n')
    out = tmp_path / "asterisk" / "allerta"
    # A copy left world-readable by an older version is narrowed, not just rewritten.
    out.mkdir(parents=True)
    (out / "manager_allerta.conf").write_text("old")
    os.chmod(out / "manager_allerta.conf", 0o666)
    allerta_with_umask_0(config, "asterisk", "config", "--out", str(out))
    manager = out / "manager_allerta.conf"
    assert SECRET in manager.read_text()
    assert mode(manager) == 0o640
    assert {mode(p) for p in out.iterdir()} == {0o640}


@pytest.mark.integration
def test_asterisk_config_creates_its_directory_closed_to_others(tmp_path):
    config = tmp_path / "allerta.toml"
    config.write_text(f'[general]\ndata_dir = "{tmp_path / "data"}"\n[asterisk]\nsecret = "{SECRET}"\n')
    out = tmp_path / "etc-asterisk" / "allerta"
    out.parent.mkdir()
    allerta_with_umask_0(config, "asterisk", "config", "--out", str(out))
    assert mode(out) == 0o750 and mode(out / "manager_allerta.conf") == 0o640


@pytest.mark.integration
def test_init_writes_the_starter_config_0600(tmp_path):
    config = tmp_path / "etc" / "allerta.toml"
    allerta_with_umask_0(config, "init", "--data-dir", str(tmp_path / "data"))
    assert mode(config) == 0o600
    # As the systemd install leaves them, whatever the umask: residents' numbers stay with allerta.
    assert mode(tmp_path / "data") == 0o750 and mode(tmp_path / "data" / "allerta.db") == 0o640
    assert mode(tmp_path / "data" / "audit.key") == 0o600


def test_backup_copy_is_0600_before_sqlite_writes_into_it(tmp_path, monkeypatch):
    db = tmp_path / "allerta.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE deliveries (id INTEGER PRIMARY KEY, e164 TEXT)")
    conn.execute("INSERT INTO deliveries (e164) VALUES ('+393331234567')")
    conn.commit()
    conn.close()
    seen = {}
    real_connect = sqlite3.connect

    def connect(path, *args, **kwargs):
        # The moment SQLite opens the copy: the file must already be private.
        if str(path).endswith(".partial"):
            seen["mode"] = mode(Path(path))
        return real_connect(path, *args, **kwargs)
    monkeypatch.setattr(backup.sqlite3, "connect", connect)
    old_umask = os.umask(0)
    try:
        result = backup.backup_sqlite(db, tmp_path / "backups" / "copy.db")
    finally:
        os.umask(old_umask)
    assert seen == {"mode": 0o600}
    assert mode(result.path) == 0o600 and result.deliveries == 1
