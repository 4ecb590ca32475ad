"""VoiceChannel against the PBX simulator over real TCP (asterisk/pbx_simulator/harness.py)."""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import re
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from asterisk.ami_client import AmiAuthError, AmiClient, AmiSettings, AmiUnreachable
from asterisk.asterisk_config import render_configs
from gateway.core.audio import audio_info, confirmation, confirmation_wav, render_tts
from asterisk.pbx_simulator.harness import PbxSimulatorProcess
from asterisk.trunks import TrunkConfig
from asterisk.voice_channel import FATE_UNKNOWN, LOGIN_REFUSED, VoiceChannel, VoiceSettings
from gateway.core.channels import DeliveryFailed, LineStatus, OutboundMessage

pytestmark = pytest.mark.integration  # the PBX simulator subprocess over TCP

CONFIRM = "+393330000001"
BUSY = "+393330000002"
NO_ANSWER = "+393330000003"
INVALID = "+393330000004"
CONGESTED = "+393330000005"
REJECTED = "+393330000006"


class EventsRecorder:
    """The ChannelEvents a dispatcher would get, kept for assertions."""

    def __init__(self) -> None:
        self.statuses: list[LineStatus] = []
        self.capacity_calls = 0
        self.late: list[tuple] = []
        self.votes: list[tuple] = []
        self.wakeup = asyncio.Event()

    def status_reports(self, line, reports) -> None:
        raise AssertionError("the voice channel has no status reports")

    def inbound_part(self, part) -> None:
        raise AssertionError("the voice channel receives no SMS")

    def line_status(self, status: LineStatus) -> None:
        self.statuses.append(status)

    def capacity_available(self) -> None:
        self.capacity_calls += 1
        self.wakeup.set()

    def late_call_outcome(self, delivery_id, attempt_id, outcome, *, line, answered_at, cause) -> None:
        self.late.append((delivery_id, attempt_id, outcome, line))

    def poll_vote(self, delivery_id: int, option: int, voted_at: dt.datetime) -> None:
        self.votes.append((delivery_id, option, voted_at))


def ami_settings(port: int, secret: str = "allerta") -> AmiSettings:
    return AmiSettings(username="allerta", secret=secret, port=port, connect_timeout=2.0,
                       login_timeout=3.0, action_timeout=3.0, ping_interval=0.5, ping_timeout=0.5,
                       reconnect_initial=0.05, reconnect_max=0.4)


def trunk(name: str = "trunk1", **overrides: Any) -> TrunkConfig:
    values: dict[str, Any] = {"dial_template": f"PJSIP/{{number}}@{name}", "max_channels": 4,
                              "calls_per_second": 100.0, "number_format": "international"}
    values.update(overrides)
    return TrunkConfig(name, **values)


def voice_settings(port: int, *trunks: TrunkConfig, **overrides: Any) -> VoiceSettings:
    values: dict[str, Any] = {"ami": ami_settings(port), "end_grace_seconds": 0.3, "end_margin_seconds": 10.0,
                              "stop_timeout": 5.0}
    values.update(overrides)
    return VoiceSettings(trunks=trunks or (trunk(),), **values)


def message(number: str, delivery_id: int = 1, **overrides: Any) -> OutboundMessage:
    return OutboundMessage(delivery_id=delivery_id, alert_id=1, number=number,
                           text="Allerta meteo", **overrides)


POPULATION = {"overrides": {
    CONFIRM: {"behaviour": "confirm"}, BUSY: {"behaviour": "busy"},
    NO_ANSWER: {"behaviour": "no_answer"}, INVALID: {"behaviour": "invalid_number"},
    CONGESTED: {"behaviour": "congestion"}, REJECTED: {"behaviour": "reject"}}}


async def started(settings: VoiceSettings) -> tuple[VoiceChannel, EventsRecorder]:
    channel = VoiceChannel(settings)
    events = EventsRecorder()
    await channel.start(events)
    return channel, events


def test_confirmed_call_returns_times_and_sends_async_originate(tmp_path):
    with PbxSimulatorProcess(tmp_path, trunks={"trunk1": 2}, population=POPULATION) as pbx:
        async def scenario():
            channel, events = await started(voice_settings(pbx.port))
            assert channel.free_slots() == 1   # paced: one token at a time
            receipt = await channel.submit(message(CONFIRM, delivery_id=42,
                                                   audio_path="alert-42"))
            await channel.stop()
            return receipt, events
        receipt, events = asyncio.run(scenario())
        [call] = pbx.calls()
    assert receipt.outcome == "confirmed" and receipt.line == "trunk1" and receipt.cause == 16
    assert receipt.started_at <= receipt.answered_at <= receipt.ended_at
    assert call["channel_id"].startswith("allerta-42-") and call["delivery"] == "42"
    assert call["number"] == CONFIRM[1:]
    assert events.statuses[0].state == "up" and events.statuses[0].limit == 4


def _originate_of(actions: list[list[list[str]]]) -> list[dict[str, list[str]]]:
    found = []
    for action in actions:
        fields: dict[str, list[str]] = {}
        for key, value in action:
            fields.setdefault(key.lower(), []).append(value)
        if fields.get("action") == ["Originate"]:
            found.append(fields)
    return found


def test_originate_headers(tmp_path):
    with PbxSimulatorProcess(tmp_path, trunks={"trunk1": 2}, population=POPULATION) as pbx:
        async def scenario():
            channel, _ = await started(voice_settings(pbx.port, trunk(caller_id="0612345")))
            await channel.submit(message(CONFIRM, delivery_id=7))
            await channel.stop()
        asyncio.run(scenario())
        [originate] = _originate_of(pbx.control({"cmd": "received"})["actions"])
    assert originate["async"] == ["true"]
    assert originate["context"] == ["allerta-outbound"] and originate["exten"] == ["s"]
    assert originate["priority"] == ["1"] and originate["callerid"] == ["0612345"]
    assert originate["channel"] == ["PJSIP/393330000001@trunk1"]
    # ALLERTA_POLL: how many options the poll asked after the message has (0: no poll).
    assert sorted(originate["variable"]) == ["ALLERTA_AMD=1", "ALLERTA_AUDIO=allerta-default",
                                             "ALLERTA_DELIVERY=7", "ALLERTA_POLL=0"]


@pytest.mark.parametrize("number, outcome, permanent, charged, cause", [
    (BUSY, "busy", False, True, 17),
    (NO_ANSWER, "no_answer", False, True, 19),
    (INVALID, "invalid_number", True, True, 1),
    (CONGESTED, "congestion", False, False, 34),
    (REJECTED, "failed", False, True, 21),
])
def test_failed_calls_raise_delivery_failed(tmp_path, number, outcome, permanent, charged, cause):
    with PbxSimulatorProcess(tmp_path, trunks={"trunk1": 4}, population=POPULATION) as pbx:
        async def scenario():
            channel, _ = await started(voice_settings(pbx.port))
            before = dt.datetime.now(dt.timezone.utc)
            with pytest.raises(DeliveryFailed) as failure:
                await channel.submit(message(number))
            lines = channel.lines()
            await channel.stop()
            return failure.value, lines, before
        failure, [line], before = asyncio.run(scenario())
    assert (failure.outcome, failure.permanent, failure.charge_attempt) == (outcome, permanent, charged)
    assert failure.line == "trunk1" and not failure.possible_duplicate
    # The Q.850 cause travels with the failure (the policy retries 21 once at most),
    # with the time the call was originated; none of these was answered.
    assert failure.cause == cause
    assert failure.started_at is not None and failure.started_at >= before and failure.answered_at is None
    # One callee's exchange answering Congestion() says nothing about our trunk:
    # it keeps every channel (issue 11 item 7; see the congestion tests below).
    assert line.limit == 4 and line.last_error is None


def test_over_the_pbx_limit_is_congestion_without_charge(tmp_path):
    # The PBX allows fewer channels than we think: cause 34 from the trunk.
    with PbxSimulatorProcess(tmp_path, trunks={"trunk1": 0}, population=POPULATION) as pbx:
        async def scenario():
            channel, _ = await started(voice_settings(pbx.port))
            with pytest.raises(DeliveryFailed) as failure:
                await channel.submit(message(CONFIRM))
            await channel.stop()
            return failure.value
        failure = asyncio.run(scenario())
    assert failure.outcome == "congestion" and not failure.charge_attempt and not failure.permanent


def test_unknown_channel_technology_is_rejected_at_once(tmp_path):
    with PbxSimulatorProcess(tmp_path, trunks={"trunk1": 2}) as pbx:
        async def scenario():
            bad = trunk(dial_template="Bogus/{number}@trunk1")
            channel, _ = await started(voice_settings(pbx.port, bad))
            with pytest.raises(DeliveryFailed) as failure:
                await channel.submit(message(CONFIRM))
            await channel.stop()
            return failure.value
        failure = asyncio.run(scenario())
    assert "Invalid channel" in failure.reason and not failure.charge_attempt


def _max_overlap(calls: list[dict[str, Any]]) -> int:
    points = sorted([(c["start"], 1) for c in calls] + [(c["end"], -1) for c in calls],
                    key=lambda p: (p[0], p[1]))
    current = peak = 0
    for _, step in points:
        current += step
        peak = max(peak, current)
    return peak


def test_forty_calls_never_exceed_the_trunk_limit_and_keep_it_full(tmp_path):
    population = {"answer": 1, "busy": 0, "no_answer": 0, "invalid_number": 0, "voicemail": 0,
                  "congestion": 0, "ring_seconds": [2, 4], "listen_seconds": [8, 12]}
    with PbxSimulatorProcess(tmp_path, trunks={"trunk1": 10}, population=population) as pbx:
        async def dispatcher():
            channel, events = await started(voice_settings(pbx.port, trunk(max_channels=5,
                                                                            calls_per_second=50)))
            numbers = [f"+39333100{i:04d}" for i in range(40)]
            tasks = []
            while numbers:
                # What the dispatcher does: submit while there are free slots,
                # then sleep until capacity_available.
                while numbers and channel.free_slots() > 0:
                    tasks.append(asyncio.create_task(
                        channel.submit(message(numbers.pop(), delivery_id=len(tasks) + 1))))
                    await asyncio.sleep(0)
                    assert sum(line.in_use for line in channel.lines()) <= 5
                events.wakeup.clear()
                await asyncio.wait_for(events.wakeup.wait(), 5)
            receipts = await asyncio.gather(*tasks)
            await channel.stop()
            return receipts
        receipts = asyncio.run(dispatcher())
    calls = pbx.calls()
    assert len(receipts) == 40 and {r.outcome for r in receipts} <= {"confirmed", "answered"}
    assert len(calls) == 40 and max(c["concurrent"] for c in calls) == 5
    assert _max_overlap(calls) <= 5
    # Full: after the first five, every call starts as soon as one ends.
    assert sum(1 for c in calls if c["concurrent"] == 5) >= 30


def test_wrong_password_marks_the_lines_down_and_retries_slowly(tmp_path):
    with PbxSimulatorProcess(tmp_path, secret="the-right-one") as pbx:
        async def scenario():
            client = AmiClient(ami_settings(pbx.port, secret="wrong"))
            began = time.monotonic()
            with pytest.raises(AmiAuthError) as error:
                await client.connect()
            elapsed = time.monotonic() - began
            await client.close()
            # The channel does not raise: other channels must keep running.
            channel, events = await started(voice_settings(pbx.port, ami=ami_settings(pbx.port, secret="wrong")))
            await asyncio.sleep(0.5)   # a fast reconnect loop (0.05-0.4 s) would log in again meanwhile
            free = channel.free_slots()
            await channel.stop()
            return str(error.value), elapsed, events.statuses, free
        text, elapsed, statuses, free = asyncio.run(scenario())
        logins = [a for a in pbx.control({"cmd": "received"})["actions"] if a[0] == ["Action", "Login"]]
    assert f"127.0.0.1:{pbx.port}" in text and "refused user 'allerta'" in text
    assert "Authentication failed" in text and elapsed < 2
    assert len(logins) == 2      # one each, not retried at the reconnect pace
    assert all("wrong" not in str(action) for action in logins)   # the simulator masks it; so do we
    assert statuses[-1].state == "down" and statuses[-1].last_error == LOGIN_REFUSED
    assert free == 0


def test_refused_login_is_retried_and_the_lines_come_up_once_the_secret_is_fixed(tmp_path):
    with PbxSimulatorProcess(tmp_path, trunks={"trunk1": 2}, population=POPULATION,
                             secret="the-right-one") as pbx:
        async def scenario():
            settings = dataclasses.replace(ami_settings(pbx.port, secret="fixed-later"), auth_retry_seconds=0.3)
            channel, events = await started(voice_settings(pbx.port, ami=settings))
            assert channel.free_slots() == 0 and events.statuses[-1].last_error == LOGIN_REFUSED
            # The operator fixes manager_allerta.conf: the next slow retry gets in.
            await _control(pbx, {"cmd": "set_secret", "secret": "fixed-later"})
            await _wait_until(lambda: channel.free_slots() > 0)
            receipt = await channel.submit(message(CONFIRM))
            await channel.stop()
            return receipt, events.statuses
        receipt, statuses = asyncio.run(scenario())
    assert receipt.outcome == "confirmed"
    assert [s.state for s in statuses][:1] == ["down"] and "up" in [s.state for s in statuses]


def test_refused_login_raises_when_voice_is_the_only_channel_of_a_once_run(tmp_path):
    with PbxSimulatorProcess(tmp_path, secret="the-right-one") as pbx:
        async def scenario():
            channel = VoiceChannel(voice_settings(pbx.port, ami=ami_settings(pbx.port, secret="wrong")))
            channel.stop_on_login_refusal = True
            with pytest.raises(AmiAuthError):
                await channel.start(EventsRecorder())
            return channel.lines()
        [line] = asyncio.run(scenario())
    assert line.state == "down" and line.last_error == LOGIN_REFUSED


def test_played_audio_resolves_to_the_rendered_file(tmp_path):
    """The variable we send, put into the dialplan we ship, names the file we rendered."""
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    name = sounds / "allerta-0123456789ab"          # as 'allerta alert send --voice' names it
    render_tts("Allerta meteo", "it", name.with_suffix(".wav"))
    render_tts(confirmation("it"), "it", confirmation_wav(name), closing=False)
    dialplan = render_configs("allerta", "s3cret-value", str(sounds))["extensions_allerta.conf"]
    with PbxSimulatorProcess(tmp_path / "pbx", trunks={"trunk1": 2}, population=POPULATION) as pbx:
        async def scenario():
            channel, _ = await started(voice_settings(pbx.port))
            await channel.submit(message(CONFIRM, delivery_id=1, audio_path=str(name)))
            # A path given with its extension is played without it, as Playback wants.
            await channel.submit(message(CONFIRM, delivery_id=2, audio_path=str(name) + ".wav"))
            await channel.stop()
        asyncio.run(scenario())
        originates = _originate_of(pbx.control({"cmd": "received"})["actions"])
    sent = [dict(v.split("=", 1) for v in o["variable"])["ALLERTA_AUDIO"] for o in originates]
    # Every place the dialplan plays a file: Playback(file), Read(DIGIT,file,...), BackgroundDetect(file,...).
    playbacks = (re.findall(r"Playback\(([^),]*\$\{ALLERTA_AUDIO\}[^),]*)", dialplan)
                 + re.findall(r"Read\(DIGIT,([^),]*\$\{ALLERTA_AUDIO\}[^),]*)", dialplan)
                 + re.findall(r"BackgroundDetect\(([^),]*\$\{ALLERTA_AUDIO\}[^),]*)", dialplan))
    # The message with its key, on a machine, while detecting one, and the confirmation after a 1.
    assert len(sent) == 2 and len(playbacks) == 4
    for audio in sent:
        for argument in playbacks:
            played = Path(argument.replace("${ALLERTA_AUDIO}", audio))
            assert played.is_absolute() and played.with_name(played.name + ".wav").is_file(), played
            info = audio_info(played.with_name(played.name + ".wav"))
            assert (info.sample_rate, info.channels, info.bits) == (8000, 1, 16)


def test_failed_core_show_channels_after_reconnect_is_asked_again(tmp_path):
    with PbxSimulatorProcess(tmp_path, trunks={"trunk1": 4}, population=LONG_CALLS,
                             time_scale=0.03) as pbx:
        async def scenario():
            channel, events = await started(voice_settings(pbx.port, reconcile_retry_seconds=0.2))
            tasks = []
            for i in range(2):
                await _wait_until(lambda: channel.free_slots() > 0)
                tasks.append(asyncio.create_task(
                    channel.submit(message(f"+39333500{i:04d}", delivery_id=i + 1))))
            await asyncio.sleep(0.3)   # answered, listening
            # The link comes back, but the PBX refuses the first CoreShowChannels.
            await _control(pbx, {"cmd": "fail_actions", "action": "CoreShowChannels", "count": 1})
            await _control(pbx, {"cmd": "drop_connections"})
            await _wait_until(lambda: any(s.state == "down" for s in events.statuses))
            # Without asking again the channel would stay at 0 free slots while the link is up.
            await _wait_until(lambda: channel.free_slots() > 0, timeout=10)
            receipts = await asyncio.gather(*tasks)
            after = await channel.submit(message("+393335100000", delivery_id=9))
            await channel.stop()
            return receipts, after
        receipts, after = asyncio.run(scenario())
        actions = pbx.control({"cmd": "received"})["actions"]
    assert [r.outcome for r in receipts] == ["confirmed"] * 2 and after.outcome == "confirmed"
    # Start-up, the refused one after the reconnect, and the one asked again.
    assert sum(1 for a in actions if a[0] == ["Action", "CoreShowChannels"]) == 3
    assert sorted(Counter(c["number"] for c in pbx.calls()).values()) == [1, 1, 1]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_pbx():
    port = _closed_port()

    async def scenario():
        client = AmiClient(ami_settings(port))
        with pytest.raises(AmiUnreachable) as error:
            await client.connect()
        await client.close()
        channel, events = await started(voice_settings(port))   # not raised: retried
        free = channel.free_slots()
        await channel.stop()
        return str(error.value), events.statuses, free
    text, statuses, free = asyncio.run(scenario())
    assert f"127.0.0.1:{port}" in text
    assert statuses[0].state == "down" and f"127.0.0.1:{port}" in statuses[0].last_error
    assert free == 0


def test_dial_template_without_number_is_a_config_error():
    with pytest.raises(ValueError, match="voice trunk 'trunk1'.*{number}"):
        TrunkConfig("trunk1", dial_template="PJSIP/trunk1")
    with pytest.raises(ValueError, match="calls_per_second"):
        trunk(calls_per_second=0)


async def _control(pbx: PbxSimulatorProcess, request: dict[str, Any]) -> dict[str, Any]:
    return await asyncio.to_thread(pbx.control, request)


async def _wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


LONG_CALLS = {"answer": 1, "busy": 0, "no_answer": 0, "invalid_number": 0, "voicemail": 0,
              "congestion": 0, "press_1": 1, "ring_seconds": 1, "listen_seconds": 60}


def test_link_dropped_mid_call_calls_are_followed_after_reconnect(tmp_path):
    with PbxSimulatorProcess(tmp_path, trunks={"trunk1": 4}, population=LONG_CALLS,
                             time_scale=0.03) as pbx:
        async def scenario():
            channel, events = await started(voice_settings(pbx.port))
            numbers = [f"+39333200{i:04d}" for i in range(3)]
            tasks = []
            for i, number in enumerate(numbers):
                await _wait_until(lambda: channel.free_slots() > 0)
                tasks.append(asyncio.create_task(channel.submit(message(number, delivery_id=i + 1))))
            await asyncio.sleep(0.3)   # answered, listening (60 s * 0.03 = 1.8 s)
            assert (await _control(pbx, {"cmd": "drop_connections"}))["dropped"] == 1
            await _wait_until(lambda: any(s.state == "down" for s in events.statuses))
            receipts = await asyncio.gather(*tasks)
            states = [s.state for s in events.statuses]
            await channel.stop()
            return receipts, states
        receipts, states = asyncio.run(scenario())
        actions = pbx.control({"cmd": "received"})["actions"]
    assert [r.outcome for r in receipts] == ["confirmed"] * 3
    # Down when the socket closed, up again after the reconnect.
    assert states.index("down") < len(states) - 1 - states[::-1].index("up")
    # At start-up (our calls from before a restart), then once after the reconnect.
    assert sum(1 for a in actions if a[0] == ["Action", "CoreShowChannels"]) == 2
    originated = Counter(c["number"] for c in pbx.calls())
    assert sorted(originated.values()) == [1, 1, 1]


def test_restart_loses_calls_possible_duplicate_never_reoriginated(tmp_path):
    with PbxSimulatorProcess(tmp_path, trunks={"trunk1": 4}, population=LONG_CALLS,
                             time_scale=0.03) as pbx:
        async def scenario():
            channel, events = await started(voice_settings(pbx.port))
            tasks = []
            for i in range(3):
                await _wait_until(lambda: channel.free_slots() > 0)
                tasks.append(asyncio.create_task(
                    channel.submit(message(f"+39333300{i:04d}", delivery_id=i + 1))))
            await asyncio.sleep(0.3)
            await _control(pbx, {"cmd": "restart", "seconds": 0.5})
            results = await asyncio.gather(*tasks, return_exceptions=True)
            # The PBX is back: the channel works again.
            await _wait_until(lambda: channel.free_slots() > 0)
            after = await channel.submit(message("+393334000000", delivery_id=9))
            await channel.stop()
            return results, after
        results, after = asyncio.run(scenario())
        calls = pbx.calls()
    for failure in results:
        assert isinstance(failure, DeliveryFailed), failure
        assert failure.reason == FATE_UNKNOWN and failure.possible_duplicate
        assert not failure.charge_attempt and not failure.permanent
    assert after.outcome == "confirmed"
    originated = Counter(c["number"] for c in calls)
    assert len(originated) == 4 and set(originated.values()) == {1}
    assert sorted(c["outcome"] for c in calls).count("dropped") == 3


def test_two_trunks_avoid_lines_and_routing(tmp_path):
    with PbxSimulatorProcess(tmp_path, trunks={"trunk1": 2, "trunk2": 2},
                             population=POPULATION) as pbx:
        async def scenario():
            landline_only = trunk("trunk2", allowed="landline")
            channel, events = await started(voice_settings(pbx.port, trunk("trunk1"), landline_only))
            free = channel.free_slots()
            rate = channel.rate_per_minute()
            avoided = await channel.submit(message(CONFIRM, avoid_lines=frozenset({"trunk1"})))
            await _wait_until(lambda: channel.free_slots() == 2)
            landline = await channel.submit(message("+390612345678", delivery_id=2,
                                                    avoid_lines=frozenset({"trunk1"})))
            await channel.stop()
            return free, rate, avoided, landline, events.statuses
        free, rate, avoided, landline, statuses = asyncio.run(scenario())
    assert free == 2 and rate > 0
    # A mobile number may only use trunk1, even though it is to be avoided.
    assert avoided.line == "trunk1" and landline.line == "trunk2"
    assert {s.label for s in statuses} == {"trunk1", "trunk2"}


def test_keys_at_once_and_a_greeting_are_confirmed_on_the_first_call_with_amd(tmp_path):
    """Issue 11 end to end (TCP): with machine detection on, a 1 pressed right after answer and a
    person who says "Pronto?" once are confirmed; a machine gets the message as voicemail."""
    early, greeter, machine = "+390612340001", "+390612340002", "+390612340003"
    population = {"overrides": {early: {"behaviour": "confirm", "listen_seconds": 0.3},
                                greeter: {"behaviour": "confirm", "greets": True, "listen_seconds": 6},
                                machine: {"behaviour": "voicemail"}}}
    with PbxSimulatorProcess(tmp_path, trunks={"trunk1": 2}, population=population) as pbx:
        async def scenario():
            channel, _ = await started(voice_settings(pbx.port, amd=True))
            receipts = [await channel.submit(message(number, delivery_id=i + 1,
                                                     audio_path="/var/lib/allerta/sounds/allerta-1"))
                        for i, number in enumerate((early, greeter, machine))]
            await channel.stop()
            return receipts
        receipts = asyncio.run(scenario())
    assert [r.outcome for r in receipts] == ["confirmed", "confirmed", "voicemail"]


def test_a_missing_message_file_is_never_a_delivery_end_to_end(tmp_path):
    """The machine's path too: the dialplan checks the file and reports an error, our fault."""
    population = {"overrides": {CONFIRM: {"behaviour": "voicemail"}}}
    with PbxSimulatorProcess(tmp_path, trunks={"trunk1": 2}, population=population,
                             extra_args=["--sounds-on-disk"]) as pbx:
        async def scenario():
            channel, _ = await started(voice_settings(pbx.port, amd=True))
            with pytest.raises(DeliveryFailed) as failure:
                await channel.submit(message(CONFIRM, audio_path=str(tmp_path / "sounds" / "missing")))
            await channel.stop()
            return failure.value
        failure = asyncio.run(scenario())
    assert failure.outcome == "failed" and not failure.charge_attempt
    assert "could not be played" in str(failure)
