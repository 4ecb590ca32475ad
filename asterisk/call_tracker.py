"""What the AMI events of one originated call say, and when the call is over.

Pure code: the voice channel feeds every event the client routed to this
call's ChannelId and asks whether it ended and how (``outcomes.classify_call``).

When is a call over? Only when everything that can still arrive for it has
arrived: every channel we saw for it has hung up (a Local originate has two:
``<ChannelId>`` and ``<ChannelId>;2``) and the OriginateResponse has come.
Asterisk sends these in either order: on a trunk failure the Hangup usually
comes first, but for a call that fails at once a real Asterisk 22 sometimes
sends ``OriginateResponse`` (Failure, Reason 0) *before* the channel's
Newchannel/Hangup, with the Q.850 cause only on that later Hangup. So an
OriginateResponse with no channel yet does not end the call: the channel
waits a short grace (``settling``) for the channel events, and only when none
came does it conclude that no channel was ever created (a request failure).

A call answered and then cut with cause 0 and no word from our dialplan was
ended by our own PBX (``core restart``, a crash), not by the callee
(``pbx_gone``): the voice channel retries it without charging anybody.
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
        self.handler_seen = False
        self.pbx_shutdown = False                # a Shutdown event came while the call was up
        # AllertaPlaying seen: the message started. False from the start, since we see
        # every event of a call we originated; None for a call adopted later (unknown).
        self.played: bool | None = False
        self.vote: int | None = None             # AllertaVote's option, until the channel takes it

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
            elif user_event == "allertavote":
                self.vote = _int(event.get("Option"))
            elif user_event == "allertahangup":
                self.handler_seen = True
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

    def recover_result(self, result: str) -> None:
        """What our dialplan stored in AstDB for this call (read after an AMI gap)."""
        if self.user_result is None:
            self.user_result = {"Result": result, "Digit": "1" if result == "confirmed" else ""}

    def take_vote(self) -> int | None:
        """The option pressed for the poll after the message, once: None when none (or taken)."""
        vote, self.vote = self.vote, None
        return vote

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
        """Everything that can still arrive for this call has arrived."""
        if not self.all_hung_up or not (self.originate_response or self.answered):
            return False
        # Every channel gone with cause 0: our PBX may be shutting down, and its
        # Shutdown event (which tells the recipient is not to blame) comes after.
        return self.pbx_shutdown or any(self.hung_up.values()) or self.user_result is not None

    @property
    def settling(self) -> bool:
        """Over as far as one side says, waiting a short grace for the other side's events:
        hung up without an OriginateResponse yet, or an OriginateResponse that failed
        with no channel seen yet (its Newchannel/Hangup may still come)."""
        if self.ended:
            return False
        return self.all_hung_up or (self.originate_response and not self.channels and not self.answered)

    @property
    def pbx_gone(self) -> bool:
        """Answered, then cut by our PBX going away: cause 0 (or a Shutdown) and no result
        from our dialplan. A callee hanging up gives 16 on our channel."""
        if self.user_result is not None:
            return False
        if self.pbx_shutdown:
            return True
        if not self.answered:
            return False
        main = self.hung_up.get(self.channel_id)
        return self.channel_id in self.hung_up and not main and not self.handler_cause

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
        return classify_call(self.reason, self.cause, self.user_result, self.answered, self.played,
                             self.pbx_gone)
