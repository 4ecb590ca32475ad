"""One simulated GSM modem: AT framing, state and timers. Pure: no I/O, no threads, no sleeping.

The transport feeds client bytes with ``feed(data, now)`` and gets back
Actions: write ``data`` after ``delay`` seconds (relative to ``now``), log
``event`` when it is written, and call ``on_timer(timer, when)`` if a timer is
attached. Actions of one modem must be written in the order returned; a later
action never overtakes an earlier one. ``now`` is wall-clock (``time.time()``).
"""
from __future__ import annotations

import random
import traceback
from dataclasses import dataclass, field, replace

from . import commands, incoming, sms
from .at_parser import CommandSyntaxError, parse_command_line
from .errors import ModemError, PlainError
from .latency import COMMAND_LATENCY, DEFAULT_SUBMIT_LATENCY, PROMPT_LATENCY, Latency
from .profiles import Profile
from .storage import MessageStore

CTRL_Z, ESC, CR, LF, BACKSPACE = 0x1A, 0x1B, 0x0D, 0x0A, 0x08


@dataclass(frozen=True)
class Timer:
    kind: str  # "status_report", "periodic_urc", "unhang"
    payload: tuple = ()
    epoch: int = 0  # power-on generation; some timers die with a power cycle


@dataclass(frozen=True)
class Action:
    delay: float
    data: bytes = b""
    event: dict | None = None
    timer: Timer | None = None


@dataclass
class ModemConfig:
    """What the operator (or the control socket) can change at run time."""

    submit_latency: Latency = DEFAULT_SUBMIT_LATENCY
    command_latency: Latency = COMMAND_LATENCY
    prompt_latency: Latency = PROMPT_LATENCY
    report_delay: float = 1.0
    # TP-ST of each status report the SMSC sends per message, report_delay apart:
    # (0,) delivered; (0x30, 0) "still trying" then delivered; (0x41,) failed for good.
    report_statuses: tuple[int, ...] = (0,)
    cms_error_rate: float = 0.0
    cms_error_code: int = 38
    pin: str | None = None
    smsc: str = "+393359609600"


@dataclass
class DataEntry:
    """State between "> " and Ctrl-Z: AT+CMGS=<len> (PDU) or AT+CMGS="<number>" (text)."""

    mode: str  # "pdu" or "text"
    length: int = 0
    destination: str = ""
    body: bytearray = field(default_factory=bytearray)


@dataclass
class Counters:
    commands: int = 0
    submits: int = 0
    cms_errors: int = 0
    status_reports: int = 0
    incoming: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


class _Output:
    """Collects actions for one call; echo bytes go out before anything delayed."""

    def __init__(self, modem: "SimulatedModem", now: float) -> None:
        self.modem, self.now = modem, now
        self.actions: list[Action] = []
        self._echo = bytearray()

    def echo(self, byte: int) -> None:
        self._echo.append(byte)

    def add(self, delay: float, data: bytes = b"", event: dict | None = None, timer: Timer | None = None) -> None:
        self.flush_echo()
        self.actions.append(Action(delay, data, event, timer))
        if data:
            self.modem.busy_until = max(self.modem.busy_until, self.now + delay)

    def flush_echo(self) -> None:
        if self._echo:
            self.actions.append(Action(0.0, bytes(self._echo)))
            self._echo.clear()


class SimulatedModem:
    def __init__(self, name: str, profile: Profile, imei: str, imsi: str,
                 rng: random.Random, config: ModemConfig | None = None) -> None:
        self.name, self.profile, self.imei, self.imsi = name, profile, imei, imsi
        self.rng = rng
        self.config = config or ModemConfig()
        self.store = MessageStore(profile.memory_capacity)
        self.counters = Counters()
        self.message_reference = 0  # TP-MR of the next submit; kept on the SIM, survives power cycles
        self.registered = True  # network condition, set by the operator
        self.hung = False
        self.hang_after_submit: float | None | bool = False
        self.powered = False
        self.epoch = 0
        self.busy_until = 0.0
        self.signal = 12 + rng.randrange(15)  # +CSQ rssi, 12..26
        self.pending_power_cycle = False
        # (seconds after the OK, text): URCs a command starts, such as a USSD's answer.
        self.pending_urcs: list[tuple[float, str]] = []
        # Status reports the SMSC could not hand over while the modem was off:
        # the network keeps them and retries once the modem is back.
        self.network_pending: list[Timer] = []
        # SMS the network keeps for this modem (memory full, modem off, a +CMT not acknowledged),
        # sent again in order once it can take them (incoming.py).
        self.network_sms: list[incoming.IncomingSms] = []
        self.awaiting_ack: incoming.IncomingSms | None = None   # a +CMT waiting for AT+CNMA
        self.incoming_count = 0
        # Set by a command handler: send what the network keeps after this many seconds.
        self.resend_in: float | None = None
        self.pending_events: list[dict] = []   # logged once the command's reply is written
        self._reset_settings()

    # ----- power and settings -------------------------------------------------
    def _reset_settings(self) -> None:
        """What ATZ restores (and power-on starts from)."""
        self.echo = True
        self.cmee = 0
        self.cmgf = 0
        self.cscs = "IRA"
        self.cnmi = list(self.profile.cnmi_default)
        self.creg_mode = 0
        self.cgreg_mode = 0
        self.cgatt = True
        self.cusd_mode = 0
        self.cpbs = "SM"
        self.clip = 0
        self.crc = 0
        self.csdh = 0
        self.csmp = (17, 167, 0, 0)
        self.cops_format = 0
        self.csms = 0    # 27.005 <service>: 0 phase 2 (the modem acknowledges SMS), 1 phase 2+ (AT+CNMA)

    def power_on(self, now: float) -> list[Action]:
        """Fresh start (boot, replug, AT+CFUN=1,1): settings lost, SIM and storage kept."""
        self.powered = True
        self.epoch += 1
        self.hung = False
        # False: no fault armed; None or seconds: hang (for that long) after the next PDU.
        self.hang_after_submit: float | None | bool = False
        self._reset_settings()
        self.cfun = 1
        self.curc = True
        self.pin_state = "SIM PIN" if self.config.pin else "READY"
        self.pin_attempts = 3
        self.smsc = self.config.smsc
        self.cpms = ["SM", "SM", "SM"]
        self._line = bytearray()
        self._entry: DataEntry | None = None
        self._held_urcs: list[bytes] = []
        self._hang_tail = 0
        self.busy_until = now
        out = _Output(self, now)
        delay = 0.0
        for urc in self.profile.boot_urcs:
            delay += self.profile.boot_urc_spacing
            out.add(delay, f"\r\n{urc}\r\n".encode())
        if self.profile.periodic_urcs:
            out.add(self._periodic_interval(), timer=Timer("periodic_urc", epoch=self.epoch))
        for pending in self.network_pending:
            out.add(delay + 1.0, timer=pending)
        self.network_pending = []
        if self.awaiting_ack is not None:   # never acknowledged: the network sends it again
            self.network_sms.insert(0, self.awaiting_ack)
            self.awaiting_ack = None
        if self.network_sms:
            out.add(delay + 1.0, timer=Timer("network_resend"))
        return out.actions

    def power_off(self) -> None:
        self.powered = False
        self.epoch += 1

    def hang_on_next_submit(self, seconds: float | None) -> None:
        """Take the next PDU, then go silent as ``hang`` does (a modem that hangs mid-send)."""
        self.hang_after_submit = seconds

    def hang(self, seconds: float | None) -> list[Action]:
        """Go silent until ESC, Ctrl-Z CR, a power cycle or ``seconds`` elapse."""
        self.hung = True
        self._entry = None
        self._line = bytearray()
        if seconds:
            return [Action(seconds, timer=Timer("unhang", epoch=self.epoch))]
        return []

    # ----- client bytes -------------------------------------------------------
    def feed(self, data: bytes, now: float) -> list[Action]:
        out = _Output(self, now)
        if not self.powered:
            return []
        self.counters.bytes_in += len(data)
        for byte in data:
            if self.hung:
                self._feed_hung(byte)
            elif self._entry is not None:
                self._feed_entry(byte, out)
            else:
                self._feed_command(byte, out)
        out.flush_echo()
        return out.actions

    def _feed_hung(self, byte: int) -> None:
        # smstools3 sends "\x1A\r" to a silent modem, gammu ESC: both wake a stuck data entry.
        if byte == ESC or (byte == CR and self._hang_tail == CTRL_Z):
            self.hung = False
        self._hang_tail = byte

    def _feed_command(self, byte: int, out: _Output) -> None:
        if self.echo and byte not in (CTRL_Z, ESC):
            out.echo(byte)
        if byte == CR:
            line = self._line.decode("latin-1")
            self._line = bytearray()
            self._execute_line(line, out)
        elif byte == ESC or byte == CTRL_Z:
            self._line = bytearray()
        elif byte == BACKSPACE:
            del self._line[-1:]
        elif byte != LF:
            self._line.append(byte)

    def _feed_entry(self, byte: int, out: _Output) -> None:
        entry = self._entry
        if byte == CTRL_Z:
            self._entry = None
            try:
                sms.complete_submit(self, entry, out)
            except Exception as exc:  # noqa: BLE001 - a simulator bug: answered and logged, never silent
                self._internal_error(out, 0.0, "submitting the PDU after AT+CMGS", exc, b"\r\n+CMS ERROR: 500\r\n")
                self._release_held(out, 0.0)
        elif byte == ESC:
            self._entry = None
            out.add(self.config.command_latency.sample(self.rng), b"\r\nOK\r\n")
            self._release_held(out, 0.0)
        elif byte == CR and entry.mode == "text":
            entry.body.extend(b"\n")
            if self.echo:
                out.echo(CR)
                out.add(0.0, b"\n> ")
        elif byte == BACKSPACE:
            del entry.body[-1:]
        else:
            if self.echo:
                out.echo(byte)
            if entry.mode == "text" or byte not in (CR, LF):
                entry.body.append(byte)

    def _execute_line(self, line: str, out: _Output) -> None:
        stripped = line.strip()
        if not stripped or stripped[:2].upper() != "AT":
            return  # real modems ignore noise between commands
        self.counters.commands += 1
        delay = self.config.command_latency.sample(self.rng)
        try:
            self._run_line(stripped, out, delay)
        except Exception as exc:  # noqa: BLE001 - a simulator bug: answered and logged, never silent
            self._internal_error(out, delay, f"answering {stripped!r}", exc, b"\r\nERROR\r\n")

    def _internal_error(self, out: _Output, delay: float, doing: str, exc: Exception, reply: bytes) -> None:
        """What the simulator could not do, as an "error" event (the pool logs it with the port)
        and a final result code, so the client is not left waiting for one."""
        out.add(delay, reply, event={"event": "error", "modem": self.name, "doing": doing,
                                     "error": f"{type(exc).__name__}: {exc}",
                                     "traceback": traceback.format_exc()})

    def _run_line(self, stripped: str, out: _Output, delay: float) -> None:
        try:
            parsed = parse_command_line(stripped)
        except CommandSyntaxError:
            out.add(delay, self._final(PlainError()))
            return
        info: list[str] = []
        for command in parsed:
            try:
                result = commands.dispatch(self, command, out.now)
            except ModemError as error:
                out.add(delay, self._reply(info, self._final(error)))
                return
            if result is commands.SILENT:
                return
            if isinstance(result, DataEntry):
                self._entry = result
                if info:
                    out.add(delay, self._reply(info, None))
                out.add(self.config.prompt_latency.sample(self.rng), b"\r\n> ")
                return
            info.extend(result)
        out.add(delay, self._reply(info, b"\r\nOK\r\n"))
        for after, text in self.pending_urcs:
            out.actions.extend(self.urc(text, out.now, delay + after))
        self.pending_urcs = []
        for event in self.pending_events:
            out.add(delay, event=event)
        self.pending_events = []
        if self.resend_in is not None:
            if self.network_sms:
                out.add(delay + self.resend_in, timer=Timer("network_resend"))
            self.resend_in = None
        if self.pending_power_cycle:  # AT+CFUN=1,1: reboot after the OK
            self.pending_power_cycle = False
            out.add(delay + 0.1, timer=Timer("power_cycle", epoch=self.epoch))

    # ----- formatting ---------------------------------------------------------
    def _final(self, error: ModemError) -> bytes:
        if isinstance(error, commands.UnknownCommand):
            return f"\r\n{self.profile.unknown_command_reply}\r\n".encode()
        return f"\r\n{error.render(self.cmee)}\r\n".encode()

    @staticmethod
    def _reply(info: list[str], final: bytes | None) -> bytes:
        body = ("\r\n" + "\r\n".join(info) + "\r\n").encode("latin-1") if info else b""
        return body + (final or b"")

    # ----- unsolicited result codes ------------------------------------------
    def urc(self, text: str, now: float, delay: float = 0.0) -> list[Action]:
        """One URC (possibly several lines) in one write, never inside a reply or a data entry."""
        if not self.powered or self.hung:
            return []
        data = ("\r\n" + text + "\r\n").encode("latin-1")
        if self._entry is not None:
            self._held_urcs.append(data)
            return []
        return [Action(max(delay, self.busy_until - now), data)]

    def _release_held(self, out: _Output, after: float) -> None:
        for data in self._held_urcs:
            out.add(after, data)
        self._held_urcs = []

    def on_timer(self, timer: Timer, now: float) -> list[Action]:
        if timer.kind == "status_report":
            if not self.powered:
                self.network_pending.append(timer)
                return []
            return sms.deliver_status_report(self, timer.payload, now)
        if timer.kind == "incoming":     # the network's, whatever the modem's power did meanwhile
            return incoming.receive(self, timer.payload[0], now)
        if timer.kind == "network_resend":
            return incoming.resend_held(self, now)
        if timer.epoch != self.epoch or not self.powered:
            return []
        if timer.kind == "power_cycle":
            return self.power_on(now)
        if timer.kind == "ack_timeout":
            return incoming.acknowledgement_missing(self, timer.payload[0], now)
        if timer.kind == "unhang":
            self.hung = False
            return []
        if timer.kind == "periodic_urc":
            actions = []
            if self.curc:
                actions += self.urc(self.rng.choice(self.profile.periodic_urcs), now)
            actions.append(Action(self._periodic_interval(), timer=timer))
            return actions
        raise ValueError(f"unknown timer {timer.kind!r}")

    def _periodic_interval(self) -> float:
        low, high = self.profile.periodic_urc_interval
        return self.rng.uniform(low, high)

    def incoming_sms(self, messages: list[incoming.IncomingSms], now: float, *, order: list[int] | None = None,
                     gap: float = 0.0, delay: float = 0.0) -> list[Action]:
        """The network sends these parts (incoming.compose) in ``order`` (1-based seqs; a seq left out
        never arrives), the first after ``delay`` seconds, the others ``gap`` seconds apart."""
        chosen = [messages[seq - 1] for seq in order] if order is not None else list(messages)
        actions: list[Action] = []
        for position, message in enumerate(chosen):
            self.incoming_count += 1
            message = replace(message, serial=self.incoming_count)
            after = delay + position * gap
            if after <= 0:
                actions += incoming.receive(self, message, now)
            else:
                actions.append(Action(after, timer=Timer("incoming", (message,))))
        return actions

    # ----- network ------------------------------------------------------------
    @property
    def registration_status(self) -> int:
        """+CREG <stat>: 1 home, 2 searching, 0 radio off or SIM locked."""
        if self.cfun != 1 or self.pin_state != "READY":
            return 0
        return 1 if self.registered else 2

    def creg_line(self, unsolicited: bool, name: str = "+CREG") -> str:
        stat = self.registration_status
        mode = self.creg_mode if name == "+CREG" else self.cgreg_mode
        head = f"{name}: " if unsolicited else f"{name}: {mode},"
        if mode == 2 and stat in (1, 5):
            if self.profile.creg_unquoted:
                return f"{head}{stat}, {self.profile.lac}, {self.profile.cell_id}"
            return f'{head}{stat},"{self.profile.lac}","{self.profile.cell_id}"'
        return f"{head}{stat}"

    def operator_name(self) -> str:
        if self.cops_format == 2:
            return self.imsi[:5]
        return self.profile.operator

    def set_registered(self, registered: bool, now: float) -> list[Action]:
        before = self.registration_status
        self.registered = registered
        if self.creg_mode and self.registration_status != before:
            return self.urc(self.creg_line(unsolicited=True), now)
        return []

    def status(self) -> dict:
        return {
            "profile": self.profile.name, "imei": self.imei, "powered": self.powered,
            "hung": self.hung, "registered": self.registered,
            "creg_stat": self.registration_status if self.powered else None,
            "next_reference": self.message_reference,
            "stored": self.store.counts(),
            "stored_high_water": dict(self.store.high_water),
            "held_by_network": len(self.network_sms),
            "config": {
                "submit_latency": self.config.submit_latency.to_dict(),
                "report_delay": self.config.report_delay,
                "cms_error_rate": self.config.cms_error_rate,
                "cms_error_code": self.config.cms_error_code,
            },
            **vars(self.counters),
        }
