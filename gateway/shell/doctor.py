"""`allerta doctor`: every check the box needs to send alerts, one line each, with the fix.

Checks: configuration, database and migrations, the engines sharing it (node names, heartbeats, the
database user's rights: doctor_nodes.py), whether the engine runs and reports, each modem (port opens,
answers AT, SIM ready, registered, signal, SMSC set), the AMI login and our
dialplan (through AMI), espeak-ng and sox, free disk, the clock.

Modems are probed with a few read-only AT commands (modem/probe.py), under
short timeouts, never through the engine's driver (whose open collects and
deletes the status reports stored in the modem). While an engine runs it owns
the ports: the doctor then reads what the engine last reported instead.
The serial and AMI code stays in modem/ and asterisk/.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import grp
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import asdict
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from asterisk.ami_client import AmiAuthError, AmiClient, AmiError, AmiSettings, AmiUnreachable
from asterisk.asterisk_config import CONFIG_DIR, dialplan_modules
from gateway.core.backup import BackupError, engine_running, lock_path, sqlite_path
from gateway.core.checks import FAIL, OK, WARN, Check
from gateway.core.config import Config, ConfigError, load_config
from gateway.core.db import database_exists, make_engine, make_sessionmaker, schema_is_current, utcnow
from gateway.core.line_health import stale_after
from gateway.core.models import Line
from gateway.core.phone import InvalidNumber, normalise_number
from gateway.shell.doctor_nodes import node_checks
from gateway.shell.file_access import unreadable_by
from modem.probe import probe_modem

MIN_FREE_BYTES = 200 * 1024 * 1024
LOW_FREE_BYTES = 1024 * 1024 * 1024


def run_checks(config_path: str) -> list[Check]:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        return [Check("configuration", FAIL, str(exc), "fix the key named above (docs/configuration.md lists every key)")]
    checks = [_config_check(config)]
    checks += ops_checks(config)
    checks += storage_checks(config)
    database = database_checks(config)
    checks += database
    if all(c.status != FAIL for c in database):
        checks += node_checks(config)
        checks += engine_checks(config)
    checks += modem_checks(config)
    checks += ami_checks(config)
    checks += caller_id_checks(config)
    checks += sounds_checks(config)
    checks += tool_checks(config)
    checks.append(disk_check(config))
    checks += clock_checks()
    return checks


def exit_code(checks: list[Check]) -> int:
    return 1 if any(c.status == FAIL for c in checks) else 0


def summary(checks: list[Check]) -> str:
    """The last line: "all checks passed" only when every check is ok, never over a warning
    (a locked SIM leaves the network, signal and SMSC unchecked: not "passed")."""
    failed = sum(1 for c in checks if c.status == FAIL)
    warned = [c.name for c in checks if c.status == WARN]
    if failed:
        return f"{failed} check(s) failed"
    if warned:
        return f"no check failed; {len(warned)} warning(s): {', '.join(warned)}"
    return "all checks passed"


def as_json(checks: list[Check]) -> dict:
    return {"ok": exit_code(checks) == 0, "checks": [asdict(c) for c in checks]}


def _config_check(config: Config) -> Check:
    voice = "voice on" if config.asterisk.enabled else "voice off"
    detail = f"{config.path}: {len(config.modems)} modem(s), {voice}"
    if not config.modems and not config.asterisk.enabled:
        return Check("configuration", FAIL, detail + ", no channel",
                     "add a [[modems]] table per GSM modem (or enable [asterisk] with [[trunks]])")
    return Check("configuration", OK, detail)


def ops_checks(config: Config) -> list[Check]:
    """Who hears about trouble: without these numbers the box fails silently."""
    ops = config.ops
    checks = []
    if ops.on_call:
        checks.append(Check("on-call numbers", OK, f"{len(ops.on_call)} number(s) get the alarms"))
    else:
        checks.append(Check("on-call numbers", WARN, "[ops] on_call is empty: alarms (modem lost, Asterisk "
                            "down, SIM near its cap) are shown on the dashboard only, sent to nobody",
                            'set [ops] on_call = ["+39..."] (the staff phones on call)'))
    if ops.selftest_numbers:
        when = f" on {ops.selftest_weekday}" if ops.selftest_weekday else ""
        when += f" at {ops.selftest_at} (Europe/Rome)" if ops.selftest_at else ""
        checks.append(Check("self-test", OK, f"every {ops.selftest_interval_hours:g} h{when} to "
                                             f"{len(ops.selftest_numbers)} number(s)"))
    else:
        checks.append(Check("self-test", WARN, "[ops] selftest_numbers is empty: no scheduled self-test, so a "
                            "dead SIM or line is found the night it is needed",
                            'set [ops] selftest_numbers = ["+39..."] (staff phones)'))
    return checks


def storage_checks(config: Config) -> list[Check]:
    """The engine writes into data_dir (audio, TLS key, locks) and SQLite into its file's
    directory (the -wal and -shm files): both must be writable by the user running this."""
    places = [("data directory", Path(config.general.data_dir), "[general] data_dir")]
    try:
        db = sqlite_path(config.database_url)
    except BackupError:   # in-memory: nothing on disk
        db = None
    if db is not None and db.parent.resolve() != places[0][1].resolve():
        places.append(("database directory", db.parent, "[database] url"))
    return [_writable_check(name, path, key) for name, path, key in places]


def _writable_check(name: str, path: Path, key: str) -> Check:
    fix = (f"'allerta init' creates it; it must belong to user allerta (chown -R allerta: {path}), or fix {key}")
    if not path.exists():
        return Check(name, FAIL, f"{path} does not exist", fix)
    if not path.is_dir():
        return Check(name, FAIL, f"{path} is not a directory", fix)
    try:
        # Really create a file: os.access() says yes to root even on a read-only mount.
        with tempfile.TemporaryFile(dir=path, prefix=".allerta-doctor-"):
            pass
    except OSError as exc:
        return Check(name, FAIL, f"{path} is not writable: {exc.strerror}", fix)
    return Check(name, OK, f"{path} is writable")


# --- database --------------------------------------------------------------------------
def database_checks(config: Config) -> list[Check]:
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
    if not config.modems:
        return []
    if engine_running(config):
        return _modems_from_engine(config)
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(config.modems))) as pool:
        results = list(pool.map(probe_modem, config.modems))
    return [check for checks in results for check in checks]


def _line_rows(config: Config, channel: str | None = None) -> list:
    engine = make_engine(config.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            query = select(Line) if channel is None else select(Line).where(Line.channel == channel)
            return list(session.scalars(query))
    finally:
        engine.dispose()


def _modems_from_engine(config: Config) -> list[Check]:
    """The engine owns the ports: judge its last health reading of each modem."""
    lines = {line.label: line for line in _line_rows(config, "sms")}
    stale = stale_after(config.engine.health_interval)
    now = utcnow()
    return [check for modem in config.modems
            for check in modem_checks_from_report(modem.label, modem.port, lines.get(modem.label), now, stale)]


def modem_checks_from_report(label: str, port: str, line, now: dt.datetime,  # noqa: ANN001 - a Line row
                             stale_seconds: float) -> list[Check]:
    """A modem's checks from the row the running engine wrote, with the direct probe's thresholds.

    A row older than the staleness rule the panel uses (gateway/core/line_health.py)
    is not believed at all.
    """
    name = f"modem {label}"
    if line is None:
        return [Check(name, WARN, "the engine runs but has not reported this modem yet",
                      "wait a minute and run doctor again; see 'journalctl -u allerta-engine'")]
    age = (now - line.updated_at).total_seconds() if line.updated_at else None
    if age is None or age > stale_seconds:
        when = "never" if age is None else f"{age:.0f} s ago"
        return [Check(name, FAIL, f"engine not reporting: last report {when} (older than {stale_seconds:.0f} s)",
                      "the engine may be hung or its modem worker stuck: 'journalctl -u allerta-engine', "
                      "then 'systemctl restart allerta-engine'")]
    source = "from the running engine"
    if line.state != "up":
        return [Check(name, FAIL, f"{line.state} ({source}): {line.last_error}",
                      "check the cable, the SIM and the antenna; 'allerta modems' shows the details")]
    checks = [Check(name, OK, f"up on {line.port or port} ({source}, {age:.0f} s ago)")]
    if line.sim_state == "READY":
        checks.append(Check(f"{name} SIM", OK, f"READY ({source})"))
    elif line.sim_state is None:
        checks.append(Check(f"{name} SIM", WARN, f"not reported yet ({source})", "run doctor again in a minute"))
    else:
        checks.append(Check(f"{name} SIM", FAIL, f"SIM state {line.sim_state} ({source})",
                            "SIM PUK or blocked: unlock it in a phone; no SIM: insert one"))
    if line.registration in ("home", "roaming"):
        checks.append(Check(f"{name} network", OK,
                            f"registered ({line.registration}, {line.operator or 'operator unknown'}; {source})"))
    elif line.registration is None:
        checks.append(Check(f"{name} network", WARN, f"not reported yet ({source})", "run doctor again in a minute"))
    else:
        checks.append(Check(f"{name} network", FAIL, f"not registered ({line.registration}; {source})",
                            "denied: the SIM is barred or expired (call the operator); searching: "
                            "check the antenna and coverage"))
    checks.append(_signal_from_report(name, line.signal, source))
    if line.smsc:
        checks.append(Check(f"{name} SMSC", OK, f"{line.smsc} ({source})"))
    elif line.smsc == "":
        checks.append(Check(f"{name} SMSC", FAIL, f"no SMS centre number on the SIM ({source})",
                            "ask the operator for it and store it with AT+CSCA=\"+39...\",145"))
    else:
        checks.append(Check(f"{name} SMSC", WARN, f"not reported yet ({source})", "run doctor again in a minute"))
    return checks


def _signal_from_report(name: str, signal: int | None, source: str) -> Check:
    # CSQ 99 is "not known or not detectable" (27.007): in a health read taken between
    # sends it is often momentary, so unknown (WARN), where the probe's own read fails it.
    if signal is None or signal == 99:
        return Check(f"{name} signal", WARN, f"CSQ {signal if signal is not None else '?'} (unknown; {source})",
                     "run doctor again; if it stays unknown, check the antenna")
    if signal < 5:
        return Check(f"{name} signal", FAIL, f"CSQ {signal} (none or unusable; {source})",
                     "connect or move the antenna (an external antenna near a window)")
    if signal < 10:
        return Check(f"{name} signal", WARN, f"CSQ {signal} (weak; {source})",
                     "an external antenna or another position would make sends more reliable")
    return Check(f"{name} signal", OK, f"CSQ {signal} ({source})")


# --- the engine ------------------------------------------------------------------------
def engine_checks(config: Config, now: dt.datetime | None = None) -> list[Check]:
    """Is the engine running (it holds <data_dir>/engine.lock, as restore checks), and reporting?

    The engine cannot raise an alarm about itself being stopped or hung; the doctor
    (and the panel) can say so. Not running is a warning, not a failure: the doctor
    is also run before the services are first started.
    """
    path = lock_path(config)
    if not engine_running(config):
        return [Check("engine", WARN, f"not running (nobody holds {path}): no alert is sent",
                      "systemctl enable --now allerta-engine; if it stops, 'journalctl -u allerta-engine'")]
    try:
        rows = _line_rows(config)
    except Exception as exc:  # noqa: BLE001 - the database checks above say what is wrong with it
        return [Check("engine", WARN, f"running (holds {path}); its reports cannot be read: {exc}",
                      "see the database check")]
    now = now or utcnow()
    stale = stale_after(config.engine.health_interval)
    ages = [(now - row.updated_at).total_seconds() for row in rows if row.updated_at]
    # Every line's row is rewritten at least once a minute (the dispatcher's heartbeat).
    if ages and min(ages) <= stale:
        return [Check("engine", OK, f"running (holds {path}), last report {min(ages):.0f} s ago")]
    when = f"{min(ages):.0f} s ago" if ages else "none yet"
    return [Check("engine", FAIL if ages else WARN, f"running (holds {path}) but not reporting: last report {when}",
                  "a hung engine is restarted by its watchdog; if not: 'journalctl -u allerta-engine', "
                  "'systemctl restart allerta-engine'")]


def ami_checks(config: Config) -> list[Check]:
    if not config.asterisk.enabled:
        return [Check("asterisk", OK, "voice channel disabled ([asterisk] enabled = false): not checked")]
    try:
        return asyncio.run(asyncio.wait_for(_ami_checks(config), 30))
    except asyncio.TimeoutError:
        return [Check("asterisk AMI", FAIL, "no complete answer within 30 s",
                      "is Asterisk overloaded or hung? 'systemctl status asterisk'")]


async def _ami_checks(config: Config) -> list[Check]:
    a = config.asterisk
    settings = AmiSettings(username=a.username, secret=a.secret, host=a.host, port=a.port,
                           connect_timeout=5.0, login_timeout=10.0, action_timeout=5.0, ping_interval=60.0)
    client = AmiClient(settings)
    try:
        await client.connect()
    except AmiAuthError:
        return [Check("asterisk AMI", FAIL, f"login as {a.username!r} refused at {settings.address}",
                      "[asterisk] secret must match manager_allerta.conf: 'allerta asterisk config --out "
                      f"{CONFIG_DIR}', then 'asterisk -rx \"manager reload\"'")]
    except AmiUnreachable as exc:
        return [Check("asterisk AMI", FAIL, str(exc),
                      "is Asterisk running ('systemctl status asterisk')? manager.conf needs enabled = yes "
                      f"and port = {a.port}, with #include manager_allerta.conf")]
    checks = [Check("asterisk AMI", OK, f"logged in as {a.username!r} at {settings.address}")]
    try:
        modules = await _module_check(client)
        checks.append(modules)
        if "func_dialplan" in modules.detail and modules.status == FAIL:
            # Without func_dialplan, DIALPLAN_EXISTS is empty and a loaded context looks missing.
            checks.append(Check("asterisk dialplan", FAIL, f"context {a.context} cannot be checked: "
                                "func_dialplan is not loaded", modules.fix))
        else:
            checks.append(await _dialplan_check(client, a.context))
    except (AmiError, asyncio.TimeoutError) as exc:
        checks.append(Check("asterisk modules", FAIL, f"no answer from Asterisk: {exc or 'timed out'}",
                            "check Asterisk's log (/var/log/asterisk/messages)"))
    finally:
        await client.close()
    return checks


async def _module_check(client: AmiClient) -> Check:
    """ModuleCheck (write class 'system') for every module our dialplan needs."""
    modules = dialplan_modules()
    missing = []
    for module in modules:
        response = await client._action({"Action": "ModuleCheck", "Module": module})
        if response.success:
            continue
        message = str(response.get("Message") or "")
        if "not loaded" not in message.lower():
            return Check("asterisk modules", FAIL, f"ModuleCheck refused: {message}",
                         "give the AMI user write = originate,call,system (manager_allerta.conf)")
        missing.append(module)
    if missing:
        loads = " ".join(f"'module load {m}.so'" for m in missing)
        return Check("asterisk modules", FAIL,
                     f"not loaded: {', '.join(missing)} (calls would be answered and hang up with nothing played)",
                     f"in /etc/asterisk/modules.conf add 'load => <module>.so' for each (or remove its noload), "
                     f"then asterisk -rx {loads} (install the package that has it if Asterisk cannot find it)")
    return Check("asterisk modules", OK, f"the {len(modules)} modules the dialplan needs are loaded")


async def _dialplan_check(client: AmiClient, context: str) -> Check:
    # Getvar (write class 'call', which our AMI user has) evaluates a dialplan
    # function without a channel: DIALPLAN_EXISTS tells whether the context is loaded.
    variable = f"DIALPLAN_EXISTS({context},s,1)"
    response = await client._action({"Action": "Getvar", "Variable": variable})
    if str(response.get("Value", "")).strip() == "1":
        return Check("asterisk dialplan", OK, f"context {context} is loaded")
    if not response.success:
        return Check("asterisk dialplan", FAIL, f"Getvar refused: {response.get('Message')}",
                     "give the AMI user write = originate,call,system (manager_allerta.conf)")
    return Check("asterisk dialplan", FAIL, f"context {context} is not loaded",
                 f"'allerta asterisk config --out {CONFIG_DIR}', add #include "
                 f"{Path(CONFIG_DIR).name}/extensions_allerta.conf to extensions.conf, "
                 "'asterisk -rx \"dialplan reload\"'")


def _same_number(one: str, other: str, region: str) -> bool:
    try:
        return normalise_number(one, region).e164 == normalise_number(other, region).e164
    except InvalidNumber:
        return one.strip() == other.strip()


def caller_id_checks(config: Config) -> list[Check]:
    """Citizens trust and call back a number they know: every trunk should show the hotline's."""
    if not config.asterisk.enabled:
        return []
    hotline = config.general.hotline_number
    wanted = hotline or "<the town's number>"
    checks = []
    for trunk in config.trunks:
        name = f"caller ID {trunk.name}"
        if not trunk.caller_id.strip():
            checks.append(Check(name, WARN, "empty: people see an unknown or hidden number, distrust the call "
                                "and cannot call back", f'set caller_id = "{wanted}" '
                                f"in the [[trunks]] table {trunk.name} (and allow it at the provider)"))
        elif hotline and not _same_number(trunk.caller_id, hotline, config.general.region):
            checks.append(Check(name, WARN, f"{trunk.caller_id} is not the hotline number {hotline}: people who "
                                "call back do not reach the hotline",
                                f'set caller_id = "{hotline}" in the [[trunks]] table {trunk.name}'))
        else:
            checks.append(Check(name, OK, trunk.caller_id + (" (the hotline number)" if hotline else "")))
    return checks


def sounds_checks(config: Config) -> list[Check]:
    """Asterisk plays our messages from sounds_dir as its own user: it must reach and read them."""
    if not config.asterisk.enabled:
        return []
    path, user = Path(config.sounds_dir), config.asterisk.system_user
    fix = (f"mkdir -p {path}; chown allerta:allerta {path}; chmod 0750 {path}; usermod -aG allerta {user}; "
           "then restart Asterisk (a new group counts from its next start)")
    if not path.is_dir():
        return [Check("asterisk sounds", FAIL, f"{path} ([asterisk] sounds_dir) does not exist", fix)]
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        return [Check("asterisk sounds", FAIL, f"no user {user!r} on this host ([asterisk] system_user): "
                      "Asterisk runs on this host as some user; name it", "set [asterisk] system_user")]
    gids = {account.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    try:
        blocked = unreadable_by(path, account.pw_uid, gids)
    except OSError as exc:
        return [Check("asterisk sounds", FAIL, f"{path}: {exc.strerror}", fix)]
    if blocked:
        return [Check("asterisk sounds", FAIL, f"user {user} cannot read the messages: {blocked}", fix)]
    return [Check("asterisk sounds", OK, f"{path} is readable by user {user}")]


# --- the box -----------------------------------------------------------------------------
def tool_checks(config: Config) -> list[Check]:
    voice = config.asterisk.enabled
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
    where = Path(config.general.data_dir)
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
