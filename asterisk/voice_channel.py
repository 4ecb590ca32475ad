"""The voice channel: alert calls through Asterisk, one AMI link, one or more trunks.

``submit`` places one call and returns only when it is over: the receipt
(confirmed, answered, voicemail) or ``DeliveryFailed`` carries the result
the dispatcher stores. Concurrency is capped and originates are paced per
trunk here, because Asterisk does neither (shared/reference/asterisk-ami.md).

Never re-originates by itself: when the AMI link drops, calls that are still
up are followed after the reconnect (CoreShowChannels), and calls that
vanished meanwhile fail with ``possible_duplicate`` so the dispatcher, who
knows the retry policy, decides whether to call again.

A refused AMI login (a wrong secret) is not raised by ``start``: it is logged
as an error, every trunk is reported down with ``LOGIN_REFUSED`` (the ami_down
alarm follows) and the login is retried slowly, so the SMS channel beside us
keeps working under systemd's Restart=always instead of the whole engine
crash-looping. Only with ``stop_on_login_refusal`` (``allerta run --once``
with no other channel, where nothing could go out) does ``start`` raise
``AmiAuthError``. An unreachable PBX is never raised: the trunks are reported
down and the link is retried in the background, as for a modem that is not
plugged in yet.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from asterisk.ami_client import (AmiAuthError, AmiClient, AmiError, AmiLinkDown,
                                 AmiOriginateRejected, AmiSettings, AmiUnreachable)
from asterisk.ami_protocol import AmiMessage
from asterisk.call_tracker import CallTracker
from asterisk.trunks import Clock, ConcurrencyThrottle, TokenBucket, TrunkConfig, TrunkFailureWindow
from gateway.core.channels import ChannelEvents, DeliveryFailed, LineStatus, OutboundMessage, SubmitReceipt
from gateway.core.failures import Failure, FailureKind
from gateway.core.states import AttemptOutcome, Channel, DuplicateCause, LineState

log = logging.getLogger(__name__)

FATE_UNKNOWN = "call fate unknown after the AMI link was lost"
_CHANNEL_ID = re.compile(r"^allerta-(\d+)-([0-9a-f]+)-([A-Za-z0-9_.-]{1,64})$")
# AstDB family our dialplan writes a call's result to, keyed by its Uniqueid (our ChannelId).
ASTDB_FAMILY = "allerta"
# ... and the key pressed for the poll after the message: "<option> <epoch seconds>".
VOTE_FAMILY = "allerta-vote"
LOGIN_REFUSED = "AMI login refused (check [asterisk] secret)"
# Asterisk's Playback takes a file name without its extension and picks the
# format itself; a name given with one is looked up as "<name>.wav.<format>".
_SOUND_EXTENSIONS = (".wav", ".wav16", ".sln", ".sln16", ".gsm", ".ulaw", ".alaw", ".g722")


def playback_name(audio_path: str) -> str:
    """What ``Playback()`` needs for a file we rendered: its path without extension."""
    for extension in _SOUND_EXTENSIONS:
        if audio_path.lower().endswith(extension):
            return audio_path[:-len(extension)]
    return audio_path


@dataclass(frozen=True)
class VoiceSettings:
    ami: AmiSettings
    trunks: tuple[TrunkConfig, ...]
    context: str = "allerta-outbound"       # asterisk/conf/extensions_allerta.conf
    default_audio: str = "allerta-default"  # played when a message has no audio of its own
    amd: bool = True                        # detect answering machines (ALLERTA_AMD)
    ring_timeout_ms: int = 30000            # Originate Timeout
    end_margin_seconds: float = 30.0        # no end event this long after the ring timeout: failed
    max_call_seconds: float = 300.0         # an answered call may last this long
    end_grace_seconds: float = 2.0          # wait this long for the rest of a call's end events, in any order
    estimated_call_seconds: float = 45.0    # ring + message, until real calls were measured
    recovery_seconds: float = 30.0          # a throttled trunk regains one channel this often
    slot_wait_seconds: float = 60.0         # a submit with no free trunk waits this long
    reconcile_retry_seconds: float = 5.0    # CoreShowChannels failed after a reconnect: ask again
    stop_timeout: float = 60.0              # stop() waits this long for calls in flight

    def __post_init__(self) -> None:
        if not self.trunks:
            raise ValueError("the voice channel needs at least one trunk")
        names = [trunk.name for trunk in self.trunks]
        if len(set(names)) != len(names):
            raise ValueError(f"voice trunk names must be unique, got {names}")
        if "," in self.default_audio:
            raise ValueError("default_audio must not contain commas")
        if self.ring_timeout_ms < 1000:
            raise ValueError("ring_timeout_ms must be at least 1000")


class _Trunk:
    """A trunk's runtime state: channels in use, pacing, back-off, counters."""

    def __init__(self, config: TrunkConfig, clock: Clock, recovery_seconds: float) -> None:
        self.config = config
        self.bucket = TokenBucket(config.calls_per_second, clock)
        self.throttle = ConcurrencyThrottle(config.max_channels, clock, recovery_seconds)
        self.failures = TrunkFailureWindow(clock)
        self.in_use = 0
        self.inbound = 0                   # hotline calls in progress on this trunk
        self.last_error: str | None = None
        self.sent_total = 0
        self.failed_total = 0
        self.recovery_timer: asyncio.TimerHandle | None = None
        self.token_timer: asyncio.TimerHandle | None = None

    @property
    def name(self) -> str:
        return self.config.name

    def limit(self) -> int:
        """Channels our calls may hold now: the back-off, and what the hotline keeps or holds."""
        return min(self.throttle.effective(), self.config.outbound_limit(self.inbound))

    def free(self) -> int:
        channels = self.limit() - self.in_use
        return max(0, min(channels, self.bucket.available()))

    def free_channels(self) -> int:
        return max(0, self.limit() - self.in_use)


@dataclass(eq=False)
class _Call:
    message: OutboundMessage
    trunk: _Trunk
    channel_id: str
    started_at: dt.datetime
    started_mono: float
    result: asyncio.Future[SubmitReceipt]
    tracker: CallTracker
    unsubscribe: Callable[[], None] = lambda: None
    deadline: asyncio.TimerHandle | None = None
    grace: asyncio.TimerHandle | None = None
    check_after_reconnect: bool = False
    # A call of an earlier run of the engine, still up when this one started.
    orphan: bool = False


def make_channel_id(delivery_id: int, attempt_id: int | None, trunk: str) -> str:
    attempt = str(attempt_id) if attempt_id is not None else uuid.uuid4().hex[:8]
    return f"allerta-{delivery_id}-{attempt}-{trunk}"


def parse_channel_id(channel_id: str) -> tuple[int, int | None, str] | None:
    """(delivery id, attempt id or None, trunk) of one of our ChannelIds, else None."""
    match = _CHANNEL_ID.match(channel_id)
    if match is None:
        return None
    attempt = match.group(2)
    return int(match.group(1)), int(attempt) if attempt.isdigit() else None, match.group(3)


def _outcome_of(result: asyncio.Future[SubmitReceipt]) -> tuple[AttemptOutcome | None, str | None,
                                                               dt.datetime | None, int | None]:
    """(outcome, line, answered at, cause) of a finished call's result."""
    if result.cancelled() or not result.done():
        return None, None, None, None
    error = result.exception()
    if isinstance(error, DeliveryFailed):
        return error.outcome, error.line, error.answered_at, error.cause
    if error is not None:
        return None, None, None, None
    receipt = result.result()
    return AttemptOutcome(receipt.outcome), receipt.line, receipt.answered_at, receipt.cause


def _line_failure(text: str) -> Failure:
    """Our side (the trunk, the AMI link, this channel) failed: the callee had no part in it."""
    return Failure(FailureKind.LINE, text)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class VoiceChannel:
    name = Channel.VOICE

    def __init__(self, settings: VoiceSettings, *, clock: Clock = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._trunks = [_Trunk(config, clock, settings.recovery_seconds) for config in settings.trunks]
        self._client: AmiClient | None = None
        self._events: ChannelEvents | None = None
        self._calls: dict[str, _Call] = {}
        self._link_up = False
        self._ready = False          # link up and calls of the previous link reconciled
        self._stopping = False
        self._waiters: list[asyncio.Future[None]] = []
        self._reported: dict[str, LineStatus] = {}
        self._average_call_seconds = settings.estimated_call_seconds
        self._reconcile_task: asyncio.Task[None] | None = None
        # Until the PBX was asked which of our calls are up, nothing is dialled (a restart
        # after kill -9 must not ring people a second time while their first call goes on).
        self._adopted = False
        self._orphans: dict[int, _Call] = {}     # delivery id -> its call from an earlier run
        # Set by the composition root for 'allerta run --once' with voice alone.
        self.stop_on_login_refusal = False

    # --- lifecycle ------------------------------------------------------------------

    async def start(self, events: ChannelEvents) -> None:
        self._events = events
        self._client = AmiClient(self.settings.ami, on_link=self._on_link, on_shutdown=self._on_pbx_shutdown)
        try:
            await self._client.connect()
            # The link is up: ask which of our calls are still up (start-up reconciliation)
            # before saying how many slots are free, so nothing is dialled twice.
            if self._reconcile_task is not None:
                await asyncio.wait({self._reconcile_task}, timeout=self.settings.ami.action_timeout * 2)
        except AmiAuthError as exc:
            # The error names host, port and user; the secret never reaches a log.
            log.error("voice channel: %s ([asterisk] username and secret); the voice lines are down, "
                      "other channels keep running, the login is retried every %g s",
                      exc, self.settings.ami.auth_retry_seconds)
            self._set_error_all(LOGIN_REFUSED)
            self._report_lines()
            if self.stop_on_login_refusal:
                await self._client.close()
                raise
            self._client.reconnect_in_background()
        except AmiUnreachable as exc:
            log.warning("voice channel: %s; retrying in the background", exc)
            self._set_error_all(str(exc))
            self._report_lines()
            self._client.reconnect_in_background()

    async def stop(self) -> None:
        """Refuse new calls, wait up to ``stop_timeout`` for calls in flight, log off."""
        self._stopping = True
        pending = [call.result for call in self._calls.values()]
        if pending:
            await asyncio.wait(pending, timeout=self.settings.stop_timeout)
        for call in list(self._calls.values()):
            self._fail(call, DeliveryFailed(
                _line_failure("the gateway stopped before the call ended; it may still be in progress"),
                line=call.trunk.name, charge_attempt=False, possible_duplicate=True,
                duplicate_cause=DuplicateCause.ENGINE_STOPPED))
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        for handle in [t.recovery_timer for t in self._trunks] + [t.token_timer for t in self._trunks]:
            if handle is not None:
                handle.cancel()
        if self._reconcile_task is not None:
            self._reconcile_task.cancel()
        if self._client is not None:
            await self._client.close()
        self._link_up = self._ready = False
        self._report_lines()

    # --- capacity -------------------------------------------------------------------

    def free_slots(self) -> int:
        if not self._ready or self._stopping:
            return 0
        return sum(trunk.free() for trunk in self._trunks)

    def _trunk_rate(self, trunk: _Trunk) -> float:
        if not self._ready:
            return 0.0
        by_channels = trunk.limit() * 60.0 / max(self._average_call_seconds, 1.0)
        return min(by_channels, trunk.config.calls_per_second * 60.0)

    def rate_per_minute(self) -> float:
        return sum(self._trunk_rate(trunk) for trunk in self._trunks)

    def inbound_changed(self, channel: str, delta: int) -> None:
        """A hotline call started (+1) or ended (-1) on ``channel``: it counts against its trunk
        (the only trunk when the channel name does not say which)."""
        trunks = [t for t in self._trunks if t.config.carries(channel)] or (
            self._trunks if len(self._trunks) == 1 else [])
        if not trunks:
            log.warning("hotline call on %s: no configured trunk carries it; not counted", channel)
            return
        trunk = trunks[0]
        trunk.inbound = max(0, trunk.inbound + delta)
        self._report_line(trunk)
        if delta < 0:
            self._notify_capacity()

    def _notify_capacity(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()
        if self._events is not None and self.free_slots() > 0:
            self._events.capacity_available()

    def _schedule_token_wakeup(self, trunk: _Trunk) -> None:
        # Someone may be waiting for this trunk's next token: tell them when it comes.
        delay = trunk.bucket.seconds_until_token()
        if trunk.token_timer is not None:
            trunk.token_timer.cancel()
        trunk.token_timer = asyncio.get_running_loop().call_later(delay, self._notify_capacity)

    def _schedule_recovery(self, trunk: _Trunk) -> None:
        if trunk.recovery_timer is not None:
            trunk.recovery_timer.cancel()
            trunk.recovery_timer = None
        delay = trunk.throttle.seconds_until_next_step()
        if delay is None:
            return

        def step() -> None:
            trunk.recovery_timer = None
            self._report_line(trunk)
            self._notify_capacity()
            self._schedule_recovery(trunk)
        trunk.recovery_timer = asyncio.get_running_loop().call_later(delay, step)

    def _pick_trunk(self, candidates: Sequence[_Trunk], avoid: frozenset[str]) -> _Trunk | None:
        free = [trunk for trunk in candidates if trunk.free() > 0]
        preferred = [trunk for trunk in free if trunk.name not in avoid] or free
        if not preferred:
            return None
        return max(preferred, key=_Trunk.free_channels)

    async def _claim_trunk(self, candidates: Sequence[_Trunk], avoid: frozenset[str]) -> _Trunk:
        """Take a channel and a token on the best free trunk, waiting if none is free."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.slot_wait_seconds
        while True:
            if self._stopping:
                raise DeliveryFailed(_line_failure("the voice channel is stopping"), charge_attempt=False)
            trunk = self._pick_trunk(candidates, avoid) if self._ready else None
            if trunk is not None:
                trunk.bucket.take()
                trunk.in_use += 1
                self._schedule_token_wakeup(trunk)
                return trunk
            left = deadline - loop.time()
            if left <= 0:
                raise DeliveryFailed(
                    Failure(FailureKind.NO_LINE, "no voice trunk free" + ("" if self._ready else " (AMI link down)")),
                    outcome=AttemptOutcome.NO_LINE, charge_attempt=False)
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, left)
            except asyncio.TimeoutError:
                pass

    # --- submit ---------------------------------------------------------------------

    async def submit(self, message: OutboundMessage) -> SubmitReceipt:
        if self._client is None:
            raise DeliveryFailed(_line_failure("the voice channel was not started"), charge_attempt=False)
        candidates, dial_strings = self._routes(message)
        orphan = self._orphans.pop(message.delivery_id, None)
        if orphan is not None:
            await self._after_orphan(message, orphan)
        trunk = await self._claim_trunk(candidates, message.avoid_lines)
        loop = asyncio.get_running_loop()
        # Names the delivery, the attempt and the trunk, so an engine restarted after a
        # crash finds its calls still up (CoreShowChannels) and knows what they were.
        channel_id = make_channel_id(message.delivery_id, message.attempt_id, trunk.name)
        call = _Call(message=message, trunk=trunk, channel_id=channel_id, started_at=_now(),
                     started_mono=loop.time(), result=loop.create_future(),
                     tracker=CallTracker(channel_id))
        # A submitter cancelled mid-call never reads the result; keep asyncio quiet.
        call.result.add_done_callback(lambda f: f.cancelled() or f.exception())
        # Subscribe before originating: events may arrive with the acknowledgement.
        call.unsubscribe = self._client.subscribe(channel_id, lambda event: self._on_event(call, event))
        self._calls[channel_id] = call
        self._arm_deadline(call, self.settings.ring_timeout_ms / 1000 + self.settings.end_margin_seconds)
        self._report_line(trunk)
        # The dialplan plays ${ALLERTA_AUDIO} as it is: the absolute path the alert's
        # audio was rendered to (asterisk/conf/extensions_allerta.conf).
        audio = playback_name(message.audio_path) if message.audio_path else self.settings.default_audio
        variables = {"ALLERTA_DELIVERY": str(message.delivery_id),
                     "ALLERTA_AUDIO": audio,
                     "ALLERTA_AMD": "1" if self.settings.amd else "0",
                     # The dialplan asks the poll after the message when this is above 0.
                     "ALLERTA_POLL": str(message.poll_options)}
        try:
            await self._client.originate(
                dial_strings[trunk.name], self.settings.context, "s", 1, trunk.config.caller_id,
                variables, channel_id, self.settings.ring_timeout_ms)
        except AmiOriginateRejected as exc:
            reason = f"Asterisk refused the call on trunk {trunk.name}: {exc}"
            self._trunk_failed(trunk, reason)
            self._fail(call, DeliveryFailed(_line_failure(reason), line=trunk.name, charge_attempt=False))
        except AmiLinkDown as exc:
            if exc.sent:
                # The Originate may have been placed: the reconnect decides.
                call.check_after_reconnect = True
            else:
                self._fail(call, DeliveryFailed(_line_failure(str(exc)), line=trunk.name, charge_attempt=False))
        except asyncio.TimeoutError:
            # No acknowledgement: the call may exist. Its events or its deadline end it.
            log.warning("no acknowledgement for the Originate of %s", channel_id)
        except ValueError as exc:
            self._fail(call, DeliveryFailed(_line_failure(f"cannot originate: {exc}"), line=trunk.name,
                                            charge_attempt=False))
        return await asyncio.shield(call.result)

    def _routes(self, message: OutboundMessage) -> tuple[list[_Trunk], dict[str, str]]:
        allowed = [trunk for trunk in self._trunks if trunk.config.allows(message.number)]
        if not allowed:
            raise DeliveryFailed(Failure(FailureKind.NUMBER, f"no voice trunk is allowed to call {message.number}",
                                         permanent=True), outcome=AttemptOutcome.NO_ROUTE, charge_attempt=False)
        dial_strings: dict[str, str] = {}
        errors = []
        for trunk in allowed:
            try:
                dial_strings[trunk.name] = trunk.config.dial_string(message.number)
            except ValueError as exc:
                errors.append(str(exc))
        if not dial_strings:
            raise DeliveryFailed(Failure(FailureKind.NUMBER, errors[0], permanent=True),
                                 outcome=AttemptOutcome.INVALID_NUMBER, charge_attempt=True)
        return [trunk for trunk in allowed if trunk.name in dial_strings], dial_strings

    # --- one call's events ----------------------------------------------------------

    def _on_event(self, call: _Call, event: AmiMessage) -> None:
        if call.result.done():
            return
        was_answered = call.tracker.answered
        call.tracker.feed(event, _now())
        vote = call.tracker.take_vote()
        if vote is not None:
            self._report_vote(call.message.delivery_id, vote, _now())
        if call.tracker.answered and not was_answered:
            self._arm_deadline(call, self.settings.max_call_seconds + self.settings.end_margin_seconds)
        if call.tracker.ended:
            self._finish_from_events(call)
        elif call.tracker.settling and call.grace is None:
            call.grace = asyncio.get_running_loop().call_later(
                self.settings.end_grace_seconds, self._finish_from_events, call)

    def _report_vote(self, delivery_id: int, option: int, at: dt.datetime) -> None:
        """A key pressed for the poll: counted at once, whatever the call comes to."""
        if self._events is not None:
            self._events.poll_vote(delivery_id, option, at.astimezone(dt.timezone.utc).replace(tzinfo=None))

    def _arm_deadline(self, call: _Call, seconds: float) -> None:
        if call.deadline is not None:
            call.deadline.cancel()
        call.deadline = asyncio.get_running_loop().call_later(seconds, self._deadline_passed, call)

    def _deadline_passed(self, call: _Call) -> None:
        if call.result.done():
            return
        if not self._link_up or call.check_after_reconnect:
            self._fail(call, self._fate_unknown(call))
            return
        tracker = call.tracker
        waited = asyncio.get_running_loop().time() - call.started_mono
        reason = f"no end of the call seen on trunk {call.trunk.name} after {waited:.0f} s"
        # No channel at all means our side failed; an answered call may have been heard.
        self._fail(call, DeliveryFailed(_line_failure(reason), line=call.trunk.name,
                                        charge_attempt=bool(tracker.channels),
                                        possible_duplicate=tracker.answered,
                                        duplicate_cause=DuplicateCause.NO_END_SEEN))

    def _fate_unknown(self, call: _Call) -> DeliveryFailed:
        return DeliveryFailed(_line_failure(FATE_UNKNOWN), line=call.trunk.name,
                              charge_attempt=False, possible_duplicate=True,
                              duplicate_cause=DuplicateCause.AMI_LINK_LOST)

    def _finish_from_events(self, call: _Call) -> None:
        if call.result.done():
            return
        outcome = call.tracker.outcome()
        trunk = call.trunk
        # No channel was ever created: the trunk itself refused (no circuit on our side).
        ours = outcome.trunk_side and not call.tracker.channels
        trunk_failing = trunk.failures.record(call.message.number, outcome.trunk_side) or ours
        if outcome.delivered:
            receipt = SubmitReceipt(line=trunk.name, outcome=outcome.outcome,
                                    started_at=call.started_at,
                                    answered_at=call.tracker.answered_at, ended_at=_now(), cause=outcome.cause)
            trunk.sent_total += 1
            self._release(call)
            call.result.set_result(receipt)
            return
        if trunk_failing:
            self._trunk_failed(trunk, outcome.reason)
        elif outcome.trunk_side:
            # One destination's exchange is congested: that number is retried, the
            # trunk keeps its channels for everybody else.
            log.info("voice trunk %s: %s for one number only; concurrency kept", trunk.name, outcome.reason)
        elif outcome.line_fault:
            # Our dialplan or audio is broken, not the trunk: show it, keep the concurrency.
            trunk.last_error = outcome.reason
            log.warning("voice trunk %s: %s", trunk.name, outcome.reason)
        self._fail(call, DeliveryFailed(outcome.failure, outcome=outcome.outcome, line=trunk.name,
                                        charge_attempt=outcome.charge_attempt, cause=outcome.cause))

    def _fail(self, call: _Call, failure: DeliveryFailed) -> None:
        if call.result.done():
            return
        # What the attempt row stores: when we originated, when (if) it was answered,
        # and the Q.850 cause when one was seen, whatever ended the call.
        failure.started_at = failure.started_at or call.started_at
        failure.answered_at = failure.answered_at or call.tracker.answered_at
        if failure.cause is None:
            failure.cause = call.tracker.cause
        call.trunk.failed_total += 1
        self._release(call)
        call.result.set_exception(failure)

    def _release(self, call: _Call) -> None:
        """The call is over: free its channel and stop following it."""
        for handle in (call.deadline, call.grace):
            if handle is not None:
                handle.cancel()
        call.unsubscribe()
        if self._calls.pop(call.channel_id, None) is None:
            return
        call.trunk.in_use -= 1
        seconds = asyncio.get_running_loop().time() - call.started_mono
        # A moving average: recent calls say more about today's callees.
        self._average_call_seconds += 0.1 * (seconds - self._average_call_seconds)
        self._report_line(call.trunk)
        self._notify_capacity()

    def _trunk_failed(self, trunk: _Trunk, reason: str) -> None:
        trunk.throttle.penalize()
        trunk.last_error = (f"{reason}; concurrency lowered to {trunk.throttle.effective()} "
                            f"of {trunk.config.max_channels}")
        log.warning("voice trunk %s: %s", trunk.name, trunk.last_error)
        self._schedule_recovery(trunk)

    # --- the AMI link ---------------------------------------------------------------

    def _on_pbx_shutdown(self) -> None:
        """Our PBX is going away: every call it had ends by our doing, not the recipient's."""
        log.warning("Asterisk is shutting down (Shutdown event): %d calls end without charging anybody",
                    len(self._calls))
        for call in list(self._calls.values()):
            call.tracker.pbx_shutdown = True
            if call.tracker.all_hung_up or call.tracker.settling:
                self._finish_from_events(call)

    def _on_link(self, up: bool, reason: str) -> None:
        if not up:
            self._link_up = self._ready = False
            for call in list(self._calls.values()):
                if call.tracker.pbx_shutdown:
                    # The PBX said it was going: the call is gone with it, nothing to reconcile.
                    self._finish_from_events(call)
                else:
                    call.check_after_reconnect = True
            refused = self._client is not None and self._client.login_refused
            self._set_error_all(LOGIN_REFUSED if refused else reason)
            self._report_lines()
            return
        self._link_up = True
        if self._adopted and not any(call.check_after_reconnect for call in self._calls.values()):
            self._link_ready()
            return
        if self._reconcile_task is None or self._reconcile_task.done():
            self._reconcile_task = asyncio.get_running_loop().create_task(self._reconcile())

    async def _reconcile(self) -> None:
        """After a reconnect: follow the calls still up, close those that vanished.

        Nothing is originated until this is done, so a CoreShowChannels that
        fails while the link stays up is asked again after a delay: returning
        would leave the channel with no free slot until the next disconnect.
        """
        assert self._client is not None
        while self._link_up:
            to_check = [call for call in self._calls.values() if call.check_after_reconnect]
            if not to_check and self._adopted:
                break
            try:
                channels = await self._client.core_show_channels()
            except (AmiError, asyncio.TimeoutError) as exc:
                # If the link was lost meanwhile, the reconnect asks again.
                log.warning("CoreShowChannels after reconnect failed: %s; asking again in %g s",
                            exc or "timed out", self.settings.reconcile_retry_seconds)
                await asyncio.sleep(self.settings.reconcile_retry_seconds)
                continue
            present = {value.split(";", 1)[0] for channel in channels
                       for key, value in channel.items() if key.lower() in ("uniqueid", "linkedid")}
            if not self._adopted:
                self._adopt(channels)
                await self._sweep_astdb(present)
                await self._sweep_votes(present)
                self._adopted = True
            for call in to_check:
                if call.result.done() or not self._link_up:
                    continue
                call.check_after_reconnect = False
                if call.channel_id in present:
                    log.info("call %s survived the AMI reconnect", call.channel_id)
                    if call.tracker.played is False:
                        call.tracker.played = None   # AllertaPlaying may have come in the gap
                    continue
                if call.tracker.played is False:
                    call.tracker.played = None       # the same for a call that ended in the gap
                if call.message.poll_options:
                    await self._recover_vote(call.channel_id)
                if call.tracker.user_result is None and await self._recover_result(call):
                    self._finish_from_events(call)
                elif call.tracker.outcome_seen:
                    self._finish_from_events(call)
                else:
                    self._fail(call, self._fate_unknown(call))
            break
        if self._link_up:
            self._link_ready()

    def _adopt(self, channels: list[dict[str, str]]) -> None:
        """At start-up: our calls from before a restart that are still up are followed to
        their end, and count against their trunk's limit and their number meanwhile."""
        assert self._client is not None
        by_id: dict[str, list[AmiMessage]] = {}
        for channel in channels:
            base = (channel.get("Uniqueid") or "").split(";", 1)[0]
            if parse_channel_id(base) is not None and base not in self._calls:
                by_id.setdefault(base, []).append(AmiMessage(pairs=list(channel.items())))
        loop = asyncio.get_running_loop()
        for channel_id, snapshots in by_id.items():
            parsed = parse_channel_id(channel_id)
            assert parsed is not None
            delivery_id, attempt_id, trunk_name = parsed
            trunk = next((t for t in self._trunks if t.name == trunk_name), self._trunks[0])
            call = _Call(message=OutboundMessage(delivery_id=delivery_id, alert_id=0, number="", text="",
                                                 attempt_id=attempt_id),
                         trunk=trunk, channel_id=channel_id, started_at=_now(), started_mono=loop.time(),
                         result=loop.create_future(), tracker=CallTracker(channel_id), orphan=True)
            call.tracker.played = None   # what happened before this start is unknown
            for snapshot in snapshots:
                call.tracker.feed(snapshot, _now())
            call.result.add_done_callback(lambda f, call=call: self._orphan_ended(call, f))
            call.unsubscribe = self._client.subscribe(channel_id, lambda event, call=call: self._on_event(call, event))
            self._calls[channel_id] = call
            self._orphans[delivery_id] = call
            trunk.in_use += 1
            self._arm_deadline(call, self.settings.max_call_seconds + self.settings.end_margin_seconds)
        if by_id:
            log.warning("%d calls from before the engine restarted are still up: following them, "
                        "not calling those numbers again meanwhile", len(by_id))
            self._report_lines()

    async def _after_orphan(self, message: OutboundMessage, orphan: _Call) -> None:
        """A submit for a delivery whose call from before the restart was found up: never a
        second call at the same time. Wait for that call to end; if it was confirmed, there
        is nothing left to do (its attempt carries the confirmation, the store keeps the best)."""
        if not orphan.result.done():
            log.info("delivery %d: its call %s from before the restart is still up; waiting for its end "
                     "before calling again", message.delivery_id, orphan.channel_id)
            await asyncio.wait({orphan.result})
        if _outcome_of(orphan.result)[0] == AttemptOutcome.CONFIRMED:
            raise DeliveryFailed(
                Failure(FailureKind.NO_LINE, f"not called again: confirmed on call {orphan.channel_id}, "
                                             "up across the engine restart"),
                outcome=AttemptOutcome.NO_LINE, line=orphan.trunk.name, charge_attempt=False)

    async def _read_family(self, family: str, missed: str) -> dict[str, str]:
        """Every entry of AstDB ``family`` at start-up; none (logged) when it cannot be read."""
        assert self._client is not None
        try:
            return await self._client.db_get_tree(family)
        except (AmiError, asyncio.TimeoutError) as exc:
            log.warning("cannot read AstDB family %s at start-up (%s): %s made while the engine was away "
                        "may be missed", family, exc or "timed out", missed)
            return {}

    async def _forget(self, family: str, key: str) -> None:
        """Delete an AstDB entry once read, so nothing counts it again."""
        assert self._client is not None
        try:
            await self._client.db_del(family, key)
        except (AmiError, asyncio.TimeoutError) as exc:
            log.warning("DBDel %s/%s failed: %s", family, key, exc or "timed out")

    async def _sweep_astdb(self, present: set[str]) -> None:
        """At start-up: results our dialplan stored in AstDB for calls that ended while no
        engine listened (after a kill -9, before this start). Each reaches its attempt, and
        the entry is deleted; entries of calls still up are left for their own end."""
        assert self._events is not None
        for channel_id, value in (await self._read_family(ASTDB_FAMILY, "a confirmation")).items():
            parsed = parse_channel_id(channel_id)
            if parsed is None or channel_id in present:
                continue
            delivery_id, attempt_id, trunk = parsed
            if value.strip().lower() == "confirmed" and attempt_id is not None:
                log.info("call %s was confirmed while the engine was away (AstDB)", channel_id)
                self._events.late_call_outcome(delivery_id, attempt_id, AttemptOutcome.CONFIRMED, line=trunk,
                                               answered_at=None, cause=None)
            await self._forget(ASTDB_FAMILY, channel_id)

    async def _sweep_votes(self, present: set[str]) -> None:
        """At start-up: keys pressed for a poll in calls that ended while no engine listened.
        Counting one again is harmless (the same vote, or older than the one counted)."""
        for channel_id, value in (await self._read_family(VOTE_FAMILY, "a vote")).items():
            if channel_id not in present:
                self._stored_vote(channel_id, value)
                await self._forget(VOTE_FAMILY, channel_id)

    async def _recover_vote(self, channel_id: str) -> None:
        """The poll's key our dialplan left in AstDB for a call that ended while the link was
        down: counted with the time it was pressed (a later vote by SMS still wins)."""
        assert self._client is not None
        try:
            value = await self._client.db_get(VOTE_FAMILY, channel_id)
        except (AmiError, asyncio.TimeoutError) as exc:
            log.warning("DBGet %s/%s after reconnect failed: %s", VOTE_FAMILY, channel_id, exc or "timed out")
            return
        if value is not None:
            self._stored_vote(channel_id, value)
            await self._forget(VOTE_FAMILY, channel_id)

    def _stored_vote(self, channel_id: str, value: str) -> None:
        parsed = parse_channel_id(channel_id)
        parts = value.split()
        if parsed is None or not parts or not parts[0].isdigit():
            log.warning("AstDB %s/%s holds %r: not a vote of ours, ignored", VOTE_FAMILY, channel_id, value)
            return
        try:
            at = dt.datetime.fromtimestamp(int(parts[1]), dt.timezone.utc) if len(parts) > 1 else _now()
        except (ValueError, OverflowError):
            at = _now()
        log.info("call %s: vote %s read back from AstDB", channel_id, parts[0])
        self._report_vote(parsed[0], int(parts[0]), at)

    def _orphan_ended(self, call: _Call, result: asyncio.Future[SubmitReceipt]) -> None:
        attempt_id = call.message.attempt_id
        if self._stopping or result.cancelled() or attempt_id is None or self._events is None:
            return
        outcome, line, answered_at, cause = _outcome_of(result)
        if outcome is not None:
            # Its own attempt row learns it, whether or not a new submit is waiting.
            self._events.late_call_outcome(call.message.delivery_id, attempt_id, outcome, line=line,
                                           answered_at=answered_at, cause=cause)

    async def _recover_result(self, call: _Call) -> bool:
        """Read what our dialplan left in AstDB for a call that ended while the link was down.

        The dialplan does ``Set(DB(allerta/${UNIQUEID})=confirmed)`` before its
        AllertaResult event, and AstDB outlives the AMI link: a person who pressed 1
        during the gap is confirmed, not called again. The entry is deleted once read.
        """
        assert self._client is not None
        try:
            value = await self._client.db_get(ASTDB_FAMILY, call.channel_id)
        except (AmiError, asyncio.TimeoutError) as exc:
            log.warning("DBGet %s/%s after reconnect failed: %s", ASTDB_FAMILY, call.channel_id,
                        exc or "timed out")
            return False
        if value is None:
            return False
        log.info("call %s ended during the AMI gap; its result was recovered from AstDB: %s",
                 call.channel_id, value)
        call.tracker.recover_result(value)
        await self._forget(ASTDB_FAMILY, call.channel_id)
        return True

    def _link_ready(self) -> None:
        self._ready = True
        self._report_lines()
        self._notify_capacity()

    # --- line status ----------------------------------------------------------------

    def _set_error_all(self, error: str) -> None:
        for trunk in self._trunks:
            trunk.last_error = error

    def _status(self, trunk: _Trunk) -> LineStatus:
        return LineStatus(channel=Channel.VOICE, label=trunk.name,
                          state=LineState.UP if self._link_up else LineState.DOWN,
                          last_error=trunk.last_error, sent_total=trunk.sent_total,
                          failed_total=trunk.failed_total, in_use=trunk.in_use,
                          limit=trunk.limit(),
                          rate_per_minute=self._trunk_rate(trunk))

    def lines(self) -> list[LineStatus]:
        return [self._status(trunk) for trunk in self._trunks]

    def _report_line(self, trunk: _Trunk) -> None:
        status = self._status(trunk)
        if self._reported.get(trunk.name) == status:
            return
        self._reported[trunk.name] = dataclasses.replace(status)
        if self._events is not None:
            self._events.line_status(status)

    def _report_lines(self) -> None:
        for trunk in self._trunks:
            self._report_line(trunk)
