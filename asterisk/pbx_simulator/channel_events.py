"""The AMI event shapes Asterisk 22 sends for a channel, as pair lists.

Pure: every function returns ``list[tuple[str, str]]`` ready for
``ami_protocol.serialize``. Header order and names are copied from the real
transcript in shared/reference/asterisk-22-ami-transcript.txt.
"""
from __future__ import annotations

from dataclasses import dataclass

from asterisk.q850 import cause_text

Pairs = list[tuple[str, str]]

STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up", 7: "Busy"}
CALL = "call,all"
USER = "user,all"
DTMF = "dtmf,all"
SYSTEM = "system,all"


@dataclass
class SimChannel:
    name: str
    uniqueid: str
    linkedid: str
    context: str
    exten: str
    priority: int = 1
    state: int = 0
    language: str = "en"

    def snapshot(self, prefix: str = "") -> Pairs:
        return [
            (f"{prefix}Channel", self.name),
            (f"{prefix}ChannelState", str(self.state)),
            (f"{prefix}ChannelStateDesc", STATE_DESC.get(self.state, "Unknown")),
            (f"{prefix}CallerIDNum", "<unknown>"),
            (f"{prefix}CallerIDName", "<unknown>"),
            (f"{prefix}ConnectedLineNum", "<unknown>"),
            (f"{prefix}ConnectedLineName", "<unknown>"),
            (f"{prefix}Language", self.language),
            (f"{prefix}AccountCode", ""),
            (f"{prefix}Context", self.context),
            (f"{prefix}Exten", self.exten),
            (f"{prefix}Priority", str(self.priority)),
            (f"{prefix}Uniqueid", self.uniqueid),
            (f"{prefix}Linkedid", self.linkedid),
        ]


def channel_event(name: str, channel: SimChannel, *extra: tuple[str, str],
                  privilege: str = CALL) -> Pairs:
    return [("Event", name), ("Privilege", privilege), *channel.snapshot(), *extra]


def dial_event(name: str, dest: SimChannel, *extra: tuple[str, str]) -> Pairs:
    # Originate has no calling channel, so only the Dest* half appears.
    return [("Event", name), ("Privilege", CALL), *dest.snapshot("Dest"), *extra]


def local_bridge(one: SimChannel, two: SimChannel, context: str, exten: str) -> Pairs:
    return [("Event", "LocalBridge"), ("Privilege", CALL), *one.snapshot("LocalOne"),
            *two.snapshot("LocalTwo"), ("Context", context), ("Exten", exten),
            ("LocalOptimization", "Yes")]


def hangup(channel: SimChannel, cause: int) -> Pairs:
    return channel_event("Hangup", channel, ("Cause", str(cause)), ("Cause-txt", cause_text(cause)))


def originate_response(action_id: str | None, success: bool, channel: str, context: str,
                       exten: str, reason: int, uniqueid: str) -> Pairs:
    pairs: Pairs = [("Event", "OriginateResponse"), ("Privilege", CALL)]
    if action_id is not None:
        pairs.append(("ActionID", action_id))
    pairs += [("Response", "Success" if success else "Failure"), ("Channel", channel),
              ("Context", context), ("Exten", exten), ("Reason", str(reason)),
              ("Uniqueid", uniqueid), ("CallerIDNum", "<unknown>"), ("CallerIDName", "<unknown>")]
    return pairs


def user_event(channel: SimChannel, name: str, *extra: tuple[str, str]) -> Pairs:
    return channel_event("UserEvent", channel, ("UserEvent", name), *extra, privilege=USER)


def dtmf_events(channel: SimChannel, digit: str) -> tuple[Pairs, Pairs]:
    begin = channel_event("DTMFBegin", channel, ("Digit", digit), ("Direction", "Received"),
                          privilege=DTMF)
    end = channel_event("DTMFEnd", channel, ("Digit", digit), ("DurationMs", "120"),
                        ("Direction", "Received"), privilege=DTMF)
    return begin, end


def fully_booted(uptime: int) -> Pairs:
    return [("Event", "FullyBooted"), ("Privilege", SYSTEM), ("Uptime", str(uptime)),
            ("LastReload", str(uptime)), ("Status", "Fully Booted")]


def shutdown(restart: bool) -> Pairs:
    # main/asterisk.c: sent after every channel was hung up, before the sockets close.
    return [("Event", "Shutdown"), ("Privilege", SYSTEM), ("Shutdown", "Uncleanly"),
            ("Restart", "True" if restart else "False")]
