"""What the AMI events of one originated call say, and when the call is over.

Pure code: the voice channel feeds every event the client routed to this
call's ChannelId and asks whether it ended and how (``outcomes.classify_call``).

When is a call over? Every channel we saw for it has hung up (a Local
originate has two: ``<ChannelId>`` and ``<ChannelId>;2``) and the
OriginateResponse has arrived. On a trunk failure Asterisk sends the Hangup
first and the OriginateResponse after it; on a request failure there is no
channel at all, only the OriginateResponse. A call whose channels have all
hung up but whose OriginateResponse never comes is closed by the channel
after a short grace period (``all_hung_up``).
"""
from __future__ import annotations

import datetime as dt

from asterisk.ami_protocol import AmiMessage
from asterisk.outcomes import CallOutcome, classify_call

STATE_UP = "6"
REASON_ANSWERED = 4


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


class CallTracker:
    def __init__(self, channel_id: str) -> None:
        self.channel_id = channel_id
        self.channels: set[str] = set()          # Uniqueids of our channels seen so far
        self.hung_up: dict[str, int | None] = {}  # Uniqueid -> Hangup Cause
        self.reason: int | None = None           # OriginateResponse Reason
        self.originate_response = False
        self.answered_at: dt.datetime | None = None
        self.user_result: dict[str, str] | None = None
        self.handler_cause: int | None = None    # AllertaHangup's HANGUPCAUSE
        # AllertaPlaying seen: the message started. False from the start, since we see
        # every event of a call we originated; None for a call adopted later (unknown).
        self.played: bool | None = False

    def _ours(self, uniqueid: str | None) -> bool:
        return bool(uniqueid) and (uniqueid == self.channel_id
                                   or uniqueid.startswith(self.channel_id + ";"))

    def feed(self, event: AmiMessage, now: dt.datetime) -> None:
        name = (event.get("Event") or "").lower()
        uniqueid = event.get("Uniqueid")
        if name == "originateresponse":
            self.originate_response = True
            self.reason = _int(event.get("Reason"))
            if self.reason == REASON_ANSWERED:
                self._answered(now)
            return
        if name == "userevent":
            user_event = (event.get("UserEvent") or "").lower()
            if user_event == "allertaresult":
                self.user_result = {"Result": event.get("Result") or "",
                                    "Digit": event.get("Digit") or ""}
            elif user_event == "allertaplaying":
                self.played = True
            elif user_event == "allertahangup":
                self.handler_cause = _int(event.get("Cause"))
        if not self._ours(uniqueid):
            return
        assert uniqueid is not None
        self.channels.add(uniqueid)
        # Only our originated channel going Up means the callee answered;
        # a Local ';2' is up as soon as the callee context runs.
        if uniqueid == self.channel_id and event.get("ChannelState") == STATE_UP:
            self._answered(now)
        if name == "hangup":
            self.hung_up[uniqueid] = _int(event.get("Cause"))

    def _answered(self, now: dt.datetime) -> None:
        if self.answered_at is None:
            self.answered_at = now

    @property
    def answered(self) -> bool:
        return self.answered_at is not None

    @property
    def all_hung_up(self) -> bool:
        return bool(self.channels) and self.channels <= set(self.hung_up)

    @property
    def ended(self) -> bool:
        if self.all_hung_up:
            return self.originate_response or self.answered
        # A request that failed before any channel existed (unknown endpoint).
        return self.originate_response and not self.channels and not self.answered

    @property
    def outcome_seen(self) -> bool:
        """Whether we know how the call went, even if its end was missed."""
        return (self.user_result is not None or self.channel_id in self.hung_up
                or (self.originate_response and not self.answered))

    @property
    def cause(self) -> int | None:
        main = self.hung_up.get(self.channel_id)
        if main:
            return main
        # A Local originate to a busy callee: ';1' ends with 0, ';2' with 17.
        others = [cause for uid, cause in self.hung_up.items() if cause and uid != self.channel_id]
        if others:
            return others[0]
        return self.handler_cause or None

    def outcome(self) -> CallOutcome:
        return classify_call(self.reason, self.cause, self.user_result, self.answered, self.played)
