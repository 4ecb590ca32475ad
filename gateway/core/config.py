"""Configuration: one TOML file, validated at start against a documented schema.

Every key lives in ``SCHEMA`` with its type, default and documentation; the
starter file written by ``allerta init``, the key table of docs/configuration.md and the typed,
frozen section classes (``config.retry.max_attempts``) all come from it, so a
key cannot exist without being documented and its default is written once.
Everything is validated at load, keys one by one and the rules between them
(a trunk's dial string included): anything unknown, ill-typed or inconsistent
stops the start, and fails ``allerta doctor``, with a message naming the key.
"""
from __future__ import annotations

import ipaddress
import os
import re
import secrets
import tomllib
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any, Callable

from gateway.core import database_url
from gateway.core.dialstring import NUMBER_FORMATS, dial_template_problem
from gateway.core.quiet_hours import DEFAULT as QUIET_HOURS_DEFAULT, window_problem

DEFAULT_CONFIG_PATH = "/etc/allerta/allerta.toml"


class ConfigError(Exception):
    """Configuration that cannot be used; the message names the key."""


@dataclass(frozen=True)
class Key:
    type: type | tuple[type, ...]
    default: Any
    doc: str
    check: Callable[[Any], str | None] | None = None  # returns an error text, or None if fine
    secret: bool = False  # never echoed back in an error message


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be 0 or more"


def _ratio(value: Any) -> str | None:
    return None if 0 <= value <= 1 else "must be between 0 and 1"


def _region(value: str) -> str | None:
    return None if len(value) == 2 and value.isalpha() and value.isupper() else "must be a two-letter region code such as IT"


def _pin(value: str) -> str | None:
    return None if value == "" or (value.isdigit() and 4 <= len(value) <= 8) else "must be empty or 4 to 8 digits"


def _baud(value: int) -> str | None:
    allowed = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)
    return None if value in allowed else f"must be one of {', '.join(map(str, allowed))}"


def _segments(value: int) -> str | None:
    return None if 1 <= value <= 10 else "must be between 1 and 10"


def _loopback(value: str) -> str | None:
    return None if value in ("127.0.0.1", "::1", "localhost") else "must be a loopback address (AMI is not encrypted)"


def _port(value: int) -> str | None:
    return None if 0 < value < 65536 else "must be a TCP port number"


def _port_or_zero(value: int) -> str | None:
    return None if 0 <= value < 65536 else "must be a TCP port number, or 0"


def _at_least_one(value: float) -> str | None:
    return None if value >= 1 else "must be 1 or more"


def _node_name(value: str) -> str | None:
    # Shown in the panel and logs, and a subject of the node_down alarm: the characters of a host name.
    ok = value == "" or re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", value) is not None
    return None if ok else "must be empty (the host name) or 1 to 64 letters, digits, '_', '.' or '-'"


def _lease(value: float) -> str | None:
    # The heartbeat goes every third of the lease: below 2 s a busy database would make live
    # engines look dead; above 10 minutes a dead engine's calls wait too long to be made again.
    return None if 2 <= value <= 600 else "must be between 2 and 600 seconds"


def _allowed(value: str) -> str | None:
    return None if value in ("all", "landline", "prefixes") else "must be all, landline or prefixes"


def _number_format(value: str) -> str | None:
    return None if value in NUMBER_FORMATS else f"must be one of {', '.join(NUMBER_FORMATS)}"


def _name(value: str) -> str | None:
    # Trunk names, the AMI user and the dialplan context go into AMI headers and Asterisk's files.
    ok = re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", value) is not None
    return None if ok else "must be 1 to 64 letters, digits, '_', '.' or '-'"


def _caller_id(value: str) -> str | None:
    # A comma or a line break would end the Originate's CallerID header early.
    return None if not re.search(r"[\r\n,]", value) else "must not contain commas or line breaks"


def _hotline_number(value: str) -> str | None:
    # Read by people on their phone and dialled back: digits, spaces, and a leading +.
    return None if re.fullmatch(r"(\+?[0-9][0-9 ]{3,19})?", value) else "must be a phone number: digits and spaces, optionally a leading +"


def _prefix_list(value: list) -> str | None:
    ok = all(isinstance(p, str) and re.fullmatch(r"\+[1-9]\d{0,14}", p) for p in value)
    return None if ok else "must be a list of E.164 prefixes written as strings, '+' and digits, e.g. [\"+39\"]"


def _number_list(value: list) -> str | None:
    ok = all(isinstance(n, str) and n.strip().lstrip("+").replace(" ", "").isdigit() for n in value)
    return None if ok else "must be a list of phone numbers written as strings, e.g. [\"+393331234567\"]"


def _host_names(value: list) -> str | None:
    def valid(name: object) -> bool:
        if not isinstance(name, str) or not name:
            return False
        try:
            ipaddress.ip_address(name)
            return True
        except ValueError:
            return all(re.fullmatch(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)", part) for part in name.rstrip(".").split("."))
    ok = all(valid(name) for name in value)
    return None if ok else "must be a list of host names or IP addresses, e.g. [\"allerta.comune.local\", \"192.168.1.20\"]"


def _time_of_day(value: str) -> str | None:
    ok = value == "" or re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", value) is not None
    return None if ok else 'must be empty or a time written HH:MM, e.g. "10:00"'


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")   # index = datetime.weekday()


def _weekday(value: str) -> str | None:
    return None if value == "" or value in WEEKDAYS else f"must be empty or one of {', '.join(WEEKDAYS)}"


def _receive(value: str) -> str | None:
    return None if value in ("store", "route") else "must be store or route"


def _imei(value: str) -> str | None:
    return None if value == "" or (value.isdigit() and len(value) == 15) else "must be empty or 15 digits"


def _cidr_list(value: list) -> str | None:
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except (TypeError, ValueError):
            return f"must be a list of addresses or networks (CIDR) written as strings, e.g. [\"192.168.1.0/24\"]; {item!r} is not one"
    return None


def _url_list(value: list) -> str | None:
    ok = all(isinstance(url, str) and re.fullmatch(r"https?://\S+", url) for url in value)
    return None if ok else "must be a list of http:// or https:// URLs written as strings"


CAP_SEVERITIES = ("Minor", "Moderate", "Severe", "Extreme")


def _auto_send_rules(value: list) -> str | None:
    for rule in value:
        parts = rule.split() if isinstance(rule, str) else []
        if len(parts) != 2 or parts[1] not in CAP_SEVERITIES:
            return ("must be a list of \"SENDER MINIMUM_SEVERITY\" strings, the severity one of "
                    f"{', '.join(CAP_SEVERITIES)}, e.g. [\"cfr@regione.example.it Extreme\"]; {rule!r} is not one")
    return None


def _cap_sender(value: str) -> str | None:
    # CAP 1.2, 3.2.1: a sender "MUST NOT include spaces, commas or restricted characters (< and &)".
    return None if not re.search(r"[\s,<&]", value) else "must not contain spaces, commas, '<' or '&'"


NUMBER = (int, float)

SCHEMA: dict[str, dict[str, Key]] = {
    "general": {
        "comune": Key(str, "Comune di Esempio", "Name of the municipality, used in the voice introduction and the panel."),
        "region": Key(str, "IT", "Default region for numbers written without an international prefix.", _region),
        "hotline_number": Key(str, "", "The town's number citizens call back (the hotline). Empty: none. "
                              "allerta doctor checks every trunk's caller_id is this number.", _hotline_number),
        "hotline_in_sms": Key(bool, True, "End each SMS alert with the hotline number when it fits in the same "
                              "segments (only when hotline_number is set)."),
        "data_dir": Key(str, "/var/lib/allerta", "Directory for the database, rendered audio and logs."),
        "max_sms_segments": Key(int, 4, "An SMS alert needing more segments than this is refused before it is created.", _segments),
        "audit_key_file": Key(str, "", "File holding the key of the audit log's chain (HMAC), readable by the allerta user only; keep it out of the database's backups' reach. Empty: <data_dir>/audit.key, created on first use."),
        "drill_prefix": Key(str, "[ESERCITAZIONE] ", "Text put in front of every drill message, so no citizen mistakes a drill for an emergency."),
    },
    "database": {
        "url": Key(str, "", "SQLAlchemy URL. Empty: sqlite:///<data_dir>/allerta.db. A postgresql+psycopg:// URL also works (pip install 'allerta[postgresql]'); several servers (a primary and its standby) as postgresql+psycopg://allerta@db1:5432,db2:5432/allerta?target_session_attrs=read-write, so the engine follows a promoted standby (docs/two-sites.md).", database_url.check),
        "busy_timeout": Key(NUMBER, 30.0, "SQLite: seconds a statement waits for a write lock held by someone else before it fails; the engine then retries it until it lands, off its event loop.", _positive),
    },
    "engine": {
        "poll_interval": Key(NUMBER, 0.5, "Seconds between looks for new work when the engine is idle.", _positive),
        "health_interval": Key(NUMBER, 30.0, "Seconds between health reads (signal, registration, operator) of each modem.", _positive),
        "report_timeout": Key(NUMBER, 600.0, "With --once: seconds to wait for outstanding status reports before exiting.", _non_negative),
        "claim_ahead_seconds": Key(NUMBER, 30.0, "SMS claimed ahead of the free modems, in seconds of their current rate: "
                                   "sending goes on that long while the database is held. With several engines it is also "
                                   "how much of an alert one engine takes before the others get theirs.", _positive),
        "node": Key(str, "", "This engine's name among the engines sharing one PostgreSQL database (docs/nodes.md): "
                    "unique, shown next to each of its lines. Empty: the machine's host name.", _node_name),
        "lease_seconds": Key(NUMBER, 30.0, "PostgreSQL with several engines: seconds without a heartbeat (on the "
                             "database's clock) after which another engine takes this one's work in flight back, "
                             "flagged as possible duplicates, and raises node_down.", _lease),
    },
    "retry": {
        "max_attempts": Key(int, 5, "Attempts per recipient number before a delivery fails.", _positive),
        "initial_delay": Key(NUMBER, 30.0, "Seconds before the first retry of a transient failure.", _non_negative),
        "max_delay": Key(NUMBER, 900.0, "Upper bound of the growing retry delay, in seconds.", _non_negative),
        "backoff": Key(NUMBER, 2.0, "Factor by which the retry delay grows after each failure.", _positive),
        "send_timeout": Key(NUMBER, 60.0, "Seconds to wait for a modem to answer AT+CMGS before the attempt counts as a transient failure.", _positive),
        "modem_error_threshold": Key(int, 3, "Consecutive errors after which a modem is taken out of rotation.", _positive),
        "modem_probe_interval": Key(NUMBER, 60.0, "Seconds before a modem out of rotation (or unplugged) is probed again.", _positive),
    },
    "asterisk": {
        "enabled": Key(bool, False, "Use the voice channel (needs at least one [[trunks]])."),
        "host": Key(str, "127.0.0.1", "AMI host. Keep it on loopback: AMI is not encrypted.", _loopback),
        "port": Key(int, 5038, "AMI port.", _port),
        "username": Key(str, "allerta", "AMI user (manager_allerta.conf).", _name),
        "secret": Key(str, "", "AMI secret. Never logged.", secret=True),
        "context": Key(str, "allerta-outbound", "Dialplan context of extensions_allerta.conf.", _name),
        "sounds_dir": Key(str, "", "Where Asterisk reads our audio. Empty: <data_dir>/sounds."),
        "amd": Key(bool, True, "Detect answering machines and leave the message on them."),
        "system_user": Key(str, "asterisk", "The account Asterisk runs as: allerta doctor checks it can read sounds_dir.", _name),
        "ring_timeout": Key(NUMBER, 30.0, "Seconds a call may ring before it counts as no answer.", _at_least_one),
        "end_grace": Key(NUMBER, 2.0, "Seconds to wait for the rest of a call's end events, which Asterisk "
                         "sends in any order, before deciding its outcome.", _positive),
        "hotline": Key(bool, False, "Answer the town's number: the engine serves the hotline context over FastAGI."),
        "hotline_context": Key(str, "allerta-hotline", "Dialplan context of the hotline (extensions_allerta.conf).", _name),
        "agi_port": Key(int, 4573, "FastAGI port on 127.0.0.1 the hotline context connects to.", _port),
    },
    "voice": {
        "max_attempts": Key(int, 5, "Default attempts per number that count against the recipient.", _positive),
        "interval": Key(NUMBER, 300.0, "Default seconds before calling again; grows with each attempt.", _non_negative),
        "growth": Key(NUMBER, 1.5, "Factor by which the interval grows after each attempt (>= 1).", _at_least_one),
        "per_number_cap": Key(int, 8, "Hard cap of calls per number per alert, whatever happens.", _positive),
        "deadline_minutes": Key(NUMBER, 180.0, "Default minutes after which nothing more is tried for an alert.", _positive),
        "stop_on_confirm": Key(bool, True, "Keep calling until someone presses 1 (false: any answer ends it)."),
        "sms_fallback": Key(bool, False, "Default: a mobile still unconfirmed when voice gives up gets the SMS."),
        "language": Key(str, "it", "Language of synthesised speech when a recipient has none we can speak."),
    },
    "web": {
        "listen": Key(str, "127.0.0.1", "Address the panel listens on; 0.0.0.0 serves the whole local network."),
        "port": Key(int, 8080, "HTTP port of the panel.", _port),
        "https_port": Key(int, 8443, "HTTPS port of the panel (browsers allow the microphone only over HTTPS); 0 turns HTTPS off.", _port_or_zero),
        "tls_cert": Key(str, "", "PEM certificate for HTTPS. Empty: a self-signed one is generated in <data_dir>/tls."),
        "tls_key": Key(str, "", "PEM private key of tls_cert."),
        "tls_names": Key(list, [], "Extra host names and IP addresses the generated certificate is valid for (the machine's name and, listening on 0.0.0.0, its IPv4 addresses are always in it).", _host_names),
        "session_minutes": Key(int, 30, "Minutes of inactivity after which a panel session expires.", _positive),
        "lockout_attempts": Key(int, 5, "Failed sign-ins of one name from one address after which that name is refused from there.", _positive),
        "lockout_minutes": Key(int, 15, "Minutes a name stays refused from an address after too many failed sign-ins there.", _positive),
        "two_person_rule": Key(bool, True, "An operator's alert waits for an approver; an approver sending alone must give a reason."),
        "secret_key_file": Key(str, "", "File holding the key that signs session cookies. Empty: <data_dir>/web-secret.key, created on first start."),
        "max_upload_mb": Key(int, 20, "Largest upload (recording, contact list) in megabytes.", _positive),
    },
    "ops": {
        "on_call": Key(list, [], "Numbers of the staff on call: alarms about the box (modem lost, SIM near its cap, Asterisk down) go to them by SMS.", _number_list),
        "modem_lost_minutes": Key(NUMBER, 5.0, "Minutes a modem may stay down or out of rotation before an alarm is raised.", _positive),
        "ami_down_minutes": Key(NUMBER, 5.0, "Minutes the Asterisk AMI link may stay down before an alarm is raised.", _positive),
        "trunk_failures": Key(int, 5, "Trunk-side call failures in a row (Q.850 34, 38, 41, 42) on a trunk after which an alarm is raised; a call that gets through clears it.", _positive),
        "sim_cap_warning": Key(NUMBER, 0.9, "Share of a SIM's daily_cap used today after which an alarm warns that it is nearly exhausted.", _ratio),
        "selftest_numbers": Key(list, [], "Staff numbers the scheduled self-test sends a test SMS (mobiles) and a test call (every number, with [asterisk] enabled) to. Empty: no self-test.", _number_list),
        "selftest_interval_hours": Key(NUMBER, 168.0, "Hours between scheduled self-tests (168: weekly); a failed self-test raises an alarm.", _positive),
        "selftest_at": Key(str, "10:00", "Time of day (HH:MM, Italian time, Europe/Rome) at which scheduled self-tests start, so staff are never called at night; at most one a day. A run that could not start within 2 hours of it (engine stopped, a real alert going out) waits for the next one. Empty: whenever selftest_interval_hours has passed since the last scheduled run.", _time_of_day),
        "selftest_weekday": Key(str, "", "Day of the week (mon, tue, wed, thu, fri, sat, sun) of the scheduled self-tests, at selftest_at (which must be set); runs are then at least a week apart. Empty: any day, every selftest_interval_hours.", _weekday),
        "quiet_hours": Key(str, QUIET_HOURS_DEFAULT, "Quiet hours, HH:MM-HH:MM in Italian time (Europe/Rome, summer time followed): no information message (category information) goes out by SMS or call then; its deliveries wait for the end of the window and go in the morning. Emergencies ignore them. Empty: no quiet hours.", window_problem),
        "selftest_timeout_minutes": Key(NUMBER, 15.0, "Minutes a self-test waits for the SMS status reports and the calls' confirmation before it counts as failed.", _positive),
    },
    "cap": {
        "max_document_kb": Key(int, 1024, "Largest CAP document accepted (file, API, watched directory, feed), in kilobytes; a larger one is refused before it is parsed.", _positive),
        "inbox_dir": Key(str, "", "Watched directory (a USB stick, a LAN share): the engine imports every *.xml put there as a CAP warning and moves it to done/ or failed/ (with a .error file saying why). Empty: none."),
        "inbox_interval": Key(NUMBER, 10.0, "Seconds between looks at inbox_dir.", _positive),
        "feeds": Key(list, [], "CAP Atom or RSS feeds to poll (the regional functional centre, the Prefecture); a feed that cannot be reached is logged once and tried again, it is not an error.", _url_list),
        "feed_interval": Key(NUMBER, 300.0, "Seconds between polls of the feeds.", _positive),
        "auto_send": Key(list, [], "Warnings sent without waiting for approval: \"SENDER MINIMUM_SEVERITY\" rules, e.g. [\"cfr@regione.example.it Extreme\"]; audited as sent by the rule. Empty (the default): every CAP warning is a draft awaiting approval.", _auto_send_rules),
        "publish": Key(bool, False, "Publish every alert that went out, its corrections and all-clears as CAP 1.2 (/cap/alerts/<id>.xml) and an Atom feed (/cap/feed.atom)."),
        "publish_allow": Key(list, [], "Addresses or networks (CIDR) that may read the published CAP without signing in, e.g. [\"192.168.1.0/24\"]; others get 403. Empty: nobody.", _cidr_list),
        "sender": Key(str, "", "CAP <sender> of what we publish, e.g. protezionecivile@comune.example.it. Empty: allerta. followed by the comune's name.", _cap_sender),
    },
    "inbound": {
        "part_timeout": Key(NUMBER, 600.0, "Seconds a long incoming SMS waits for its missing parts (counted from its first part); then it is kept with what arrived, marked incomplete.", _positive),
        "reply_window_hours": Key(NUMBER, 48.0, "Hours after an alert went to a number during which an SMS from that number is taken as a reply to it (confirmations OK/RICEVUTO/1, poll answers without a closing time).", _positive),
        "help_window_hours": Key(NUMBER, 12.0, "Hours after an alert during which a plea (AIUTO, SOS, \"siamo bloccati\") from a number it went to is linked to that alert. A plea outside it is still recorded as a help request, without an alert.", _positive),
        "zone_menu_minutes": Key(NUMBER, 30.0, "Minutes a citizen has to answer the numbered list of zones with a number.", _positive),
        "max_replies_per_day": Key(int, 5, "Most automatic SMS answers to one number in 24 hours (the answer to a help request is always sent).", _positive),
        "loop_minutes": Key(NUMBER, 5.0, "A number that got an automatic answer this recently and writes something we do not understand (likely an autoresponder) is not answered; after loop_replies answers within it, it is not answered at all until the window passes.", _positive),
        "loop_replies": Key(int, 3, "Automatic answers within loop_minutes after which a number is not answered until the window passes (loops between autoresponders); the answer to the numbered zone list, a question we asked, is exempt.", _positive),
        "flood_per_hour": Key(int, 20, "Messages from one number within an hour beyond which the next ones are stored and marked ignored (flood), not acted on.", _positive),
        "short_code_digits": Key(int, 6, "Senders with at most this many digits are short codes (operators' services): never answered.", _positive),
        "own_numbers": Key(list, [], "The numbers of our own modems' SIMs: a message from them is never answered (no loop between our lines).", _number_list),
    },
}

TRUNK_SCHEMA: dict[str, Key] = {
    "name": Key(str, None, "Trunk name shown to operators (unique).", _name),
    "dial": Key(str, None, "Dial string template with {number}: PJSIP/{number}@trunk, DAHDI/g0/{number}, Dongle/g1/{number}, Local/{number}@context.", dial_template_problem),
    "max_channels": Key(int, 1, "Most simultaneous calls (GSM dongle 1, BRI 2, E1 30).", _positive),
    "calls_per_second": Key(NUMBER, 2.0, "Most new calls per second, so the exchange is not flooded. Keeping a trunk full needs max_channels / call seconds: an E1 (30) with 25 s calls needs 1.2.", _positive),
    "caller_id": Key(str, "", "Caller ID: the comune's known number, so people trust and can call back.", _caller_id),
    "inbound_reserved": Key(int, 0, "Channels kept for hotline calls: outbound alerts use at most max_channels minus these.", _non_negative),
    "allowed": Key(str, "all", "Numbers this trunk may dial: all, landline, or prefixes.", _allowed),
    "prefixes": Key(list, [], "E.164 prefixes for allowed = 'prefixes', e.g. ['+39'].", _prefix_list),
    "number_format": Key(str, "keep_plus", "How the number is dialled: keep_plus, international, international_00, national.", _number_format),
}

MODEM_SCHEMA: dict[str, Key] = {
    "label": Key(str, None, "Name shown to operators (unique), e.g. 'tim-1'."),
    "port": Key(str, None, "Serial device, ideally a stable udev name such as /dev/allerta/modem-1."),
    "baud": Key(int, 115200, "Serial speed.", _baud),
    "pin": Key(str, "", "SIM PIN, empty if the SIM has none. Never logged.", _pin, secret=True),
    "per_minute": Key(NUMBER, 20.0, "Most SMS segments this modem may send per minute (operator fair-use limits).", _positive),
    "daily_cap": Key(int, 2000, "Most SMS segments this modem may send per calendar day (SIM plan limit).", _positive),
    "imei": Key(str, "", "Expected IMEI; when set, a different modem found on the port is refused.", _imei),
    "receive": Key(str, "store", "How incoming SMS reach the engine: store (kept in the modem's memory, announced with +CMTI, deleted once it is safe) or route (+CMT straight to the engine with AT+CSMS=1, acknowledged with AT+CNMA once it is safe; the SIM's memory is not used, and a modem that refuses AT+CSMS=1 stores instead).", _receive),
}


def _field_type(key: Key) -> Any:
    """The type a section object holds: numbers as float, lists as tuples (frozen all the way down)."""
    if key.type is NUMBER:
        return float
    if key.type is list:
        return tuple[str, ...]
    return key.type


def _typed(key: Key, value: Any) -> Any:
    if key.type is NUMBER:
        return float(value)
    if key.type is list:
        return tuple(value)
    return value


def _section_class(name: str, schema: dict[str, Key], table: str) -> type:
    """A frozen dataclass with one field per key of ``schema``, its default taken from there."""
    required = [(key, _field_type(spec), field(repr=not spec.secret))
                for key, spec in schema.items() if spec.default is None]
    optional = [(key, _field_type(spec), field(default=_typed(spec, spec.default), repr=not spec.secret))
                for key, spec in schema.items() if spec.default is not None]
    cls = make_dataclass(name, required + optional, frozen=True)
    cls.__module__ = __name__
    cls.__doc__ = f"The keys of {table}, validated (see SCHEMA for each key's meaning)."
    return cls


GeneralConfig = _section_class("GeneralConfig", SCHEMA["general"], "[general]")
DatabaseConfig = _section_class("DatabaseConfig", SCHEMA["database"], "[database]")
EngineConfig = _section_class("EngineConfig", SCHEMA["engine"], "[engine]")
RetryConfig = _section_class("RetryConfig", SCHEMA["retry"], "[retry]")
AsteriskConfig = _section_class("AsteriskConfig", SCHEMA["asterisk"], "[asterisk]")
VoiceConfig = _section_class("VoiceConfig", SCHEMA["voice"], "[voice]")
WebConfig = _section_class("WebConfig", SCHEMA["web"], "[web]")
OpsConfig = _section_class("OpsConfig", SCHEMA["ops"], "[ops]")
CapConfig = _section_class("CapConfig", SCHEMA["cap"], "[cap]")
InboundConfig = _section_class("InboundConfig", SCHEMA["inbound"], "[inbound]")
ModemConfig = _section_class("ModemConfig", MODEM_SCHEMA, "one [[modems]] table")
VoiceTrunkConfig = _section_class("VoiceTrunkConfig", TRUNK_SCHEMA, "one [[trunks]] table")
SECTION_CLASSES: dict[str, type] = {
    "general": GeneralConfig, "database": DatabaseConfig, "engine": EngineConfig, "retry": RetryConfig,
    "asterisk": AsteriskConfig, "voice": VoiceConfig, "web": WebConfig, "ops": OpsConfig,
    "cap": CapConfig,
    "inbound": InboundConfig,
}


def default_node_name() -> str:
    """The machine's host name, its first label (what ``hostname`` prints): a node's name by default."""
    return os.uname().nodename.split(".")[0][:64] or "allerta"


@dataclass(frozen=True)
class Config:
    general: GeneralConfig = field(default_factory=GeneralConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    asterisk: AsteriskConfig = field(default_factory=AsteriskConfig)
    voice: VoiceConfig = field(default_factory=VoiceConfig)
    web: WebConfig = field(default_factory=WebConfig)
    ops: OpsConfig = field(default_factory=OpsConfig)
    cap: CapConfig = field(default_factory=CapConfig)
    inbound: InboundConfig = field(default_factory=InboundConfig)
    modems: tuple[ModemConfig, ...] = ()
    trunks: tuple[VoiceTrunkConfig, ...] = ()
    path: str | None = None

    @property
    def sounds_dir(self) -> str:
        return self.asterisk.sounds_dir or os.path.join(self.general.data_dir, "sounds")

    @property
    def node_name(self) -> str:
        """``[engine] node``, else the machine's host name."""
        return self.engine.node or default_node_name()

    @property
    def database_url(self) -> str:
        url = self.database.url
        if url:
            return url
        return "sqlite:///" + os.path.join(self.general.data_dir, "allerta.db")


def _check_value(where: str, key: Key, value: Any) -> Any:
    # bool is an int in Python; a 'true' where a number is expected is a mistake.
    shown = "(hidden)" if key.secret else repr(value)
    if key.check is database_url.check and isinstance(value, str):
        shown = repr(database_url.without_password(value))   # a postgresql:// URL may carry the password
    if isinstance(value, bool) and key.type is not bool:
        raise ConfigError(f"{where}: expected {_type_name(key.type)}, got a boolean")
    if not isinstance(value, key.type):
        raise ConfigError(f"{where}: expected {_type_name(key.type)}, got {type(value).__name__} {shown}")
    if key.check is not None:
        problem = key.check(value)
        if problem:
            raise ConfigError(f"{where}: {problem} (got {shown})")
    return value


def _type_name(t: type | tuple[type, ...]) -> str:
    if isinstance(t, tuple):
        return "a number"
    return {str: "a string", int: "an integer", bool: "true or false", float: "a number"}.get(t, t.__name__)


def _section(name: str, raw: Any, schema: dict[str, Key]) -> dict[str, Any]:
    """The checked values of one table, defaults filled in, as the section class takes them."""
    if not isinstance(raw, dict):
        raise ConfigError(f"[{name}]: expected a table")
    out = {}
    for key, value in raw.items():
        if key not in schema:
            known = ", ".join(sorted(schema))
            raise ConfigError(f"[{name}] {key}: unknown key (known keys: {known})")
    for key, spec in schema.items():
        if key in raw:
            out[key] = _typed(spec, _check_value(f"[{name}] {key}", spec, raw[key]))
        elif spec.default is None:
            raise ConfigError(f"[{name}] {key}: required")
        else:
            out[key] = _typed(spec, spec.default)
    return out


def parse_config(raw: dict[str, Any], path: str | None = None) -> Config:
    """Validate a parsed TOML document into a Config."""
    known = set(SCHEMA) | {"modems", "trunks"}
    for section in raw:
        if section not in known:
            raise ConfigError(f"[{section}]: unknown section (known: {', '.join(sorted(known))})")
    sections = {name: SECTION_CLASSES[name](**_section(name, raw.get(name, {}), schema))
                for name, schema in SCHEMA.items()}
    modems = tuple(ModemConfig(**values) for values in _tables(raw, "modems", MODEM_SCHEMA, "label", "modem"))
    trunks = tuple(VoiceTrunkConfig(**values) for values in _tables(raw, "trunks", TRUNK_SCHEMA, "name", "trunk"))
    config = Config(modems=modems, trunks=trunks, path=path, **sections)
    _check_rules(config)
    return config


def _tables(raw: dict[str, Any], table: str, schema: dict[str, Key], unique: str, noun: str) -> list[dict[str, Any]]:
    """The checked values of each [[table]], whose ``unique`` key must differ from the others'."""
    entries = raw.get(table, [])
    if not isinstance(entries, list):
        raise ConfigError(f"[[{table}]]: expected an array of tables ([[{table}]])")
    out: list[dict[str, Any]] = []
    for index, entry in enumerate(entries, 1):
        values = _section(f"{table} #{index}", entry, schema)
        if any(other[unique] == values[unique] for other in out):
            raise ConfigError(f"[{table} #{index}] {unique}: {values[unique]!r} is used by another {noun}")
        out.append(values)
    return out


def _check_rules(config: Config) -> None:
    """The rules between keys that are each valid alone: broken, they would stop the engine later."""
    if config.ops.selftest_weekday and not config.ops.selftest_at:
        # A weekday without a time would start at whatever hour the interval ends: the night call again.
        raise ConfigError("[ops] selftest_weekday: needs [ops] selftest_at (the time of day), e.g. \"10:00\"")
    if config.asterisk.enabled and not config.trunks:
        raise ConfigError("[asterisk] enabled: the voice channel needs at least one [[trunks]] table")
    for index, trunk in enumerate(config.trunks, 1):
        if trunk.allowed == "prefixes" and not trunk.prefixes:
            raise ConfigError(f"[trunks #{index}] prefixes: allowed = \"prefixes\" needs at least one prefix, "
                              "e.g. prefixes = [\"+39\"] (or allowed = \"all\")")
        if trunk.inbound_reserved >= trunk.max_channels:
            raise ConfigError(f"[trunks #{index}] inbound_reserved: {trunk.inbound_reserved} would leave no channel "
                              f"of the {trunk.max_channels} (max_channels) for alert calls")
    web = config.web
    if bool(web.tls_cert) != bool(web.tls_key):
        missing, given = ("tls_key", "tls_cert") if web.tls_cert else ("tls_cert", "tls_key")
        raise ConfigError(f"[web] {missing}: needed with [web] {given} (a certificate and its private key go "
                          "together); leave both empty for a generated certificate")


def load_config(path: str | os.PathLike[str]) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found (create one with 'allerta init --config {path}')") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse_config(raw, str(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def starter_config(data_dir: str, modems: list[ModemConfig] | None = None, comune: str | None = None) -> str:
    """The commented configuration file ``allerta init`` writes."""
    lines = ["# Allerta configuration. Every key is documented in docs/configuration.md.", ""]
    # A fresh random AMI secret: the same value goes into manager_allerta.conf
    # through 'allerta asterisk config'.
    overrides = {("general", "data_dir"): data_dir, ("asterisk", "secret"): secrets.token_urlsafe(18)}
    if comune:
        overrides[("general", "comune")] = comune
    for name, schema in SCHEMA.items():
        lines.append(f"[{name}]")
        for key, spec in schema.items():
            lines.append(f"# {spec.doc}")
            lines.append(f"{key} = {_toml_value(overrides.get((name, key), spec.default))}")
        lines.append("")
    lines.append("# One [[modems]] table per GSM modem.")
    for modem in modems or []:  # noqa: B007
        lines.append("[[modems]]")
        for key in MODEM_SCHEMA:
            value = getattr(modem, key)
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    lines.append("# One [[trunks]] table per Asterisk trunk (with [asterisk] enabled = true).")
    for key, spec in TRUNK_SCHEMA.items():
        example = {"name": "pstn", "dial": "PJSIP/{number}@pstn"}.get(key, spec.default)
        lines.append(f"# {key} = {_toml_value(example)}    # {spec.doc}")
    lines.append("")
    if not modems:
        lines.append("# [[modems]]")
        for key, spec in MODEM_SCHEMA.items():
            example = {"label": "tim-1", "port": "/dev/allerta/modem-1"}.get(key, spec.default)
            lines.append(f"# {key} = {_toml_value(example)}    # {spec.doc}")
        lines.append("")
    return "\n".join(lines)


def schema_markdown() -> str:
    """The table of keys in docs/configuration.md (between its keys:start and keys:end markers)."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for name, schema in SCHEMA.items():
        for key, spec in schema.items():
            rows.append(f"| `[{name}] {key}` | `{_toml_value(spec.default)}` | {spec.doc} |")
    for table, schema in (("modems", MODEM_SCHEMA), ("trunks", TRUNK_SCHEMA)):
        for key, spec in schema.items():
            default = "required" if spec.default is None else f"`{_toml_value(spec.default)}`"
            rows.append(f"| `[[{table}]] {key}` | {default} | {spec.doc} |")
    return "\n".join(rows)
