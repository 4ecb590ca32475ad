"""Voice channel pieces without the simulator: pacing, back-off, routing, event
tracking, and the AMI client against a scripted fake server (half-open link,
an Originate that must not be resent after a reconnect, a call with no end)."""
from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

import pytest

from asterisk.ami_client import AmiClient, AmiSettings
from asterisk.ami_protocol import AmiMessage, parse_messages, serialize
from asterisk.call_tracker import CallTracker
from asterisk.trunks import ConcurrencyThrottle, TokenBucket, TrunkConfig, TrunkFailureWindow
from asterisk.voice_channel import FATE_UNKNOWN, VoiceChannel, VoiceSettings, playback_name
from gateway.core.channels import DeliveryFailed, OutboundMessage
from tests.support import FakeClock
from tests.test_voice_channel import EventsRecorder


def test_token_bucket_paces_originates():
    clock = FakeClock()
    bucket = TokenBucket(4.0, clock)
    assert bucket.available() == 1
    bucket.take()
    assert bucket.available() == 0 and bucket.seconds_until_token() == pytest.approx(0.25)
    clock.now += 0.25
    assert bucket.available() == 1
    clock.now += 10   # saving up does not allow a burst
    assert bucket.available() == 1


def test_throttle_halves_and_recovers_one_step_at_a_time():
    clock = FakeClock()
    throttle = ConcurrencyThrottle(8, clock, recovery_seconds=30)
    throttle.penalize()
    assert throttle.effective() == 4
    throttle.penalize()
    assert throttle.effective() == 2
    clock.now += 30
    assert throttle.effective() == 3 and throttle.seconds_until_next_step() == pytest.approx(30)
    clock.now += 300
    assert throttle.effective() == 8 and throttle.seconds_until_next_step() is None
    for _ in range(5):
        throttle.penalize()
    assert throttle.effective() == 1   # never zero: the trunk must be able to recover


def test_trunk_routing_rules():
    landline = TrunkConfig("isdn", "DAHDI/g0/{number}", allowed="landline", number_format="national")
    assert landline.allows("+390612345678") and not landline.allows("+393331234567")
    assert landline.dial_string("+390612345678") == "DAHDI/g0/0612345678"
    italy = TrunkConfig("voip", "PJSIP/{number}@voip", allowed="prefixes", prefixes=("+39",))
    assert italy.allows("+393331234567") and not italy.allows("+41791234567")
    with pytest.raises(ValueError, match="at least one prefix"):
        TrunkConfig("voip", "PJSIP/{number}@voip", allowed="prefixes")
    with pytest.raises(ValueError, match="prefix '39'"):
        TrunkConfig("voip", "PJSIP/{number}@voip", allowed="prefixes", prefixes=("39",))
    with pytest.raises(ValueError, match="duplicate|unique"):
        VoiceSettings(ami=AmiSettings("u", "secret"), trunks=(italy, italy))


def _event(**pairs: str) -> AmiMessage:
    return AmiMessage(pairs=list(pairs.items()))


NOW = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)


def test_tracker_local_busy_waits_for_both_channels():
    tracker = CallTracker("c1")
    tracker.feed(_event(Event="Newchannel", Uniqueid="c1", ChannelState="0"), NOW)
    tracker.feed(_event(Event="Newchannel", Uniqueid="c1;2", ChannelState="4"), NOW)
    tracker.feed(_event(Event="OriginateResponse", Response="Failure", Reason="5", Uniqueid="c1"), NOW)
    tracker.feed(_event(Event="Hangup", Uniqueid="c1", Cause="0"), NOW)
    assert not tracker.ended
    tracker.feed(_event(Event="Hangup", Uniqueid="c1;2", Cause="17"), NOW)
    assert tracker.ended and tracker.cause == 17 and tracker.outcome().outcome == "busy"


def test_tracker_trunk_failure_and_request_failure():
    tracker = CallTracker("c2")
    tracker.feed(_event(Event="Newchannel", Uniqueid="c2", ChannelState="0"), NOW)
    tracker.feed(_event(Event="Hangup", Uniqueid="c2", Cause="1"), NOW)
    # The OriginateResponse comes after the Hangup: not ended yet, but grace-able.
    assert not tracker.ended and tracker.all_hung_up and tracker.outcome_seen
    tracker.feed(_event(Event="OriginateResponse", Response="Failure", Reason="0", Uniqueid="c2"), NOW)
    assert tracker.ended and tracker.outcome().permanent
    unknown_trunk = CallTracker("c3")
    unknown_trunk.feed(_event(Event="OriginateResponse", Response="Failure", Reason="0",
                              Uniqueid="c3"), NOW)
    # No channel yet: its events may still come (see the next test); the channel waits a
    # grace, and with nothing more it is a request failure on our side.
    assert not unknown_trunk.ended and unknown_trunk.settling
    assert not unknown_trunk.outcome().charge_attempt


def test_tracker_originate_response_before_the_channel_events_keeps_the_cause():
    # Real Asterisk 22, a callee that fails at once: Reason 0 first, the Q.850 cause after.
    tracker = CallTracker("c5")
    tracker.feed(_event(Event="OriginateResponse", Response="Failure", Reason="0", Uniqueid="c5"), NOW)
    assert not tracker.ended and tracker.settling
    tracker.feed(_event(Event="Newchannel", Uniqueid="c5", ChannelState="0"), NOW)
    tracker.feed(_event(Event="Hangup", Uniqueid="c5", Cause="1"), NOW)
    assert tracker.ended
    outcome = tracker.outcome()
    assert outcome.outcome == "invalid_number" and outcome.permanent and not outcome.trunk_side


def test_tracker_callee_cause_19_with_reason_0_is_no_answer():
    tracker = CallTracker("c6")
    tracker.feed(_event(Event="Newchannel", Uniqueid="c6", ChannelState="0"), NOW)
    tracker.feed(_event(Event="Hangup", Uniqueid="c6", Cause="19"), NOW)
    tracker.feed(_event(Event="OriginateResponse", Response="Failure", Reason="0", Uniqueid="c6"), NOW)
    assert tracker.ended and tracker.outcome().outcome == "no_answer" and tracker.outcome().charge_attempt


def test_tracker_answered_call_cut_by_our_pbx_is_not_the_recipients_fault():
    # 'core restart now': Hangup cause 0 and no word from our dialplan, then Shutdown.
    tracker = CallTracker("c7")
    tracker.feed(_event(Event="Newchannel", Uniqueid="c7", ChannelState="0"), NOW)
    tracker.feed(_event(Event="Newstate", Uniqueid="c7", ChannelState="6"), NOW)
    tracker.feed(_event(Event="OriginateResponse", Response="Success", Reason="4", Uniqueid="c7"), NOW)
    tracker.feed(_event(Event="Hangup", Uniqueid="c7", Cause="0"), NOW)
    assert not tracker.ended and tracker.settling   # waits a grace for the Shutdown
    outcome = tracker.outcome()
    assert outcome.outcome == "failed" and not outcome.charge_attempt and not outcome.delivered
    ringing = CallTracker("c8")
    ringing.feed(_event(Event="Newchannel", Uniqueid="c8", ChannelState="5"), NOW)
    ringing.feed(_event(Event="Hangup", Uniqueid="c8", Cause="0"), NOW)
    ringing.pbx_shutdown = True
    assert not ringing.outcome().charge_attempt
    # A callee who hangs up during the message still counts as answered.
    heard = CallTracker("c9")
    heard.feed(_event(Event="Newstate", Uniqueid="c9", ChannelState="6"), NOW)
    heard.feed(_event(Event="UserEvent", UserEvent="AllertaPlaying", Uniqueid="c9"), NOW)
    heard.feed(_event(Event="Hangup", Uniqueid="c9", Cause="16"), NOW)
    assert heard.ended and heard.outcome().outcome == "answered"


def test_trunk_failure_window_tells_one_congested_callee_from_a_failing_trunk():
    clock = FakeClock()
    window = TrunkFailureWindow(clock)
    # One number's exchange answers Congestion() again and again among normal calls.
    for i in range(10):
        assert not window.record(f"+39333000{i:04d}", trunk_side=False)
        assert not window.record("+393339999999", trunk_side=True)
    # Many different numbers failing trunk-side, most of the recent calls: our trunk.
    clock.now += 61
    assert not window.record("+393330000001", trunk_side=True)
    assert not window.record("+393330000002", trunk_side=True)
    assert window.record("+393330000003", trunk_side=True)


def test_tracker_answered_without_result_is_not_an_outcome_seen():
    tracker = CallTracker("c4")
    tracker.feed(_event(Event="Newstate", Uniqueid="c4", ChannelState="6"), NOW)
    tracker.feed(_event(Event="OriginateResponse", Response="Success", Reason="4", Uniqueid="c4"), NOW)
    assert tracker.answered_at == NOW and not tracker.outcome_seen
    tracker.feed(_event(Event="UserEvent", UserEvent="AllertaResult", Uniqueid="c4",
                        Result="confirmed", Digit="1"), NOW)
    assert tracker.outcome_seen and tracker.outcome().outcome == "confirmed"


# --- a scripted AMI server ------------------------------------------------------------

Script = Callable[[AmiMessage, int], list[list[tuple[str, str]]] | None]


class FakeAmi:
    """Answers Login; ``script(action, connection_number)`` answers the rest
    (None: no answer at all). Records every action with its connection number."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.received: list[tuple[int, AmiMessage]] = []
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        self.writers.append(writer)
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        buffer = b""
        while data := await reader.read(65536):
            messages, buffer = parse_messages(buffer + data)
            for action in messages:
                self.received.append((number, action))
                if action.get("Action") == "Login":
                    replies = [[("Response", "Success"), ("ActionID", action["ActionID"]),
                                ("Message", "Authentication accepted")]]
                elif action.get("Action") == "Logoff":
                    replies = [[("Response", "Goodbye"), ("ActionID", action["ActionID"])]]
                else:
                    replies = self.script(action, number) or []
                for reply in replies:
                    writer.write(serialize(reply))

    def drop(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    async def stop(self) -> None:
        self.drop()
        self.server.close()

    def actions(self, name: str) -> list[int]:
        return [number for number, action in self.received if action.get("Action") == name]


def _fast(port: int, **overrides: float) -> AmiSettings:
    values = {"ping_interval": 0.1, "ping_timeout": 0.1, "reconnect_initial": 0.05,
              "reconnect_max": 0.2, "action_timeout": 1.0}
    values.update(overrides)
    return AmiSettings("allerta", "secret", port=port, **values)


@pytest.mark.integration
def test_missing_pong_drops_a_half_open_link_and_reconnects():
    def script(action: AmiMessage, connection: int):
        if action.get("Action") == "Ping" and connection > 1:
            return [[("Response", "Success"), ("ActionID", action["ActionID"]), ("Ping", "Pong")]]
        return None   # the first connection is silent after login: half-open

    async def scenario():
        fake = FakeAmi(script)
        port = await fake.start()
        link: list[tuple[bool, str]] = []
        client = AmiClient(_fast(port), on_link=lambda up, reason: link.append((up, reason)))
        await client.connect()
        for _ in range(100):
            if len(link) >= 3:
                break
            await asyncio.sleep(0.02)
        await client.close()
        await fake.stop()
        return link, fake.connections
    link, connections = asyncio.run(scenario())
    assert [up for up, _ in link[:3]] == [True, False, True]
    assert connections == 2


def _no_channels(action: AmiMessage) -> list[list[tuple[str, str]]]:
    """CoreShowChannels with nothing up, DBGetTree with nothing stored (asked at start-up)."""
    aid = action["ActionID"]
    complete = "DBGetTreeComplete" if action.get("Action") == "DBGetTree" else "CoreShowChannelsComplete"
    return [[("Response", "Success"), ("ActionID", aid), ("EventList", "start"),
             ("Message", "Result will follow")],
            [("Event", complete), ("ActionID", aid), ("EventList", "Complete"), ("ListItems", "0")]]


def _ack(action: AmiMessage) -> list[tuple[str, str]]:
    return [("Response", "Success"), ("ActionID", action["ActionID"]),
            ("Message", "Originate successfully queued")]


def _voice(port: int, **overrides) -> VoiceSettings:
    trunk = TrunkConfig("trunk1", "PJSIP/{number}@trunk1", max_channels=2, calls_per_second=50)
    values = {"ring_timeout_ms": 1000, "end_margin_seconds": 0.3, "end_grace_seconds": 0.1}
    values.update(overrides)
    return VoiceSettings(ami=_fast(port), trunks=(trunk,), **values)


MESSAGE = OutboundMessage(delivery_id=5, alert_id=1, number="+393331234567", text="x")


@pytest.mark.integration
def test_unacknowledged_originate_is_not_resent_after_reconnect():
    def script(action: AmiMessage, connection: int):
        name = action.get("Action")
        if name == "Ping":
            return [[("Response", "Success"), ("ActionID", action["ActionID"]), ("Ping", "Pong")]]
        if name == "DBGetTree":
            return _no_channels(action)
        if name == "CoreShowChannels":
            aid = action["ActionID"]
            return [[("Response", "Success"), ("ActionID", aid), ("EventList", "start"),
                     ("Message", "Channels will follow")],
                    [("Event", "CoreShowChannelsComplete"), ("ActionID", aid),
                     ("EventList", "Complete"), ("ListItems", "0")]]
        return None   # the Originate is never acknowledged

    async def scenario():
        fake = FakeAmi(script)
        port = await fake.start()
        channel = VoiceChannel(_voice(port, ring_timeout_ms=30000, end_margin_seconds=30))
        await channel.start(EventsRecorder())
        submit = asyncio.create_task(channel.submit(MESSAGE))
        for _ in range(100):
            if fake.actions("Originate"):
                break
            await asyncio.sleep(0.01)
        fake.drop()
        with pytest.raises(DeliveryFailed) as failure:
            await asyncio.wait_for(submit, 5)
        await asyncio.sleep(0.2)
        await channel.stop()
        await fake.stop()
        return failure.value, fake
    failure, fake = asyncio.run(scenario())
    assert failure.reason == FATE_UNKNOWN and failure.possible_duplicate and not failure.charge_attempt
    assert fake.actions("Originate") == [1]          # never resent on connection 2
    # Asked at start-up (our calls from before a restart) and again after the reconnect.
    assert fake.actions("CoreShowChannels") == [1, 2]


@pytest.mark.integration
def test_call_without_end_event_fails_after_timeout_and_margin():
    def script(action: AmiMessage, connection: int):
        if action.get("Action") == "Originate":
            return [_ack(action)]   # queued, then silence
        if action.get("Action") in ("CoreShowChannels", "DBGetTree"):
            return _no_channels(action)
        if action.get("Action") == "Ping":
            return [[("Response", "Success"), ("ActionID", action["ActionID"]), ("Ping", "Pong")]]
        return None

    async def scenario():
        fake = FakeAmi(script)
        port = await fake.start()
        channel = VoiceChannel(_voice(port))
        await channel.start(EventsRecorder())
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(DeliveryFailed) as failure:
            await channel.submit(MESSAGE)
        elapsed = loop.time() - began
        free = channel.free_slots()
        await channel.stop()
        await fake.stop()
        return failure.value, elapsed, free
    failure, elapsed, free = asyncio.run(scenario())
    assert 1.2 <= elapsed < 3 and failure.outcome == "failed"
    assert "no end of the call" in failure.reason
    assert not failure.charge_attempt and not failure.possible_duplicate   # no channel ever seen
    assert free == 1   # the channel was given back


@pytest.mark.integration
def test_answered_call_whose_message_could_not_play_fails_with_its_times_and_cause():
    def script(action: AmiMessage, connection: int):
        if action.get("Action") == "Ping":
            return [[("Response", "Success"), ("ActionID", action["ActionID"]), ("Ping", "Pong")]]
        if action.get("Action") in ("CoreShowChannels", "DBGetTree"):
            return _no_channels(action)
        if action.get("Action") != "Originate":
            return None
        cid = action["ChannelId"]
        # What our dialplan does when Playback fails: answered, Result: error, hang up.
        return [_ack(action),
                [("Event", "Newchannel"), ("Uniqueid", cid), ("ChannelState", "0")],
                [("Event", "Newstate"), ("Uniqueid", cid), ("ChannelState", "6")],
                [("Event", "OriginateResponse"), ("ActionID", action["ActionID"]), ("Response", "Success"),
                 ("Reason", "4"), ("Uniqueid", cid)],
                [("Event", "UserEvent"), ("UserEvent", "AllertaResult"), ("Uniqueid", cid),
                 ("Delivery", "5"), ("Result", "error"), ("Digit", "")],
                [("Event", "Hangup"), ("Uniqueid", cid), ("Cause", "16")]]

    async def scenario():
        fake = FakeAmi(script)
        port = await fake.start()
        channel = VoiceChannel(_voice(port))
        await channel.start(EventsRecorder())
        with pytest.raises(DeliveryFailed) as failure:
            await channel.submit(MESSAGE)
        [line] = channel.lines()
        await channel.stop()
        await fake.stop()
        return failure.value, line
    failure, line = asyncio.run(scenario())
    assert failure.outcome == "failed" and not failure.charge_attempt and not failure.permanent
    assert failure.cause == 16
    assert failure.started_at is not None and failure.answered_at is not None
    assert failure.started_at <= failure.answered_at
    # Our side's fault: shown on the line, without lowering the trunk's concurrency.
    assert "could not be played" in (line.last_error or "") and line.limit == 2


@pytest.mark.parametrize("given, played", [
    ("/var/lib/allerta/sounds/allerta-1a2b", "/var/lib/allerta/sounds/allerta-1a2b"),
    ("/var/lib/allerta/sounds/allerta-1a2b.wav", "/var/lib/allerta/sounds/allerta-1a2b"),
    ("/srv/msg.v2.GSM", "/srv/msg.v2"),
])
def test_playback_name_drops_the_extension_only(given, played):
    assert playback_name(given) == played


def test_inbound_reserve_and_hotline_calls_in_progress_take_channels_from_outbound():
    trunk = TrunkConfig("trunk1", "PJSIP/{number}@trunk1", max_channels=30, inbound_reserved=10)
    assert (trunk.outbound_limit(0), trunk.outbound_limit(10), trunk.outbound_limit(12)) == (20, 20, 18)
    assert trunk.carries("PJSIP/trunk1-0000002a") and not trunk.carries("PJSIP/other-00000001")
    with pytest.raises(ValueError, match="inbound_reserved"):
        TrunkConfig("trunk1", "PJSIP/{number}@trunk1", max_channels=2, inbound_reserved=2)
    channel = VoiceChannel(VoiceSettings(ami=AmiSettings(username="u", secret="s", port=1), trunks=(trunk,)))
    assert channel.lines()[0].limit == 20
    for _ in range(12):
        channel.inbound_changed("PJSIP/trunk1-00000007", +1)
    assert channel.lines()[0].limit == 18      # two hotline calls beyond the reserve
    for _ in range(12):
        channel.inbound_changed("PJSIP/trunk1-00000007", -1)
    assert channel.lines()[0].limit == 20
