"""`allerta doctor`: every check the box needs to send alerts, one line each, with the fix.

Checks: configuration, database and migrations, each modem (port opens,
answers AT, SIM ready, registered, signal, SMSC set), the AMI login and our
dialplan (through AMI), espeak-ng and sox, free disk, the clock.

Modems are probed with a few read-only AT commands over raw pyserial, under
short timeouts, never through the engine's driver (whose open collects and
deletes the status reports stored in the modem). While an engine runs it owns
the ports: the doctor then reads what the engine last reported instead.
gateway/ never imports serial or the AMI client at module level: the probes
import them inside the functions that need them.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import glob
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from gateway.config import Config, ConfigError, ModemConfig, load_config

OK, WARN, FAIL = "ok", "warn", "fail"
MODEM_TIMEOUT = 3.0         # seconds for one AT command
MIN_FREE_BYTES = 200 * 1024 * 1024
LOW_FREE_BYTES = 1024 * 1024 * 1024


@dataclass(frozen=True)
class Check:
    name: str
    status: str            # ok | warn | fail
    detail: str
    fix: str = ""          # what to do when it is not ok

    def line(self) -> str:
        text = f"{self.status.upper():<4}  {self.name}: {self.detail}"
        return text + (f"  -> {self.fix}" if self.fix and self.status != OK else "")


def run_checks(config_path: str) -> list[Check]:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        return [Check("configuration", FAIL, str(exc), "fix the key named above (README lists every key)")]
    checks = [_config_check(config)]
    checks += database_checks(config)
    checks += modem_checks(config)
    checks += ami_checks(config)
    checks += tool_checks(config)
    checks.append(disk_check(config))
    checks += clock_checks()
    return checks


def exit_code(checks: list[Check]) -> int:
    return 1 if any(c.status == FAIL for c in checks) else 0


def as_json(checks: list[Check]) -> dict:
    return {"ok": exit_code(checks) == 0, "checks": [asdict(c) for c in checks]}


def _config_check(config: Config) -> Check:
    voice = "voice on" if config.asterisk["enabled"] else "voice off"
    detail = f"{config.path}: {len(config.modems)} modem(s), {voice}"
    if not config.modems and not config.asterisk["enabled"]:
        return Check("configuration", FAIL, detail + ", no channel",
                     "add a [[modems]] table per GSM modem (or enable [asterisk] with [[trunks]])")
    return Check("configuration", OK, detail)


# --- database --------------------------------------------------------------------------
def database_checks(config: Config) -> list[Check]:
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.db import database_exists, make_engine, schema_is_current
    url = config.database_url
    shown = url.split("@")[-1] if "@" in url else url   # never the password of a postgresql:// URL
    if not database_exists(url):
        return [Check("database", FAIL, f"{shown}: no database", "run 'allerta init' (as user allerta)")]
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        current = schema_is_current(engine)
    except SQLAlchemyError as exc:
        return [Check("database", FAIL, f"{shown}: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                      "check [database] url, the file's owner (allerta) and permissions")]
    finally:
        engine.dispose()
    checks = [Check("database", OK, f"{shown} reachable")]
    if current:
        checks.append(Check("migrations", OK, "schema is current"))
    else:
        checks.append(Check("migrations", FAIL, "schema is behind this version",
                            "run 'allerta init' (applies the migrations), or restart allerta-engine"))
    return checks


# --- modems ----------------------------------------------------------------------------
def modem_checks(config: Config) -> list[Check]:
    from gateway.backup import engine_running
    if not config.modems:
        return []
    if engine_running(config):
        return _modems_from_engine(config)
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(config.modems))) as pool:
        results = list(pool.map(probe_modem, config.modems))
    return [check for checks in results for check in checks]


def _modems_from_engine(config: Config) -> list[Check]:
    """The engine owns the ports: report its last health reading of each modem."""
    from sqlalchemy import select

    from gateway.db import make_engine, make_sessionmaker, utcnow
    from gateway.models import Line
    engine = make_engine(config.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            lines = {l.label: l for l in session.scalars(select(Line).where(Line.channel == "sms"))}
    finally:
        engine.dispose()
    stale_after = 3 * config.engine["health_interval"] + 60
    checks = []
    for modem in config.modems:
        name = f"modem {modem.label}"
        line = lines.get(modem.label)
        if line is None:
            checks.append(Check(name, WARN, "the engine runs but has not reported this modem yet",
                                "wait a minute and run doctor again; see 'journalctl -u allerta-engine'"))
            continue
        age = (utcnow() - line.updated_at).total_seconds() if line.updated_at else None
        detail = (f"{line.state} on {line.port or modem.port} (from the running engine): CSQ {line.signal}, "
                  f"{line.registration}, SIM {line.sim_state}")
        if line.state != "up":
            checks.append(Check(name, FAIL, f"{line.state} (from the running engine): {line.last_error}",
                                "check the cable, the SIM and the antenna; 'allerta modems' shows the details"))
        elif age is not None and age > stale_after:
            checks.append(Check(name, WARN, f"{detail}; last report {age:.0f} s ago",
                                "the engine has not refreshed it: see 'journalctl -u allerta-engine'"))
        else:
            checks.append(Check(name, OK, detail))
    return checks


class _NoAnswer(Exception):
    pass


def _at(port, command: str, timeout: float = MODEM_TIMEOUT) -> list[str]:
    """Send one AT command; the reply lines up to OK (inclusive). _NoAnswer on silence or ERROR."""
    port.reset_input_buffer()
    port.write(command.encode("ascii") + b"\r")
    deadline = time.monotonic() + timeout
    buffer = b""
    lines: list[str] = []
    while time.monotonic() < deadline:
        buffer += port.read(port.in_waiting or 1)
        while b"\n" in buffer:
            raw, buffer = buffer.split(b"\n", 1)
            line = raw.decode("ascii", "replace").strip()
            if not line or line == command:   # blank or our echo
                continue
            lines.append(line)
            if line == "OK":
                return lines
            if line == "ERROR" or line.startswith(("+CME ERROR", "+CMS ERROR")):
                raise _NoAnswer(f"{command} answered {line}")
    raise _NoAnswer(f"no answer to {command} within {timeout:g} s")


def _candidates(modem: ModemConfig) -> list[str]:
    if any(c in modem.port for c in "*?["):
        return sorted(glob.glob(modem.port))
    return [modem.port]


def probe_modem(modem: ModemConfig) -> list[Check]:
    """Read-only AT probe of one modem: never enters the PIN, never touches stored SMS."""
    import serial  # only here: gateway/ opens no port at import time

    from modem.at_parse import parse_cops, parse_cpin, parse_creg, parse_csq
    name = f"modem {modem.label}"
    ports = _candidates(modem)
    if not ports:
        return [Check(name, FAIL, f"no port matches {modem.port}",
                      "plug the modem in; check 'ls -l /dev/allerta/' and the udev rules")]
    problems = []
    for path in ports:
        try:
            port = serial.Serial(path, modem.baud, timeout=0.1, write_timeout=MODEM_TIMEOUT)
        except (serial.SerialException, OSError) as exc:
            problems.append(Check(name, FAIL, f"cannot open {path}: {exc}",
                                  "plug the modem in, check the port name and that user allerta is in "
                                  "group dialout"))
            continue
        try:
            with port:
                checks = _probe_open_port(name, path, port, modem, parse_cpin, parse_creg, parse_csq, parse_cops)
        except (serial.SerialException, OSError) as exc:
            checks = [Check(name, FAIL, f"{path} failed during the check: {exc}",
                            "check the USB cable and the power supply of the hub")]
        if checks is None:
            problems.append(Check(name, FAIL, f"{path} holds another modem (IMEI is not {modem.imei})",
                                  "find the right port in /dev/allerta/, or fix [[modems]] imei"))
            continue
        return checks
    return problems[-1:] if len(ports) == 1 else [
        Check(name, FAIL, f"none of {len(ports)} ports matching {modem.port} is this modem: "
                          + "; ".join(p.detail for p in problems), problems[-1].fix)]


def _probe_open_port(name, path, port, modem: ModemConfig, parse_cpin, parse_creg, parse_csq, parse_cops):
    try:
        _at(port, "AT")
    except _NoAnswer as exc:
        return [Check(name, FAIL, f"{path} opens but {exc}",
                      "the modem is hung or not a modem port: power-cycle it (unplug and replug); "
                      "if it persists, try the other /dev/allerta/ names of the same dongle")]
    try:
        _at(port, "ATE0")
        imei = next((l for l in _at(port, "AT+CGSN") if l != "OK"), "").replace("+CGSN:", "").strip()
    except _NoAnswer:
        imei = ""
    if modem.imei and imei and imei != modem.imei:
        return None
    checks = [Check(name, OK, f"{path} answers AT (IMEI {imei or 'unknown'})")]
    try:
        sim = parse_cpin(_at(port, "AT+CPIN?"))
    except _NoAnswer as exc:
        return checks + [Check(f"{name} SIM", FAIL, str(exc), "insert the SIM (power off the modem first)")]
    if sim == "SIM PIN":
        if modem.pin:
            checks.append(Check(f"{name} SIM", OK, "asks for its PIN; the engine enters the configured one"))
        else:
            checks.append(Check(f"{name} SIM", FAIL, "asks for a PIN and none is configured",
                                "set [[modems]] pin, or remove the PIN from the SIM in a phone"))
        return checks   # registration and SMSC cannot be read before the PIN
    if sim != "READY":
        return checks + [Check(f"{name} SIM", FAIL, f"SIM state {sim}",
                               "SIM PUK or blocked: unlock it in a phone; no SIM: insert one")]
    checks.append(Check(f"{name} SIM", OK, "READY"))
    try:
        registration = parse_creg(_at(port, "AT+CREG?"))
        operator = parse_cops(_at(port, "AT+COPS?"))
    except _NoAnswer as exc:
        registration, operator = None, None
        checks.append(Check(f"{name} network", FAIL, str(exc), "power-cycle the modem"))
    if registration in ("home", "roaming"):
        checks.append(Check(f"{name} network", OK, f"registered ({registration}, {operator or 'operator unknown'})"))
    elif registration is not None:
        checks.append(Check(f"{name} network", FAIL, f"not registered ({registration})",
                            "denied: the SIM is barred or expired (call the operator); searching: "
                            "check the antenna and coverage"))
    try:
        signal = parse_csq(_at(port, "AT+CSQ"))
    except _NoAnswer as exc:
        signal = None
        checks.append(Check(f"{name} signal", FAIL, str(exc), "power-cycle the modem"))
    if signal is not None:
        if signal == 99 or signal < 5:
            checks.append(Check(f"{name} signal", FAIL, f"CSQ {signal} (none or unusable)",
                                "connect or move the antenna (an external antenna near a window)"))
        elif signal < 10:
            checks.append(Check(f"{name} signal", WARN, f"CSQ {signal} (weak)",
                                "an external antenna or another position would make sends more reliable"))
        else:
            checks.append(Check(f"{name} signal", OK, f"CSQ {signal}"))
    try:
        smsc = next((l for l in _at(port, "AT+CSCA?") if l.startswith("+CSCA:")), "")
    except _NoAnswer as exc:
        smsc = ""
        checks.append(Check(f"{name} SMSC", FAIL, str(exc), "set it with AT+CSCA=\"+39...\",145"))
        return checks
    number = smsc.replace("+CSCA:", "").split(",")[0].strip().strip('"')
    if number:
        checks.append(Check(f"{name} SMSC", OK, number))
    else:
        checks.append(Check(f"{name} SMSC", FAIL, "no SMS centre number on the SIM",
                            "ask the operator for it and store it with AT+CSCA=\"+39...\",145"))
    return checks


# --- Asterisk ----------------------------------------------------------------------------
def ami_checks(config: Config) -> list[Check]:
    if not config.asterisk["enabled"]:
        return [Check("asterisk", OK, "voice channel disabled ([asterisk] enabled = false): not checked")]
    try:
        return asyncio.run(asyncio.wait_for(_ami_checks(config), 30))
    except asyncio.TimeoutError:
        return [Check("asterisk AMI", FAIL, "no complete answer within 30 s",
                      "is Asterisk overloaded or hung? 'systemctl status asterisk'")]


async def _ami_checks(config: Config) -> list[Check]:
    from asterisk.ami_client import AmiAuthError, AmiClient, AmiError, AmiSettings, AmiUnreachable
    a = config.asterisk
    settings = AmiSettings(username=a["username"], secret=a["secret"], host=a["host"], port=a["port"],
                           connect_timeout=5.0, login_timeout=10.0, action_timeout=5.0, ping_interval=60.0)
    client = AmiClient(settings)
    try:
        await client.connect()
    except AmiAuthError:
        return [Check("asterisk AMI", FAIL, f"login as {a['username']!r} refused at {settings.address}",
                      "[asterisk] secret must match manager_allerta.conf: 'allerta asterisk config --out "
                      "/etc/asterisk', then 'asterisk -rx \"manager reload\"'")]
    except AmiUnreachable as exc:
        return [Check("asterisk AMI", FAIL, str(exc),
                      "is Asterisk running ('systemctl status asterisk')? manager.conf needs enabled = yes "
                      f"and port = {a['port']}, with #include manager_allerta.conf")]
    checks = [Check("asterisk AMI", OK, f"logged in as {a['username']!r} at {settings.address}")]
    try:
        # Getvar (write class 'call', which our AMI user has) evaluates a dialplan
        # function without a channel: DIALPLAN_EXISTS tells whether the context is loaded.
        variable = f"DIALPLAN_EXISTS({a['context']},s,1)"
        response = await client._action({"Action": "Getvar", "Variable": variable})
        loaded = str(response.get("Value", "")).strip() == "1"
        if loaded:
            checks.append(Check("asterisk dialplan", OK, f"context {a['context']} is loaded"))
        elif not response.success:
            checks.append(Check("asterisk dialplan", FAIL, f"Getvar refused: {response.get('Message')}",
                                "give the AMI user write = originate,call,system (manager_allerta.conf)"))
        else:
            checks.append(Check("asterisk dialplan", FAIL, f"context {a['context']} is not loaded",
                                "'allerta asterisk config --out /etc/asterisk', add #include "
                                "extensions_allerta.conf to extensions.conf, 'asterisk -rx \"dialplan reload\"'"))
    except (AmiError, asyncio.TimeoutError) as exc:
        checks.append(Check("asterisk dialplan", FAIL, f"no answer to Getvar: {exc or 'timed out'}",
                            "check Asterisk's log (/var/log/asterisk/messages)"))
    finally:
        await client.close()
    return checks


# --- the box -----------------------------------------------------------------------------
def tool_checks(config: Config) -> list[Check]:
    voice = config.asterisk["enabled"]
    checks = []
    for tool, why in (("espeak-ng", "speaks the voice messages"), ("sox", "converts audio for Asterisk")):
        path = shutil.which(tool)
        if path:
            checks.append(Check(tool, OK, path))
        else:
            checks.append(Check(tool, FAIL if voice else WARN,
                                f"not installed ({why}){'' if voice else '; needed only for voice alerts'}",
                                "apt-get install espeak-ng sox libsox-fmt-mp3"))
    return checks


def disk_check(config: Config) -> Check:
    where = Path(config.general["data_dir"])
    while not where.exists() and where != where.parent:
        where = where.parent
    usage = shutil.disk_usage(where)
    free = f"{usage.free / 1024**3:.1f} GiB free on {where}"
    if usage.free < MIN_FREE_BYTES:
        return Check("disk", FAIL, free, "free space: old backups, logs (journalctl --vacuum-size=200M)")
    if usage.free < LOW_FREE_BYTES or usage.free < usage.total * 0.05:
        return Check("disk", WARN, free, "free some space before it runs out")
    return Check("disk", OK, free)


def clock_checks(now: dt.datetime | None = None) -> list[Check]:
    now = now or dt.datetime.now(dt.timezone.utc)
    checks = []
    if not 2024 <= now.year < 2100:
        checks.append(Check("clock", FAIL, f"the clock says {now:%Y-%m-%d %H:%M} UTC",
                            "set it ('timedatectl set-time') and enable NTP: retries, daily caps and "
                            "reports depend on it"))
    else:
        checks.append(Check("clock", OK, f"{now:%Y-%m-%d %H:%M} UTC"))
    checks.append(_ntp_check())
    return checks


def _ntp_check() -> Check:
    if shutil.which("timedatectl") is None:
        return Check("clock sync", WARN, "timedatectl not available: cannot tell whether NTP syncs the clock",
                     "install systemd-timesyncd (or chrony)")
    try:
        result = subprocess.run(["timedatectl", "show", "--property=NTPSynchronized", "--value"],
                                capture_output=True, text=True, timeout=5, env={**os.environ, "LC_ALL": "C"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("clock sync", WARN, f"timedatectl failed: {exc}", "install systemd-timesyncd (or chrony)")
    value = result.stdout.strip()
    if result.returncode != 0:
        return Check("clock sync", WARN, "cannot ask systemd-timedated (not a systemd boot?)",
                     "on the box: 'timedatectl' should say 'System clock synchronized: yes'")
    if value == "yes":
        return Check("clock sync", OK, "synchronised by NTP")
    return Check("clock sync", WARN, "not synchronised by NTP",
                 "apt-get install systemd-timesyncd; 'timedatectl set-ntp true' (with no internet: a local "
                 "NTP server or GPS)")
