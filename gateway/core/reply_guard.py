"""When an automatic answer would make things worse: pure decisions, the counts come from the caller.

An answer costs a segment of a SIM's daily plan and a slot on a modem that an
alert may need. Senders who cannot read it (an operator's alphanumeric "TIM",
a short code) or who answer automatically (our own SIMs, a phone's "I am
driving" autoresponder) would make us talk to a machine, possibly forever. So:
never answer those; after ``loop_replies`` answers within ``loop_minutes``, or
when a text we do not understand follows our answer within that window (what an
autoresponder does), stay silent; at most ``max_replies_per_day`` answers a number;
and past ``flood_per_hour`` messages an hour, messages are stored but not acted on.
The effect of a command (STOP above all) is applied even when its answer is withheld.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from gateway.core.states import ReplyReason


@dataclass(frozen=True)
class GuardSettings:
    short_code_digits: int = 6
    own_numbers: frozenset[str] = frozenset()   # E.164
    max_replies_per_day: int = 5
    loop_minutes: float = 5.0
    loop_replies: int = 3
    flood_per_hour: int = 20


@dataclass(frozen=True)
class Traffic:
    """What a number did and got lately (the message being read counted in messages_last_hour)."""
    messages_last_hour: int = 0
    replies_last_day: int = 0
    replies_in_loop_window: int = 0
    commands_lists_last_day: int = 0


def unanswerable_sender(sender: str, e164: str | None, settings: GuardSettings) -> str | None:
    """Why nobody can usefully read an answer from us at ``sender``, or None when it is a phone number."""
    bare = sender.strip().lstrip("+")
    if not bare or not bare.isdigit():
        return "alphanumeric sender: not answered"
    if len(bare) <= settings.short_code_digits:
        return "short code: not answered"
    if e164 is None:
        return "not a phone number: not answered"
    if e164 in settings.own_numbers:
        return "one of our own lines: not answered"
    return None


def flooding(traffic: Traffic, settings: GuardSettings) -> str | None:
    if traffic.messages_last_hour > settings.flood_per_hour:
        return (f"flood: {traffic.messages_last_hour} messages from this number in the last hour "
                f"(more than {settings.flood_per_hour}); stored, not acted on")
    return None


def reply_withheld(traffic: Traffic, reason: ReplyReason, *, understood: bool, solicited: bool = False,
                   settings: GuardSettings) -> str | None:
    """Why the answer of ``reason`` is not sent, or None. A help request is always answered:
    its answer says to call 112. ``solicited``: the message answers a question we asked (the
    numbered zone list), which no autoresponder can do: the loop rule does not apply."""
    if reason == ReplyReason.HELP_REQUEST:
        return None
    if traffic.replies_in_loop_window >= settings.loop_replies and not solicited:
        return f"{traffic.replies_in_loop_window} automatic answers in {settings.loop_minutes:g} min: no more for now"
    if traffic.replies_in_loop_window and not understood:
        return "an unrecognised text right after our answer looks automatic: not answered"
    if traffic.replies_last_day >= settings.max_replies_per_day:
        return f"{traffic.replies_last_day} automatic answers in 24 h: no more today"
    if reason == ReplyReason.COMMANDS and traffic.commands_lists_last_day:
        return "the list of commands went to this number in the last 24 h"
    return None


def since(now: dt.datetime, *, hours: float = 0.0, minutes: float = 0.0) -> dt.datetime:
    return now - dt.timedelta(hours=hours, minutes=minutes)
