"""Q.850 hangup causes with the text Asterisk prints in ``Cause-txt``.

The names are those of Asterisk's ``ast_cause2str`` (main/channel.c), so a
cause logged here reads the same as in the Asterisk CLI and in AMI Hangup
events. Pure data; no I/O.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

Q850_CAUSES: Mapping[int, str] = MappingProxyType({
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    2: "No route to specified transmit network",
    3: "No route to destination",
    6: "Channel unacceptable",
    7: "Call awarded and being delivered in an established channel",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    20: "Subscriber absent",
    21: "Call Rejected",
    22: "Number changed",
    23: "Redirected to new destination",
    26: "Answered elsewhere",
    27: "Destination out of order",
    28: "Invalid number format",
    29: "Facility rejected",
    30: "Response to STATus ENQuiry",
    31: "Normal, unspecified",
    34: "Circuit/channel congestion",
    38: "Network out of order",
    41: "Temporary failure",
    42: "Switching equipment congestion",
    43: "Access information discarded",
    44: "Requested channel not available",
    50: "Facility not subscribed",
    52: "Outgoing call barred",
    54: "Incoming call barred",
    57: "Bearer capability not authorized",
    58: "Bearer capability not available",
    65: "Bearer capability not implemented",
    66: "Channel not implemented",
    69: "Facility not implemented",
    81: "Invalid call reference value",
    88: "Incompatible destination",
    95: "Invalid message unspecified",
    96: "Mandatory information element is missing",
    97: "Message type nonexist.",
    98: "Wrong message",
    99: "Info. element nonexist or not implemented",
    100: "Invalid information element contents",
    101: "Message not compatible with call state",
    102: "Recover on timer expiry",
    111: "Protocol error, unspecified",
    127: "Interworking, unspecified",
})

# OriginateResponse Reason values: Asterisk's ast_control_frame_type numbers.
REASON_FAILURE = 0
REASON_HANGUP = 1
REASON_NO_ANSWER = 3     # AST_CONTROL_RINGING: it rang and nobody answered
REASON_ANSWERED = 4
REASON_BUSY = 5
REASON_CONGESTION = 8

REASON_NAMES: Mapping[int, str] = MappingProxyType({
    REASON_FAILURE: "request failed",
    REASON_HANGUP: "hung up",
    REASON_NO_ANSWER: "no answer",
    REASON_ANSWERED: "answered",
    REASON_BUSY: "busy",
    REASON_CONGESTION: "congestion",
})


def cause_text(cause: int) -> str:
    """Asterisk's text for ``cause``; unknown numbers still get a readable label."""
    return Q850_CAUSES.get(cause, f"Cause {cause}")


def originate_reason_for_cause(cause: int, answered: bool = False) -> int:
    """The Reason an OriginateResponse carries for a call that ended with ``cause``.

    A copy of ``pbx_dial_reason`` in Asterisk's main/pbx.c, so the simulator
    and the classifier agree with the real thing: any cause not listed there
    (1, 3, 18, 28, ...) becomes 0, "something failed".
    """
    if answered:
        return REASON_ANSWERED
    if cause == 17:
        return REASON_BUSY
    if cause in (21, 27, 34, 38, 41, 42):
        return REASON_CONGESTION
    if cause in (19, 26):
        return REASON_NO_ANSWER
    return REASON_FAILURE
