"""The doctor's Asterisk pieces that need no PBX: hints, modules, who can read the sounds."""
import os
import re
import stat
from pathlib import Path

from asterisk.asterisk_config import CONFIG_DIR, dialplan_modules
from gateway.shell.file_access import unreadable_by

ROOT = Path(__file__).resolve().parent.parent


def test_the_fix_hints_render_where_the_install_guide_does():
    install = (ROOT / "docs" / "install.md").read_text(encoding="utf-8")
    assert f"asterisk config --out {CONFIG_DIR}\n" in install
    doctor = (ROOT / "gateway" / "shell" / "doctor.py").read_text(encoding="utf-8")
    assert not re.search(r"--out /etc/asterisk['\"]", doctor)   # the old hint, one directory off


def test_the_modules_listed_in_the_policies_are_the_dialplans():
    policies = (ROOT / "docs" / "policies.md").read_text(encoding="utf-8")
    for module in dialplan_modules():
        assert f"`{module}`" in policies, module


def test_unreadable_by_names_what_stops_another_account(tmp_path):
    def stat_of(path):
        # Above tmp_path (pytest's own 0700 directories) a root-owned 0755 directory, as /var/lib is:
        # nothing outside the test's own directory is looked at.
        if tmp_path == Path(path) or tmp_path in Path(path).parents:
            return os.stat(path)
        return os.stat_result((stat.S_IFDIR | 0o755, 0, 0, 2, 0, 0, 4096, 0, 0, 0))

    def unreadable(*args):
        return unreadable_by(*args, stat_of=stat_of)

    sounds = tmp_path / "sounds"
    sounds.mkdir()
    (sounds / "allerta-1.wav").write_bytes(b"RIFF")
    me, others = os.getuid(), 54321
    sounds.chmod(0o750)
    tmp_path.chmod(0o755)
    (sounds / "allerta-1.wav").chmod(0o640)
    group = sounds.stat().st_gid
    assert unreadable(sounds, me, set()) is None
    assert unreadable(sounds, others, {group}) is None            # in the group: r-x, then r--
    assert "is not readable (r-x)" in unreadable(sounds, others, set())
    (sounds / "allerta-1.wav").chmod(0o600)
    assert "allerta-1.wav is not readable" in unreadable(sounds, others, {group})
    tmp_path.chmod(0o700)
    try:
        assert f"{tmp_path} is not searchable" in unreadable(sounds, others, {group})
    finally:
        tmp_path.chmod(0o755)
    assert unreadable(sounds, 0, set()) is None                   # root reads everything
