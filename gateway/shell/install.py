"""`allerta install --systemd`: put the units, users, directories and udev rules in place.

Everything is written under a root directory (``/`` on the box, a temporary
directory in tests), so the same code is exercised by the tests and by the
admin. Activation (creating the user, the directories, reloading udev and
systemd) only runs when installing into the real root.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from gateway.core.config import DEFAULT_CONFIG_PATH, starter_config
from gateway.core.files import write_private

# gateway/systemd is a link to the checkout's systemd/, shipped as package data
# (pyproject.toml), so a non-editable install finds the files too.
SYSTEMD_SOURCE = Path(__file__).resolve().parents[1] / "systemd"
DATA_DIR = "/var/lib/allerta"

# Source file in systemd/ -> where it goes, relative to the root.
# /etc rather than /usr/lib: these are the admin's files, not a Debian package's.
FILES = {
    "allerta-engine.service": "etc/systemd/system/allerta-engine.service",
    "allerta-web.service": "etc/systemd/system/allerta-web.service",
    "allerta.sysusers": "etc/sysusers.d/allerta.conf",
    "allerta.tmpfiles": "etc/tmpfiles.d/allerta.conf",
    "60-allerta-modems.rules": "etc/udev/rules.d/60-allerta-modems.rules",
    "allerta.modules-load": "etc/modules-load.d/allerta.conf",
}
UNITS = ("allerta-engine.service", "allerta-web.service")
# ProtectHome=yes in both units makes these invisible to the services.
HIDDEN_FROM_SERVICES = ("/home", "/root", "/run/user")


class InstallError(Exception):
    """Something the admin must fix before installing; the message says what."""


@dataclass
class InstallReport:
    written: list[Path] = field(default_factory=list)
    config_created: Path | None = None
    ran: list[list[str]] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)


def allerta_binary() -> str:
    """The `allerta` script of the environment running us (the venv's, on a box)."""
    beside = Path(sys.executable).with_name("allerta")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("allerta")
    if found:
        return os.path.abspath(found)
    raise InstallError("cannot find the 'allerta' command: install the package first "
                       "(python3 -m venv /opt/allerta && /opt/allerta/bin/pip install .)")


def check_binary_visible(binary: str) -> None:
    """Refuse a binary the hardened services could not see (ProtectHome=yes)."""
    for path in {os.path.abspath(binary), os.path.realpath(binary)}:
        hidden = next((d for d in HIDDEN_FROM_SERVICES if path == d or path.startswith(d + "/")), None)
        if hidden:
            raise InstallError(
                f"{binary} is under {hidden}, which the services cannot see (ProtectHome=yes): the engine "
                f"would fail to start. Install into /opt: python3 -m venv /opt/allerta/venv && "
                f"/opt/allerta/venv/bin/pip install <source> && /opt/allerta/venv/bin/allerta install --systemd")


def render_unit(text: str, binary: str, config_path: str) -> str:
    return text.replace("@ALLERTA_BIN@", binary).replace("@CONFIG@", config_path)


def install_systemd(root: str | os.PathLike[str] = "/", *, binary: str | None = None,
                    config_path: str = DEFAULT_CONFIG_PATH, activate: bool | None = None,
                    source: Path = SYSTEMD_SOURCE) -> InstallReport:
    """Install the appliance files under ``root``; activate them when ``root`` is ``/``."""
    root = Path(root)
    if not source.is_dir():
        raise InstallError(f"{source}: the systemd files are missing: reinstall the package")
    binary = binary or allerta_binary()
    check_binary_visible(binary)
    if not os.path.isabs(config_path):
        raise InstallError(f"--config {config_path}: the service needs an absolute path")
    real_root = root.resolve() == Path("/")
    activate = True if activate is None else activate
    report = InstallReport()
    for name, target in FILES.items():
        text = (source / name).read_text(encoding="utf-8")
        if name in UNITS:
            text = render_unit(text, binary, config_path)
        path = root / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        path.chmod(0o644)
        report.written.append(path)

    config_file = root / config_path.lstrip("/")
    if not config_file.exists():
        config_file.parent.mkdir(parents=True, exist_ok=True)
        # Written 0600 before any secret goes in; tmpfiles gives it to group allerta.
        write_private(config_file, starter_config(DATA_DIR), exclusive=True)
        report.config_created = config_file

    # The user and the directories can be made inside any root (an image being
    # prepared, a test); udev and systemd are only reloaded on the live system.
    rooted = [] if real_root else [f"--root={root}"]
    commands = [["systemd-sysusers", *rooted, "allerta.conf"],
                ["systemd-tmpfiles", *rooted, "--create", "allerta.conf"]]
    if real_root:
        # Load the tty drivers now, not only at the next boot (see allerta.modules-load).
        commands += [["systemctl", "restart", "systemd-modules-load.service"],
                     ["udevadm", "control", "--reload"],
                     ["udevadm", "trigger", "--subsystem-match=tty", "--action=add"],
                     ["systemctl", "daemon-reload"]]
    if activate:
        for command in commands:
            if shutil.which(command[0]) is None:
                report.next_steps.append(f"{command[0]} not found (apt-get install systemd udev): "
                                         f"run '{' '.join(command)}' once it is installed")
                continue
            result = subprocess.run(command, capture_output=True, text=True, timeout=120)
            report.ran.append(command)
            if result.returncode != 0:
                raise InstallError(f"{' '.join(command)} failed: {(result.stderr or result.stdout).strip()}")
    else:
        report.next_steps.append(f"not activated: run {'; '.join(' '.join(c) for c in commands)}")
    report.next_steps += [
        f"edit {config_path}: [general] comune, one [[modems]] table per modem (port /dev/allerta/modem-..., imei)",
        f"sudo -u allerta {binary} --config {config_path} init    # creates the database",
        f"sudo -u allerta {binary} --config {config_path} doctor",
        "systemctl enable --now allerta-engine.service allerta-web.service",
    ]
    return report
