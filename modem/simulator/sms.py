"""SMS commands (3GPP TS 27.005), the submit path and the network's side (reports, incoming)."""
from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from .at_parser import split_args
from .commands import handles, int_arg
from .errors import CmsError, PlainError
from .pdu_codec import PduError, build_status_report, decode_submit
from .storage import REC_READ, REC_UNREAD, STAT_NAMES, MemoryFull, StoredMessage

if TYPE_CHECKING:
    from .at_engine import DataEntry, SimulatedModem, _Output

TEXT_STATS = {name: code for code, name in STAT_NAMES.items()}
TIMEZONE = dt.timezone(dt.timedelta(hours=1))  # the simulated network's clock (CET)


def network_time(now: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(now, TIMEZONE).replace(microsecond=0)


def iso_time(now: float) -> str:
    return dt.datetime.fromtimestamp(now, dt.timezone.utc).isoformat(timespec="milliseconds")


def text_time(when: dt.datetime) -> str:
    quarters = int((when.utcoffset() or dt.timedelta()).total_seconds() // 900)
    return when.strftime("%y/%m/%d,%H:%M:%S") + f"{quarters:+03d}"


@handles("+CMGF")
def _cmgf(modem, command, now):
    if command.op == "?":
        return [f"+CMGF: {modem.cmgf}"]
    if command.op == "=?":
        return ["+CMGF: (0,1)"]
    modem.cmgf = int_arg(command.args or "0", (0, 1))
    return []


@handles("+CSDH")
def _csdh(modem, command, now):
    if command.op == "?":
        return [f"+CSDH: {modem.csdh}"]
    modem.csdh = int_arg(command.args or "0", (0, 1)) if command.op == "=" else 0
    return []


@handles("+CSCA")
def _csca(modem, command, now):
    if command.op == "?":
        if not modem.smsc:
            raise CmsError(330)
        return [f'+CSCA: "{modem.smsc}",{145 if modem.smsc.startswith("+") else 129}']
    if command.op == "=?":
        return []
    args = split_args(command.args)
    if not args or not args[0].lstrip("+").isdigit():
        raise CmsError(304 if modem.cmgf == 0 else 305)
    modem.smsc = args[0]
    return []


@handles("+CSMP")
def _csmp(modem, command, now):
    if command.op == "?":
        return ["+CSMP: " + ",".join(str(v) for v in modem.csmp)]
    if command.op == "=?":
        return []
    values = list(modem.csmp)
    for position, value in enumerate(split_args(command.args)[:4]):
        if value:
            values[position] = int_arg(value, range(256))
    modem.csmp = tuple(values)
    return []


@handles("+CSCS")
def _cscs(modem, command, now):
    if command.op == "?":
        return [f'+CSCS: "{modem.cscs}"']
    if command.op == "=?":
        return ["+CSCS: (" + ",".join(f'"{c}"' for c in modem.profile.cscs_supported) + ")"]
    args = split_args(command.args)
    if not args or args[0].upper() not in modem.profile.cscs_supported:
        raise PlainError()
    modem.cscs = args[0].upper()
    return []


def _memory_report(modem, memories) -> str:
    return ",".join(f"{modem.store.used(m)},{modem.store.capacity[m]}" for m in memories)


@handles("+CPMS")
def _cpms(modem, command, now):
    names = list(modem.store.memories)
    if command.op == "=?":
        quoted = ",".join(f'"{m}"' for m in names)
        writable = ",".join(f'"{m}"' for m in names if m != "SR")
        return [f"+CPMS: ({quoted}),({writable}),({writable})"]
    if command.op == "?":
        return ["+CPMS: " + ",".join(f'"{m}",{modem.store.used(m)},{modem.store.capacity[m]}' for m in modem.cpms)]
    args = [a.upper() for a in split_args(command.args)]
    if not args or len(args) > 3:
        raise CmsError(302)
    for position, memory in enumerate(args):
        if memory not in modem.store or (position > 0 and memory == "SR"):
            raise CmsError(302)
    modem.cpms[:len(args)] = args
    return ["+CPMS: " + _memory_report(modem, modem.cpms)]


@handles("+CNMI")
def _cnmi(modem, command, now):
    if command.op == "?":
        return ["+CNMI: " + ",".join(str(v) for v in modem.cnmi)]
    if command.op == "=?":
        return [modem.profile.cnmi_test]
    values = list(modem.cnmi)
    for position, value in enumerate(split_args(command.args)):
        if position >= 5:
            raise CmsError(303)
        if value:
            number = int_arg(value)
            if number not in modem.profile.cnmi_ranges[position]:
                raise CmsError(303)
            values[position] = number
    modem.cnmi = values
    return []


@handles("+CMGS")
def _cmgs(modem, command, now):
    from .at_engine import DataEntry  # here, not at the top: a real cycle (at_engine imports this module)

    if command.op == "=?":
        return []
    if command.op != "=":
        raise PlainError()
    args = split_args(command.args)
    if not args or not args[0]:
        raise CmsError(304 if modem.cmgf == 0 else 305)
    if modem.cmgf == 0:
        length = int_arg(args[0])
        if not 7 <= length <= 164:
            raise CmsError(304)
        return DataEntry("pdu", length=length)
    destination = args[0]
    if modem.cscs == "UCS2":
        destination = bytes.fromhex(destination).decode("utf-16-be")
    if not destination.lstrip("+").isdigit():
        raise CmsError(305)
    return DataEntry("text", destination=destination)


def _decode_entry(modem: "SimulatedModem", entry: "DataEntry") -> dict:
    """What the client asked to submit, as a partial Submitted record (raises PduError)."""
    if entry.mode == "pdu":
        decoded = decode_submit(entry.body.decode("latin-1"), entry.length)
        return {"destination": decoded.destination, "text": decoded.text, "part": decoded.part,
                "parts": decoded.parts, "concat_ref": decoded.concat_ref, "encoding": decoded.encoding,
                "report": decoded.status_report_requested}
    raw = entry.body.decode("latin-1")
    ucs2 = modem.cscs == "UCS2" or (modem.csmp[3] & 0x0C) == 0x08
    text = bytes.fromhex(raw).decode("utf-16-be") if modem.cscs == "UCS2" else raw
    if len(text) > (70 if ucs2 else 160):
        raise PduError("text too long for one message")
    return {"destination": entry.destination, "text": text, "part": 1, "parts": 1,
            "concat_ref": None, "encoding": "ucs2" if ucs2 else "gsm7",
            "report": bool(modem.csmp[0] & 0x20)}


def complete_submit(modem: "SimulatedModem", entry: "DataEntry", out: "_Output") -> None:
    """Ctrl-Z received: answer +CMGS (or +CMS ERROR) after the network latency."""
    command_delay = modem.config.command_latency.sample(modem.rng)
    try:
        request = _decode_entry(modem, entry)
    except (PduError, ValueError, UnicodeDecodeError) as exc:
        # Refused as a real modem refuses it, and logged: what the client sent and why it failed.
        error = CmsError(304 if entry.mode == "pdu" else 305)
        _fail(modem, out, command_delay, error, event={
            "event": "submit_refused", "modem": modem.name, "imei": modem.imei, "reply": error.render(1),
            "reason": str(exc), "body": entry.body.decode("latin-1")[:400], "time": iso_time(out.now)})
        return
    if not modem.smsc:
        _fail(modem, out, command_delay, CmsError(330))
        return
    if modem.registration_status not in (1, 5):
        _fail(modem, out, command_delay + 0.5, CmsError(331))
        return
    if modem.hang_after_submit is not False:
        # The fault a field run found: the PDU goes in, then nothing, no +CMGS (and nothing sent).
        seconds, modem.hang_after_submit = modem.hang_after_submit, False
        out.add(0.0, event={"event": "submit_swallowed", "modem": modem.name, "destination": request["destination"],
                            "part": request["part"], "parts": request["parts"], "time": iso_time(out.now)})
        out.actions.extend(modem.hang(seconds))
        return
    delay = modem.config.submit_latency.sample(modem.rng)
    if modem.config.cms_error_rate > 0 and modem.rng.random() < modem.config.cms_error_rate:
        _fail(modem, out, delay, CmsError(modem.config.cms_error_code))
        return
    reference = modem.message_reference
    modem.message_reference = (reference + 1) % 256
    modem.counters.submits += 1
    sent_at = out.now + delay
    event = {"event": "submit", "modem": modem.name, "imei": modem.imei,
             "destination": request["destination"], "text": request["text"],
             "part": request["part"], "parts": request["parts"], "concat_ref": request["concat_ref"],
             "reference": reference, "encoding": request["encoding"], "time": iso_time(sent_at)}
    out.add(delay, f"\r\n+CMGS: {reference}\r\n\r\nOK\r\n".encode(), event=event)
    modem._release_held(out, delay)
    if request["report"]:
        from .at_engine import Timer  # here, not at the top: a real cycle (at_engine imports this module)

        for i, status in enumerate(modem.config.report_statuses, start=1):
            out.add(delay + i * modem.config.report_delay,
                    timer=Timer("status_report", (reference, request["destination"], sent_at, status)))


def _fail(modem, out, delay, error, event: dict | None = None) -> None:
    modem.counters.cms_errors += 1
    out.add(delay, f"\r\n{error.render(modem.cmee)}\r\n".encode(), event=event)
    modem._release_held(out, delay)


def report_memory(modem: "SimulatedModem") -> str | None:
    """The memory a status report is stored in when not routed as +CDS (None: not stored)."""
    storage = modem.profile.report_storage
    if storage == "none":
        return None
    return "SR" if storage == "SR" else modem.cpms[2]


def deliver_status_report(modem: "SimulatedModem", payload: tuple, now: float) -> list:
    """The SMSC reports delivery: routed as +CDS (<ds>=1), or stored where the profile's model
    stores reports (announced by +CDSI when <ds>=2), or lost (<ds>=0 on a model that keeps none)."""
    from .at_engine import Action  # here, not at the top: a real cycle (at_engine imports this module)

    reference, recipient, sent_at, status = payload
    if not modem.powered:
        return []
    pdu, length = build_status_report(reference, recipient, modem.smsc,
                                      network_time(sent_at), network_time(now), status)
    modem.counters.status_reports += 1
    event = {"event": "status_report", "modem": modem.name, "imei": modem.imei,
             "destination": recipient, "reference": reference, "status": status, "time": iso_time(now)}
    ds = modem.cnmi[3]
    if ds == 1:
        return [Action(0.0, event={**event, "routed": "+CDS"})] + modem.urc(f"+CDS: {length}\r\n{pdu}", now)
    memory = report_memory(modem)
    if memory is None:
        return [Action(0.0, event={**event, "dropped": f"not routed (AT+CNMI <ds>={ds}) and "
                                                        f"{modem.profile.model} stores no reports"})]
    details = {"reference": reference, "recipient": recipient, "submitted": network_time(sent_at),
               "discharged": network_time(now), "status": status}
    try:
        index = modem.store.add(memory, StoredMessage("status_report", pdu, length, REC_UNREAD, details))
    except MemoryFull:
        return [Action(0.0, event={**event, "dropped": f"{memory} memory full"})]
    event.update(memory=memory, index=index)
    actions = [Action(0.0, event=event)]
    if ds == 2:
        actions += modem.urc(f'+CDSI: "{memory}",{index}', now)
    return actions


def _read_lines(modem, index: int, message: StoredMessage, listing: bool) -> list[str]:
    prefix = f"+CMGL: {index}," if listing else "+CMGR: "
    if modem.cmgf == 0:
        return [f"{prefix}{message.stat},,{message.tpdu_length}", message.pdu]
    d = message.details
    stat = f'"{STAT_NAMES[message.stat]}"'
    if message.kind == "status_report":
        return [f'{prefix}{stat},6,{d["reference"]},"{d["recipient"]}",145,'
                f'"{text_time(d["submitted"])}","{text_time(d["discharged"])}",{d["status"]}']
    return [f'{prefix}{stat},"{d["sender"]}",,"{text_time(d["time"])}"', d["text"]]


@handles("+CMGR")
def _cmgr(modem, command, now):
    if command.op == "=?":
        return []
    memory = modem.cpms[0]
    index = int_arg(command.args) if command.args.strip().isdigit() else -1
    if not modem.store.valid_index(memory, index):
        raise CmsError(321)
    message = modem.store.get(memory, index)
    if message is None:
        return []  # an empty slot answers a bare OK, as SIM800 and Huawei do
    lines = _read_lines(modem, index, message, listing=False)
    if message.stat == REC_UNREAD:
        message.stat = REC_READ
    return lines


@handles("+CMGL")
def _cmgl(modem, command, now):
    if command.op == "=?":
        return ['+CMGL: ("REC UNREAD","REC READ","STO UNSENT","STO SENT","ALL")'] if modem.cmgf else ["+CMGL: (0-4)"]
    raw = split_args(command.args)[0] if command.args else ("0" if modem.cmgf == 0 else "REC UNREAD")
    stat = int_arg(raw, range(5)) if modem.cmgf == 0 else TEXT_STATS.get(raw.upper(), -1)
    if stat < 0:
        raise CmsError(305)
    lines: list[str] = []
    for index, message in modem.store.listing(modem.cpms[0], stat):
        lines += _read_lines(modem, index, message, listing=True)
        if message.stat == REC_UNREAD:
            message.stat = REC_READ
    return lines


@handles("+CMGD")
def _cmgd(modem, command, now):
    if command.op == "=?":
        return ["+CMGD: (1-%d),(0-4)" % modem.store.capacity[modem.cpms[0]]]
    args = split_args(command.args)
    if not args:
        raise CmsError(302)
    memory = modem.cpms[0]
    flag = int_arg(args[1], range(5)) if len(args) > 1 and args[1] else 0
    # Room again: the network sends what it kept back (incoming.py).
    modem.resend_in = 0.0
    if flag:
        modem.store.delete_by_flag(memory, flag)
        return []
    index = int_arg(args[0]) if args[0].isdigit() else -1
    if not modem.store.valid_index(memory, index):
        raise CmsError(321)
    modem.store.delete(memory, index)
    return []
