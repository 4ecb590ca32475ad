"""The appliance files: `allerta install --systemd --root DIR`, checked with systemd's own tools."""
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.core.config import load_config
from gateway.shell.install import SYSTEMD_SOURCE, allerta_binary
from tests.engine_harness import allerta

pytestmark = pytest.mark.integration  # `allerta install` and systemd's tools as subprocesses

UNITS = ("allerta-engine.service", "allerta-web.service")


def need(tool: str) -> str:
    path = shutil.which(tool)
    # Never skipped: without systemd's tools these tests would prove nothing.
    assert path, f"{tool} is missing: apt-get install systemd (.ci/run installs it)"
    return path


def verify(unit: Path) -> subprocess.CompletedProcess:
    """systemd-analyze verify; it exits 0 even on unknown keys, so its output must be empty too."""
    return subprocess.run([need("systemd-analyze"), "verify", str(unit)], capture_output=True, text=True,
                          timeout=60, cwd=unit.parent)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    need("systemd-sysusers")
    need("systemd-tmpfiles")
    config = "/etc/allerta/allerta.toml"
    result = allerta(Path(config), "install", "--systemd", "--root", str(root))
    assert "ran systemd-sysusers" in result.stdout and "ran systemd-tmpfiles" in result.stdout, result.stdout
    return root


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_analyze_verify_accepts_every_installed_unit(root, unit):
    path = root / "etc/systemd/system" / unit
    result = verify(path)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr
    text = path.read_text()
    assert f"ExecStart={allerta_binary()} --config /etc/allerta/allerta.toml " in text
    assert "@" not in text.split("[Service]")[1].split("\n[Install]")[0].replace("@ALLERTA", "")


def test_verify_would_catch_a_broken_unit(root, tmp_path):
    """The check above is real: a misspelt key or a missing binary is reported."""
    broken = tmp_path / "allerta-engine.service"
    text = (root / "etc/systemd/system/allerta-engine.service").read_text()
    broken.write_text(text.replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"))
    result = verify(broken)
    assert "Unknown key" in result.stdout + result.stderr
    broken.write_text(text.replace(allerta_binary(), "/nonexistent/allerta"))
    assert verify(broken).returncode != 0


def test_engine_unit_is_a_hardened_notify_service_with_a_watchdog(root):
    text = (root / "etc/systemd/system/allerta-engine.service").read_text()
    for line in ("Type=notify", "WatchdogSec=60", "Restart=always", "User=allerta", "SupplementaryGroups=dialout",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/allerta",
                 "ProtectHome=yes", "PrivateTmp=yes", "DevicePolicy=closed", "DeviceAllow=char-ttyUSB rw",
                 "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"):
        assert re.search(rf"^{re.escape(line)}$", text, re.M), line
    assert re.search(r"^After=.*\basterisk\.service\b", text, re.M)
    # DeviceAllow=char-ttyUSB is resolved from /proc/devices when the unit starts: drivers first.
    assert re.search(r"^After=.*\bsystemd-modules-load\.service\b", text, re.M)
    web = (root / "etc/systemd/system/allerta-web.service").read_text()
    assert "ExecStart=" in web and " web" in web and "PrivateDevices=yes" in web and "User=allerta" in web
    for unit in (text, web):
        assert re.search(r"^StateDirectory=allerta$", unit, re.M) and "StateDirectoryMode=0750" in unit


def test_the_modem_tty_drivers_are_loaded_at_boot(root):
    modules = (root / "etc/modules-load.d/allerta.conf").read_text().split("\n")
    assert {"usbserial", "cdc_acm"} <= {line.strip() for line in modules if not line.startswith("#")}


@pytest.mark.parametrize("binary", ["/home/ops/allerta/.venv/bin/allerta", "/root/venv/bin/allerta"])
def test_install_refuses_a_binary_the_services_cannot_see(tmp_path, binary):
    result = allerta(Path("/etc/allerta/allerta.toml"), "install", "--systemd", "--root", str(tmp_path),
                     "--bin", binary, "--no-activate", check=False)
    assert result.returncode != 0
    assert "ProtectHome" in result.stdout + result.stderr and "/opt/allerta/venv" in result.stdout + result.stderr
    assert not (tmp_path / "etc/systemd/system/allerta-engine.service").exists()


@pytest.mark.integration
def test_a_wheel_install_carries_the_systemd_files(tmp_path):
    """Not only an editable checkout: the files travel as package data."""
    # A copy, links kept as links: pip builds in the source tree and would leave build/ behind.
    source = tmp_path / "src"
    shutil.copytree(Path(__file__).resolve().parent.parent, source, symlinks=True,
                    ignore=shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__",
                                                  "tests", ".pytest_cache", "test-artifacts"))
    # Offline and from the repository only: the venv's setuptools (the `test` extra) instead of an isolated build
    # environment fetched from an index, no pip configuration, index or cache of this machine's.
    pip = [sys.executable, "-m", "pip", "--isolated", "--no-cache-dir", "--disable-pip-version-check"]
    offline = dict(os.environ, PIP_CONFIG_FILE=os.devnull)
    build = subprocess.run([*pip, "wheel", "--no-build-isolation", "--no-index", "--no-deps", "--quiet",
                            "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=300,
                           env=offline)
    assert build.returncode == 0, build.stdout + build.stderr
    wheel = next((tmp_path / "dist").glob("allerta-*.whl"))
    target = tmp_path / "site"
    unpack = subprocess.run([*pip, "install", "--no-index", "--no-deps", "--quiet", "--target", str(target),
                             str(wheel)], capture_output=True, text=True, timeout=300, env=offline)
    assert unpack.returncode == 0, unpack.stdout + unpack.stderr
    root = tmp_path / "root"
    env = dict(os.environ, PYTHONPATH=str(target))
    result = subprocess.run([sys.executable, "-c", "import gateway.shell.install as i, sys; print(i.SYSTEMD_SOURCE); "
                             "from gateway.shell.cli import main; sys.exit(main(sys.argv[1:]))",
                             "--config", "/etc/allerta/allerta.toml", "install", "--systemd", "--root", str(root),
                             "--no-activate"], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0].startswith(str(target))   # the wheel's copy, not the checkout's
    for installed in ("etc/systemd/system/allerta-engine.service", "etc/modules-load.d/allerta.conf",
                      "etc/udev/rules.d/60-allerta-modems.rules"):
        assert (root / installed).is_file(), installed


def test_sysusers_and_tmpfiles_create_the_user_and_the_private_data_directory(root):
    passwd = (root / "etc/passwd").read_text()
    user = next(l.split(":") for l in passwd.splitlines() if l.startswith("allerta:"))
    assert user[5] == "/var/lib/allerta" and user[6] == "/usr/sbin/nologin"
    groups = {l.split(":")[0]: l.split(":")[3] for l in (root / "etc/group").read_text().splitlines()}
    assert "allerta" in groups["dialout"].split(",")
    data = (root / "var/lib/allerta").stat()
    assert data.st_uid == int(user[2]) and stat.S_IMODE(data.st_mode) == 0o750   # residents' numbers
    assert (root / "var/lib/allerta/sounds").is_dir()
    config = (root / "etc/allerta/allerta.toml")
    assert stat.S_IMODE(config.stat().st_mode) == 0o640        # holds the AMI secret
    assert load_config(config).general.data_dir == "/var/lib/allerta"


def test_install_keeps_an_existing_configuration(root):
    config = root / "etc/allerta/allerta.toml"
    before = config.read_text()
    result = allerta(Path("/etc/allerta/allerta.toml"), "install", "--systemd", "--root", str(root),
                     "--no-activate")
    assert "starter configuration" not in result.stdout
    assert config.read_text() == before


UDEV_PAIR = re.compile(r'\s*([A-Z_]+)(\{[^}]+\})?\s*(==|!=|\+=|:=|=)\s*"([^"]*)"\s*(,|$)')


def test_udev_rules_are_well_formed_and_name_modems_under_dev_allerta():
    text = (SYSTEMD_SOURCE / "60-allerta-modems.rules").read_text()
    labels = set(re.findall(r'LABEL="([^"]+)"', text))
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        position = 0
        while position < len(line):
            match = UDEV_PAIR.match(line, position)
            assert match, f"line {number}: cannot parse {line[position:]!r}"
            key, _attr, operator, value, _sep = match.groups()
            if key == "GOTO":
                assert value in labels, f"line {number}: GOTO to unknown label {value}"
            position = match.end()
    symlinks = re.findall(r'SYMLINK\+="([^"]+)"', text)
    assert symlinks and all(s.startswith("allerta/modem-") for s in symlinks)
    assert any("ID_SERIAL_SHORT" in s for s in symlinks) and any("ID_PATH_TAG" in s for s in symlinks)
    # ModemManager must leave our ports alone.
    assert 'ENV{ID_MM_DEVICE_IGNORE}="1"' in text
