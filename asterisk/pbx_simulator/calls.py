"""One simulated outbound call, from Originate to the last Hangup event.

The event order follows the Asterisk 22 transcript: for ``Local/`` channels
the ;1/;2 pair with LocalBridge, exactly as recorded; for trunk technologies
(PJSIP, DAHDI, Dongle...) the single outbound channel Asterisk creates. Then
our dialplan (asterisk/conf/extensions_allerta.conf) runs on the answered
channel: DTMF, ``UserEvent: AllertaResult`` and the hangup handler's
``UserEvent: AllertaHangup``.
"""
from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol

from asterisk.pbx_simulator import channel_events as ev
from asterisk.pbx_simulator.dialplan import Callee, ChannelRun, Dialplan
from asterisk.pbx_simulator.population import FAILURES, NOT_RINGING, CallPlan
from asterisk.q850 import REASON_FAILURE, originate_reason_for_cause


class CallHost(Protocol):
    """What a call needs from the simulator that runs it."""

    def emit(self, pairs: ev.Pairs) -> None: ...

    async def sleep(self, seconds: float) -> None: ...

    def new_uniqueid(self) -> str: ...

    def new_sequence(self) -> int: ...

    dialplan: Dialplan
    astdb: dict[tuple[str, str], str]

    def module_loaded(self, module: str) -> bool: ...

    def file_exists(self, path: str) -> bool: ...

    def file_seconds(self, path: str) -> float | None: ...

    def note(self, text: str) -> None: ...


# A person's "Pronto?" at pickup, and an answering machine's recorded greeting before its beep
# (seconds since answer): what AMD and BackgroundDetect listen to.
GREETING = (0.1, 0.7)
MACHINE_GREETING = (0.3, 4.3)
# A message whose length the simulator cannot read lasts at least this long (a short alert).
SHORTEST_MESSAGE_SECONDS = 10.0


def callee_for(plan: CallPlan) -> Callee:
    """The far end of an answered call: a confirm callee presses its digit after listen_seconds."""
    talk = [GREETING] if plan.greets else []
    if plan.behaviour == "voicemail":
        talk.append(MACHINE_GREETING)
    presses = [(plan.listen_seconds, plan.digit)] if plan.behaviour == "confirm" else []
    return Callee(presses, talk, message_seconds=max(plan.listen_seconds + 1.0, SHORTEST_MESSAGE_SECONDS),
                  votes=[plan.vote] if plan.vote else [])


class ChannelRuntime:
    """The interpreter's view of the simulator for one channel: events on it, scaled time."""

    def __init__(self, host: CallHost, channel: ev.SimChannel, speed: float) -> None:
        self.host, self.channel, self.speed = host, channel, speed
        self.astdb = host.astdb
        self.result: str | None = None
        self.vote: str | None = None        # the option the callee chose in the poll

    def emit_user_event(self, name: str, pairs: list[tuple[str, str]]) -> None:
        if name == "AllertaResult":
            self.result = dict(pairs).get("Result") or None
        elif name == "AllertaVote":
            self.vote = dict(pairs).get("Option") or None
        self.host.emit(ev.user_event(self.channel, name, *pairs))

    def emit_dtmf(self, digit: str) -> None:
        for event in ev.dtmf_events(self.channel, digit):
            self.host.emit(event)

    async def sleep(self, seconds: float) -> None:
        await self.host.sleep(seconds * self.speed)

    def module_loaded(self, module: str) -> bool:
        return self.host.module_loaded(module)

    def file_exists(self, path: str) -> bool:
        return self.host.file_exists(path)

    def file_seconds(self, path: str) -> float | None:
        return self.host.file_seconds(path)

    def note(self, text: str) -> None:
        self.host.note(f"{self.channel.name}: {text}")

    def played(self, path: str) -> None:
        return None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class SimulatedCall:
    number: str
    technology: str
    trunk: str
    requested: str                 # the Originate Channel header, e.g. PJSIP/39..@trunk1
    context: str
    exten: str
    action_id: str | None
    channel_id: str | None
    variables: dict[str, str]
    timeout_seconds: float         # originate Timeout, already time-scaled
    plan: CallPlan
    attempt: int
    concurrent: int                # calls on this trunk when this one started
    send_response: bool = True     # Async originates get OriginateResponse
    started_at: dt.datetime = field(default_factory=_now)
    answered_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    outcome: str | None = None
    vote: str | None = None        # the poll option reported (AllertaVote)
    cause: int | None = None
    channels: list[ev.SimChannel] = field(default_factory=list)
    answered_event: asyncio.Event = field(default_factory=asyncio.Event)
    forgotten: bool = False        # set by a control reset: neither counted nor logged
    # Real Asterisk 22 sometimes sends the OriginateResponse of a call that fails
    # at once before the channel's Newchannel/Hangup (asterisk-ami.md, "Observed").
    response_first: bool = False
    response_sent: bool = False

    def log_record(self) -> dict[str, object]:
        iso = lambda t: t.isoformat() if t else None  # noqa: E731
        return {"number": self.number, "trunk": self.trunk, "channel": self.requested,
                "channel_id": self.channel_id, "action_id": self.action_id,
                "delivery": self.variables.get("ALLERTA_DELIVERY"), "attempt": self.attempt,
                "behaviour": self.plan.behaviour, "start": iso(self.started_at),
                "answer": iso(self.answered_at), "end": iso(self.ended_at),
                "outcome": self.outcome, "vote": self.vote, "cause": self.cause, "concurrent": self.concurrent}


class CallScript:
    """Plays one call's events on a host. ``run`` returns when the call is over."""

    def __init__(self, call: SimulatedCall, host: CallHost, speed: float) -> None:
        self.call = call
        self.host = host
        self.speed = speed   # time_scale: 0.01 makes a 10 s ring last 0.1 s

    async def _wait(self, seconds: float) -> None:
        await self.host.sleep(seconds * self.speed)

    def _originate_failed(self, reason: int) -> None:
        call = self.call
        if call.send_response and not call.response_sent:
            call.response_sent = True
            self.host.emit(ev.originate_response(
                call.action_id, False, call.requested, call.context, call.exten, reason,
                call.channel_id or "<unknown>"))

    def _originate_answered(self, channel: ev.SimChannel) -> None:
        call = self.call
        call.answered_at = _now()
        call.answered_event.set()
        if call.send_response:
            self.host.emit(ev.originate_response(call.action_id, True, channel.name, call.context,
                                                 call.exten, 4, channel.uniqueid))

    def _failure_reason(self, cause: int) -> int:
        if self.call.plan.behaviour == "unavailable":
            # The callee's side hung up with 19 before our timeout: Reason 0 (not 3).
            return REASON_FAILURE
        return originate_reason_for_cause(cause)

    async def run(self) -> None:
        call = self.call
        seq = self.host.new_sequence()
        uid = call.channel_id or self.host.new_uniqueid()
        behaviour = call.plan.behaviour
        if call.response_first and (behaviour in NOT_RINGING or behaviour == "over_limit"):
            self._originate_failed(self._failure_reason(FAILURES.get(behaviour, (34, ""))[0]))
        if call.technology.lower() == "local":
            await self._run_local(seq, uid)
        else:
            await self._run_trunk(seq, uid)
        call.ended_at = _now()

    # --- trunk technologies: one channel -----------------------------------------

    async def _run_trunk(self, seq: int, uid: str) -> None:
        call, emit = self.call, self.host.emit
        chan = ev.SimChannel(f"{call.technology}/{call.trunk}-{seq:08x}", uid, uid,
                             call.context, call.exten)
        call.channels = [chan]
        emit(ev.channel_event("Newchannel", chan))
        emit(ev.dial_event("DialBegin", chan, ("DialString", f"{call.number}@{call.trunk}")))
        behaviour = call.plan.behaviour
        if behaviour not in NOT_RINGING:
            await self._wait(0.3)
            chan.state = 5
            emit(ev.channel_event("Newstate", chan))
        failure = await self._ring(behaviour)
        if failure is not None:
            cause, dial_status = failure
            emit(ev.dial_event("DialEnd", chan, ("DialStatus", dial_status)))
            emit(ev.hangup(chan, cause))
            self._finish(cause)
            self._originate_failed(self._failure_reason(cause))
            return
        chan.state = 6
        emit(ev.channel_event("Newstate", chan))
        emit(ev.dial_event("DialEnd", chan, ("DialStatus", "ANSWER")))
        self._originate_answered(chan)
        run = await self._dialplan(chan)
        emit(ev.channel_event("SoftHangupRequest", chan, ("Cause", str(run.hangup_cause))))
        await run.run_hangup_handler()
        emit(ev.hangup(chan, run.hangup_cause))

    # --- Local channels: the ;1/;2 pair of the transcript -------------------------

    async def _run_local(self, seq: int, uid: str) -> None:
        call, emit = self.call, self.host.emit
        base = f"Local/{call.number}@{call.trunk}-{seq:08x}"
        # core_unreal.c: with a ChannelId and no OtherChannelId, ;2 gets "<id>;2".
        uid2 = f"{call.channel_id};2" if call.channel_id else self.host.new_uniqueid()
        one = ev.SimChannel(f"{base};1", uid, uid, call.trunk, call.number)
        two = ev.SimChannel(f"{base};2", uid2, uid, call.trunk, call.number, state=4)
        call.channels = [one, two]
        emit(ev.channel_event("Newchannel", one))
        emit(ev.channel_event("Newchannel", two))
        emit(ev.local_bridge(one, two, call.trunk, call.number))
        emit(ev.dial_event("DialBegin", one, ("DialString", f"{call.number}@{call.trunk}")))
        behaviour = call.plan.behaviour
        failure = await self._ring(behaviour)
        if failure is not None:
            cause, dial_status = failure
            if behaviour in ("busy", "congestion"):
                # Busy()/Congestion() send a control frame: Asterisk answers the
                # originate first and ;1 ends with cause 0 (see the transcript).
                self._originate_failed(self._failure_reason(cause))
                two.state = 7 if behaviour == "busy" else two.state
                if behaviour == "busy":
                    emit(ev.channel_event("Newstate", two))
                emit(ev.dial_event("DialEnd", one, ("DialStatus", dial_status)))
                emit(ev.channel_event("HangupRequest", two, ("Cause", "0")))
                emit(ev.channel_event("SoftHangupRequest", two, ("Cause", "16")))
                emit(ev.hangup(one, 0))
                emit(ev.hangup(two, cause))
                self._finish(cause)
                return
            emit(ev.channel_event("HangupRequest", two, ("Cause", str(cause))))
            emit(ev.channel_event("SoftHangupRequest", two, ("Cause", "16")))
            emit(ev.hangup(one, cause))
            emit(ev.hangup(two, cause))
            self._finish(cause)
            self._originate_failed(self._failure_reason(cause))
            return
        two.state, two.priority = 6, 2
        emit(ev.channel_event("Newstate", two))
        one.state = 6
        emit(ev.channel_event("Newstate", one))
        emit(ev.dial_event("DialEnd", one, ("DialStatus", "ANSWER")))
        self._originate_answered(one)
        one.context, one.exten = call.context, call.exten
        run = await self._dialplan(one)
        cause = str(run.hangup_cause)
        two.priority = 4
        emit(ev.channel_event("SoftHangupRequest", one, ("Cause", cause)))
        emit(ev.channel_event("HangupRequest", two, ("Cause", cause)))
        await run.run_hangup_handler()
        emit(ev.hangup(one, run.hangup_cause))
        emit(ev.channel_event("SoftHangupRequest", two, ("Cause", cause)))
        emit(ev.hangup(two, run.hangup_cause))

    # --- shared pieces ------------------------------------------------------------

    async def _ring(self, behaviour: str) -> tuple[int, str] | None:
        """Wait as the callee does; the (cause, DialStatus) of a failure or None if answered."""
        plan = self.call.plan
        if behaviour == "over_limit":
            return 34, "CONGESTION"
        if behaviour in NOT_RINGING:
            await self._wait(0.2)
            return FAILURES[behaviour]
        timeout = self.call.timeout_seconds
        if behaviour == "no_answer" or (behaviour not in FAILURES and
                                        plan.ring_seconds * self.speed >= timeout):
            await self.host.sleep(timeout)
            return FAILURES["no_answer"]
        await self._wait(plan.ring_seconds)
        if behaviour in FAILURES:
            return FAILURES[behaviour]
        return None

    async def _dialplan(self, chan: ev.SimChannel) -> ChannelRun:
        """Our rendered dialplan, interpreted on the answered channel against the callee."""
        call = self.call
        runtime = ChannelRuntime(self.host, chan, self.speed)
        run = ChannelRun(self.host.dialplan, runtime, callee_for(call.plan),
                         {**call.variables, "UNIQUEID": chan.uniqueid}, call.context, call.exten)
        call.cause = await run.run()
        # What the dialplan reported; a call that ended without a word is no delivery.
        call.outcome = runtime.result or "no_result"
        call.vote = runtime.vote
        return run

    def _finish(self, cause: int) -> None:
        behaviour = self.call.plan.behaviour
        self.call.outcome = "congestion" if behaviour == "over_limit" else behaviour
        self.call.cause = cause
