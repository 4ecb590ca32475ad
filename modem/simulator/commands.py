"""General AT commands (V.250, 27.007) and the dispatcher. SMS commands live in sms.py.

A handler takes (modem, command, now) and returns the information lines of
its reply (the engine adds OK), ``SILENT`` (no reply at all), a DataEntry
(the engine sends "> "), or raises a ModemError.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .at_parser import Command, split_args
from .errors import CmeError, CmsError, ModemError, PlainError
from .pdu_codec import packed_gsm7_hex

if TYPE_CHECKING:
    from .at_engine import SimulatedModem

SILENT = object()


class UnknownCommand(ModemError):
    """Rendered with the profile's unknown_command_reply (ERROR, COMMAND NOT SUPPORT)."""

    def __init__(self) -> None:
        super().__init__(0)

    def render(self, cmee: int) -> str:
        return "ERROR"


Handler = Callable[["SimulatedModem", Command, float], object]
HANDLERS: dict[str, Handler] = {}

# Commands a PIN-locked modem still answers (27.007 and fakemodems.commandsNoPinRequired).
NO_PIN_NEEDED = {"", "Z", "E", "V", "Q", "I", "&F", "&W", "+CGMI", "+CGMM", "+CGMR", "+CGSN",
                 "+GMI", "+GMM", "+GMR", "+GSN", "+CMEE", "+CPIN", "+CFUN", "+CLAC", "+CSQ",
                 "+CREG", "+CGREG", "+CBC", "+CSCS", "+CHUP", "^CURC", "+CLIP", "+CRC", "+CVHU", "+CMGF"}
SMS_COMMANDS = {"+CMGS", "+CMGR", "+CMGD", "+CMGL", "+CPMS", "+CNMI", "+CSCA", "+CSMP", "+CMGW", "+CSDH", "+CSMS",
                "+CNMA"}


def handles(*names: str) -> Callable[[Handler], Handler]:
    def register(function: Handler) -> Handler:
        for name in names:
            HANDLERS[name] = function
        return function
    return register


def dispatch(modem: "SimulatedModem", command: Command, now: float) -> object:
    # Registers the SMS handlers; here, not at the top: a real cycle (sms imports handles from this module).
    from . import incoming, sms  # noqa: F401

    handler = HANDLERS.get(command.name)
    if command.name in modem.profile.unsupported:
        raise UnknownCommand()
    if handler is None:
        if command.name in modem.profile.extra_commands:
            return []
        raise UnknownCommand()
    if modem.pin_state != "READY" and command.name not in NO_PIN_NEEDED:
        pin_code = 311 if modem.pin_state == "SIM PIN" else 316
        raise CmsError(pin_code) if command.name in SMS_COMMANDS else CmeError(pin_code - 300)
    return handler(modem, command, now)


def int_arg(value: str, allowed: range | tuple | None = None) -> int:
    try:
        number = int(value)
    except ValueError:
        raise PlainError() from None
    if allowed is not None and number not in allowed:
        raise CmeError(4)
    return number


def _identity(modem: "SimulatedModem", command: Command) -> None:
    if command.op == "=?":
        return
    if command.op not in ("",):
        raise PlainError()


@handles("")
def _nothing(modem, command, now):
    return []


@handles("Z", "&F")
def _reset(modem, command, now):
    modem._reset_settings()
    return []


@handles("E")
def _echo(modem, command, now):
    modem.echo = int_arg(command.args or "0", (0, 1)) == 1
    return []


@handles("V", "Q", "X", "&W", "&C", "&D", "S0", "S3", "S4", "S7", "+IFC", "+ICF", "+IPR")
def _accepted(modem, command, now):
    if command.op in ("?",):
        return [f"{command.name}: 0"]
    return []


@handles("I")
def _info(modem, command, now):
    p = modem.profile
    return {"": [p.manufacturer, p.model, p.revision], "3": [p.manufacturer],
            "4": [p.model], "5": [p.revision]}.get(command.args, [p.manufacturer, p.model, p.revision])


@handles("+CGMI", "+GMI")
def _manufacturer(modem, command, now):
    _identity(modem, command)
    return [] if command.op == "=?" else [modem.profile.manufacturer]


@handles("+CGMM", "+GMM")
def _model(modem, command, now):
    _identity(modem, command)
    return [] if command.op == "=?" else [modem.profile.model]


@handles("+CGMR", "+GMR")
def _revision(modem, command, now):
    _identity(modem, command)
    return [] if command.op == "=?" else [modem.profile.revision]


@handles("+CGSN", "+GSN")
def _imei(modem, command, now):
    _identity(modem, command)
    return [] if command.op == "=?" else [modem.imei]


@handles("+CIMI")
def _imsi(modem, command, now):
    _identity(modem, command)
    return [] if command.op == "=?" else [modem.imsi]


@handles("+CFUN")
def _cfun(modem, command, now):
    if command.op == "?":
        return [f"+CFUN: {modem.cfun}"]
    if command.op == "=?":
        return ["+CFUN: (0,1,4),(0,1)"]
    args = split_args(command.args)
    if not args:
        raise PlainError()
    level = int_arg(args[0], (0, 1, 4))
    if len(args) > 1 and int_arg(args[1], (0, 1)) == 1:
        modem.pending_power_cycle = True  # the engine's transport restarts the modem after OK
    modem.cfun = level
    return []


@handles("+CMEE")
def _cmee(modem, command, now):
    if command.op == "?":
        return [f"+CMEE: {modem.cmee}"]
    if command.op == "=?":
        return ["+CMEE: (0-2)"]
    modem.cmee = int_arg(command.args or "0", (0, 1, 2))
    return []


@handles("+CPIN")
def _cpin(modem, command, now):
    if command.op == "?":
        return [f"+CPIN: {modem.pin_state}"]
    if command.op == "=?":
        return []
    args = split_args(command.args)
    if modem.pin_state == "READY":
        raise CmeError(3)
    if modem.pin_state == "SIM PUK":
        raise CmeError(12)
    if args and args[0] == modem.config.pin:
        modem.pin_state = "READY"
        modem.pin_attempts = 3
        return []
    modem.pin_attempts -= 1
    if modem.pin_attempts <= 0:
        modem.pin_state = "SIM PUK"
    raise CmeError(16)


@handles("+CLAC")
def _clac(modem, command, now):
    names = modem.profile.clac
    style = modem.profile.clac_style
    if style == "single":
        return ["+CLAC: " + ",".join(names)]
    if style == "at_lines":
        return ["AT" + name for name in names]
    return list(names)


@handles("+CSQ")
def _csq(modem, command, now):
    if command.op == "=?":
        return ["+CSQ: (0-31,99),(0-7,99)"]
    rssi = modem.signal if modem.registration_status in (1, 5) else 99
    return [f"+CSQ: {rssi},99"]


@handles("+CREG")
def _creg(modem, command, now):
    if command.op == "?":
        return [modem.creg_line(unsolicited=False)]
    if command.op == "=?":
        return ["+CREG: (0-2)"]
    modem.creg_mode = int_arg(command.args or "0", (0, 1, 2))
    return []


@handles("+COPS")
def _cops(modem, command, now):
    if command.op == "?":
        if modem.registration_status in (1, 5):
            return [f'+COPS: 0,{modem.cops_format},"{modem.operator_name()}",2']
        return ["+COPS: 0"]
    if command.op == "=?":
        return ['+COPS: (2,"I TIM","TIM","22201",2),(1,"vodafone IT","voda IT","22210",2),,(0-4),(0-2)']
    args = split_args(command.args)
    if len(args) >= 2:
        modem.cops_format = int_arg(args[1], (0, 1, 2))
    return []


@handles("+CLIP", "+CRC", "+CVHU")
def _call_settings(modem, command, now):
    attribute = command.name[1:].lower()
    if command.op == "?":
        return [f"{command.name}: {getattr(modem, attribute, 0)}" + (",1" if command.name == "+CLIP" else "")]
    if command.op == "=?":
        return [f"{command.name}: (0,1)"]
    setattr(modem, attribute, int_arg(command.args or "0", (0, 1)))
    return []


@handles("+CHUP", "H")
def _hangup(modem, command, now):
    return []


@handles("^CURC")
def _curc(modem, command, now):
    if "^CURC" not in modem.profile.extra_commands:
        raise UnknownCommand()
    if command.op == "?":
        return [f"^CURC: {int(modem.curc)}"]
    if command.op == "=?":
        return ["^CURC: (0-1)"]
    modem.curc = int_arg(command.args or "0", (0, 1)) == 1
    return []


@handles("+CGREG")
def _cgreg(modem, command, now):
    """GPRS registration, as +CREG (gammu networkinfo reads both)."""
    if command.op == "?":
        return [modem.creg_line(unsolicited=False, name="+CGREG")]
    if command.op == "=?":
        return ["+CGREG: (0-2)"]
    modem.cgreg_mode = int_arg(command.args or "0", (0, 1, 2))
    return []


@handles("+CBC")
def _cbc(modem, command, now):
    if command.op == "=?":
        return ["+CBC: (0-2),(0-100)"]
    return [modem.profile.cbc_reply]


_PHONEBOOKS = ("SM", "ME", "FD", "LD", "MC", "RC", "ON")


@handles("+CPBS")
def _cpbs(modem, command, now):
    if command.op == "?":
        return [f'+CPBS: "{modem.cpbs}",0,{250 if modem.cpbs == "SM" else 100}']
    if command.op == "=?":
        return ["+CPBS: (" + ",".join(f'"{name}"' for name in _PHONEBOOKS) + ")"]
    storage = (split_args(command.args) or [""])[0].upper()
    if storage not in _PHONEBOOKS:
        raise CmeError(3)
    modem.cpbs = storage
    return []


@handles("+CUSD")
def _cusd(modem, command, now):
    """USSD (the SIM's credit, *123#): OK at once, the network's answer later as a +CUSD URC, in the
    character set of AT+CSCS (hex UTF-16 under UCS2), or as hex packed GSM-7 on a Huawei stick."""
    if command.op == "?":
        return [f"+CUSD: {modem.cusd_mode}"]
    if command.op == "=?":
        return ["+CUSD: (0-2)"]
    args = split_args(command.args)
    mode = int_arg(args[0] if args and args[0] else "0", (0, 1, 2))
    if mode in (0, 1):
        modem.cusd_mode = mode
    if len(args) >= 2 and args[1] and mode != 2:
        reply = modem.profile.ussd_reply
        if modem.profile.ussd_packed:
            shown = packed_gsm7_hex(reply)  # whatever AT+CSCS says (gammu: F_ENCODED_USSD)
        elif modem.cscs == "UCS2":
            shown = reply.encode("utf-16-be").hex().upper()
        else:
            shown = reply
        modem.pending_urcs.append((1.0, f'+CUSD: 0,"{shown}",15'))
    return []


@handles("+CGATT")
def _cgatt(modem, command, now):
    """Packet-domain attach (gammu networkinfo asks it): attached while registered."""
    if command.op == "?":
        return [f"+CGATT: {1 if modem.registration_status in (1, 5) and modem.cgatt else 0}"]
    if command.op == "=?":
        return ["+CGATT: (0,1)"]
    modem.cgatt = int_arg(command.args or "0", (0, 1)) == 1
    return []
