"""The network's side of incoming SMS: what a citizen's phone sends reaches the modem (3GPP TS 27.005).

How a real modem takes an SMS-DELIVER, by its AT+CNMI <mt> and AT+CSMS <service>:

- mt 0: stored in <mem3> (AT+CPMS), no indication; mt 1: stored, announced with
  ``+CMTI: "<mem>",<index>``; mt 2 or 3: routed to the client as ``+CMT: ,<length>``
  followed by the PDU (a message for a given memory, like a class 2 one for the
  SIM, is stored and announced whatever <mt> says).
- In phase 2+ (AT+CSMS=1) a routed message must be acknowledged with AT+CNMA;
  the modem routes no other one before that, and when the acknowledgement does
  not come in time it gives up routing (<mt> and <ds> back to 0, §3.4.4) and the
  network sends the message again later. AT+CNMA=2 refuses it: sent again later.
  In phase 2 (AT+CSMS=0, the default) the modem acknowledges by itself and
  AT+CNMA is answered +CMS ERROR: 340.
- A full memory refuses the message ("memory capacity exceeded"): the network
  keeps it, and every later one, and delivers them once the modem has room
  again (a delete, 23.040 §10.3 "memory available"). They are late, not lost,
  but nothing arrives while the SIM stays full.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .at_parser import split_args
from .commands import handles, int_arg
from .errors import CmsError
from .pdu_codec import Concat, build_deliver, split_for_delivery
from .sms import iso_time
from .storage import REC_UNREAD, MemoryFull, StoredMessage

if TYPE_CHECKING:
    from .at_engine import Action, SimulatedModem

# How long a routed message waits for its AT+CNMA (the network's relay timer, TR2M, is 12 to 20 s).
ACK_TIMEOUT = 15.0
# A message the modem refused (AT+CNMA=2, acknowledgement missing) is sent again this much later.
RESEND_AFTER = 2.0


@dataclass(frozen=True)
class IncomingSms:
    """One SMS-DELIVER (one part) the network has for this modem."""
    sender: str
    text: str
    pdu: str
    tpdu_length: int
    when: dt.datetime
    memory: str | None = None        # stored here whatever AT+CPMS and AT+CNMI say (a class 2 message)
    part: int = 1
    parts: int = 1
    serial: int = 0                  # the modem's count of messages sent to it (SimulatedModem.incoming_sms)

    def event(self, modem: "SimulatedModem", now: float) -> dict:
        return {"event": "incoming", "modem": modem.name, "imei": modem.imei, "sender": self.sender,
                "text": self.text, "part": self.part, "parts": self.parts, "serial": self.serial,
                "time": iso_time(now)}


def compose(sender: str, text: str | None, smsc: str | None, when: dt.datetime, *,
            parts: list[str] | None = None, reference: int = 0, wide: bool = False,
            encoding: str | None = None, memory: str | None = None) -> list[IncomingSms]:
    """The SMS-DELIVER PDUs a phone sends for ``text`` (split as a phone does), or for the ``parts``
    given (their texts, in seq order). Raises ValueError for what a phone could not send."""
    if parts is None:
        if not text:
            raise ValueError("text (or parts) is required")
        found, parts = split_for_delivery(text, wide)
        encoding = encoding or found
    elif not parts or not all(isinstance(p, str) and p for p in parts):
        raise ValueError("parts must be a non-empty list of non-empty texts")
    elif encoding is None:
        encoding = "gsm7" if all(split_for_delivery(p)[0] == "gsm7" for p in parts) else "ucs2"
    if len(parts) > 255:
        raise ValueError("at most 255 parts")
    if len(parts) > 1 and not 0 <= reference <= (0xFFFF if wide else 0xFF):
        raise ValueError(f"reference must be 0..{0xFFFF if wide else 0xFF}")
    messages = []
    for seq, part in enumerate(parts, start=1):
        concat = Concat(reference, len(parts), seq, wide) if len(parts) > 1 else None
        pdu, length = build_deliver(sender, part, smsc, when, encoding=encoding, concat=concat)
        messages.append(IncomingSms(sender, part, pdu, length, when, memory, seq, len(parts)))
    return messages


def receive(modem: "SimulatedModem", sms: IncomingSms, now: float) -> list["Action"]:
    """The network sends the modem one SMS-DELIVER: routed, stored, or kept back by the network
    (behind the ones it keeps already: the SMSC keeps their order)."""
    from .at_engine import Action  # here, not at the top: a real cycle (at_engine imports this module)

    if modem.network_sms or not modem.powered:
        modem.network_sms.append(sms)
        why = "modem off" if not modem.powered else "earlier messages held back"
        return [Action(0.0, event={**sms.event(modem, now), "held": why})]
    actions = _offer(modem, sms, now)
    if actions is None:
        modem.network_sms.append(sms)
        return [Action(0.0, event={**sms.event(modem, now), "held": _refusal(modem, sms)})]
    return actions


def resend_held(modem: "SimulatedModem", now: float) -> list["Action"]:
    """Room again (a delete, an acknowledgement, power back): the network sends what it kept, in order,
    until the modem refuses one again."""
    actions: list = []
    while modem.network_sms and modem.powered:
        offered = _offer(modem, modem.network_sms[0], now)
        if offered is None:
            break
        modem.network_sms.pop(0)
        actions += offered
    return actions


def _routes(modem: "SimulatedModem", sms: IncomingSms) -> bool:
    return modem.cnmi[1] in (2, 3) and sms.memory is None


def _refusal(modem: "SimulatedModem", sms: IncomingSms) -> str:
    if _routes(modem, sms):
        return "previous +CMT not acknowledged yet"
    return f"{sms.memory or modem.cpms[2]} memory full"


def _offer(modem: "SimulatedModem", sms: IncomingSms, now: float) -> list["Action"] | None:
    """The modem takes ``sms`` (the actions that follow), or refuses it for now (None)."""
    from .at_engine import Action, Timer  # here, not at the top: a real cycle

    event = sms.event(modem, now)
    if _routes(modem, sms):
        waits = []
        if modem.csms == 1:
            if modem.awaiting_ack is not None:
                return None
            modem.awaiting_ack = sms
            waits = [Action(ACK_TIMEOUT, timer=Timer("ack_timeout", (sms.serial,), epoch=modem.epoch))]
        modem.counters.incoming += 1
        return ([Action(0.0, event={**event, "routed": True})]
                + modem.urc(f"+CMT: ,{sms.tpdu_length}\r\n{sms.pdu}", now) + waits)
    memory = sms.memory or modem.cpms[2]
    details = {"sender": sms.sender, "text": sms.text, "time": sms.when}
    try:
        index = modem.store.add(memory, StoredMessage("deliver", sms.pdu, sms.tpdu_length, REC_UNREAD, details))
    except MemoryFull:
        return None
    modem.counters.incoming += 1
    actions = [Action(0.0, event={**event, "memory": memory, "index": index})]
    if modem.cnmi[1] != 0 or sms.memory is not None:
        actions += modem.urc(f'+CMTI: "{memory}",{index}', now)
    return actions


def acknowledgement_missing(modem: "SimulatedModem", serial: int, now: float) -> list["Action"]:
    """No AT+CNMA in time: routing is switched off (27.005 §3.4.4) and the network sends it again later."""
    from .at_engine import Action, Timer  # here, not at the top: a real cycle

    sms = modem.awaiting_ack
    if sms is None or sms.serial != serial:
        return []
    modem.awaiting_ack = None
    modem.cnmi[1] = modem.cnmi[3] = 0
    modem.network_sms.insert(0, sms)
    return [Action(0.0, event={**sms.event(modem, now), "event": "incoming_unacknowledged", "cnmi": list(modem.cnmi)}),
            Action(RESEND_AFTER, timer=Timer("network_resend"))]


@handles("+CSMS")
def _csms(modem, command, now):
    if command.op == "=?":
        return ["+CSMS: (0,1)"]
    if command.op == "?":
        return [f"+CSMS: {modem.csms},1,1,1"]
    args = split_args(command.args)
    modem.csms = int_arg(args[0] if args else "0", (0, 1))
    return ["+CSMS: 1,1,1"]


@handles("+CNMA")
def _cnma(modem, command, now):
    if command.op == "=?":
        return ["+CNMA: (0-2)"]
    # In phase 2 nothing waits for one: smstools3 sends AT+CNMA after every routed +CDS all the same.
    if modem.csms != 1 or modem.awaiting_ack is None:
        raise CmsError(340)
    args = split_args(command.args) if command.op == "=" else []
    reply = int_arg(args[0], (0, 1, 2)) if args and args[0] else 0
    sms, modem.awaiting_ack = modem.awaiting_ack, None
    if reply == 2:
        # Refused (RP-ERROR): the network keeps it and tries again a little later.
        modem.network_sms.insert(0, sms)
        modem.resend_in = RESEND_AFTER
        modem.pending_events.append({**sms.event(modem, now), "event": "incoming_refused"})
    else:
        modem.resend_in = 0.0
        modem.pending_events.append({**sms.event(modem, now), "event": "incoming_acknowledged"})
    return []
