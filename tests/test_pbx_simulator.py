"""The PBX simulator against the real Asterisk 22 transcript and AMI rules."""
from __future__ import annotations

import asyncio
import re
from collections import defaultdict

import pytest

from asterisk.ami_protocol import AmiMessage, parse_messages, serialize
from asterisk.pbx_simulator.population import Population
from asterisk.pbx_simulator.simulator import PbxSimulator, SimulatorConfig
from tests.support import DATA

pytestmark = pytest.mark.integration  # the simulator serves AMI on a TCP port

TRANSCRIPT = DATA / "asterisk-22-ami-transcript.txt"
NUMBERS = {"O0": "393331234567", "O1": "33171111", "O2": "33181111"}
USER_PAYLOAD = {"Delivery", "Ack", "Result", "Digit"}
# The dialplan behind the transcript (shared/reference/asterisk-ami.md): the simulator runs it.
ROBOCALL_DIALPLAN = """
[robocall]
exten => s,1,Answer()
 same => n,Playback(beep)
 same => n,Read(ACK,,1,,1,5)
 same => n,UserEvent(RobocallResult,Delivery: ${DELIVERY},Ack: ${ACK})
 same => n,Hangup()
"""


class AmiTestClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buffer = b""
        self.pending: list[AmiMessage] = []

    @classmethod
    async def connect(cls, port: int) -> AmiTestClient:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    def send(self, *pairs: tuple[str, str]) -> None:
        self.writer.write(serialize(list(pairs)))

    async def next(self, timeout: float = 2.0) -> AmiMessage | None:
        """The next message, or None at EOF."""
        while not self.pending:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                return None
            messages, self.buffer = parse_messages(self.buffer + data)
            self.pending += messages
        return self.pending.pop(0)

    async def collect(self, seconds: float) -> list[AmiMessage]:
        got: list[AmiMessage] = []
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0:
            try:
                message = await self.next(left)
            except asyncio.TimeoutError:
                break
            if message is None:
                break
            got.append(message)
        return got

    async def login(self, secret: str = "allerta", events: str | None = None) -> AmiMessage:
        greeting = await self.next()
        assert greeting is not None and greeting.greeting == "Asterisk Call Manager/11.0.0"
        pairs = [("Action", "Login"), ("ActionID", "L1"), ("Username", "allerta"), ("Secret", secret)]
        if events is not None:
            pairs.append(("Events", events))
        self.send(*pairs)
        response = await self.next()
        assert response is not None
        return response


def make_sim(tmp_path=None, trunks=None, overrides=None, **config) -> PbxSimulator:
    population = Population(seed=3, overrides=overrides or {}, ring_seconds=(1, 2),
                            listen_seconds=(2, 3))
    return PbxSimulator(SimulatorConfig(trunks=trunks or {"pstn-sim": 10}, time_scale=0.01,
                                        log_path=(tmp_path / "calls.jsonl") if tmp_path else None,
                                        **config), population)


def originate(client: AmiTestClient, action_id: str, channel: str, *extra: tuple[str, str],
              context: str = "robocall") -> None:
    client.send(("Action", "Originate"), ("ActionID", action_id), ("Channel", channel),
                ("Context", context), ("Exten", "s"), ("Priority", "1"), ("Async", "true"), *extra)


# --- the transcript ---------------------------------------------------------------

def transcript_messages() -> list[AmiMessage]:
    lines = [line for line in TRANSCRIPT.read_text().splitlines() if not line.startswith("#")]
    data = ("\r\n".join(lines).lstrip("\r\n") + "\r\n").encode()
    return parse_messages(data)[0]


def call_of(message: AmiMessage) -> str | None:
    if message.get("Event") == "OriginateResponse":
        return NUMBERS.get(message.get("ActionID", ""))
    for key in ("Channel", "DestChannel", "LocalOneChannel"):
        match = re.match(r"Local/(\d+)@", message.get(key) or "")
        if match:
            return match.group(1)
    return None


def shapes(messages: list[AmiMessage]):
    """Event sequence per call, and key sets per event type."""
    sequences: dict[str, list[str]] = defaultdict(list)
    keys: dict[str, set[str]] = {}
    for message in messages:
        event = message.get("Event")
        if event is None or message.get("UserEvent") == "AllertaHangup":
            continue
        number = call_of(message)
        if number is not None:
            sequences[number].append(event)
        key_set = set(message.keys()) - (USER_PAYLOAD if event == "UserEvent" else set())
        keys.setdefault(event, key_set)
    return dict(sequences), keys


def test_replay_transcript_client_side_gives_same_shapes():
    expected = transcript_messages()

    async def scenario():
        sim = make_sim(overrides={
            "393331234567": {"behaviour": "confirm"},
            "33171111": {"behaviour": "busy"},
            "33181111": {"behaviour": "no_answer"},
        }, dialplan=ROBOCALL_DIALPLAN)
        port = await sim.start()
        client = await AmiTestClient.connect(port)
        got = [await client.next()]
        client.send(("Action", "Login"), ("ActionID", "L1"), ("Username", "allerta"),
                    ("Secret", "allerta"))
        for action_id, number in NUMBERS.items():
            originate(client, action_id, f"Local/{number}@pstn-sim",
                      ("Variable", f"DELIVERY=d{action_id[1]}"))
        got += await client.collect(1.0)
        await sim.stop()
        return got

    got = asyncio.run(scenario())
    # Greeting, login response, FullyBooted, three queued acknowledgements, in order.
    head = lambda ms: [m.greeting or m.get("Response") or m.get("Event") for m in ms[:6]]  # noqa: E731
    assert head(got) == head(expected)
    assert [m.get("ActionID") for m in got[1:6] if m.get("Response")] == ["L1", "O0", "O1", "O2"]
    expected_sequences, expected_keys = shapes(expected)
    got_sequences, got_keys = shapes(got)
    assert got_sequences == expected_sequences
    assert got_keys == expected_keys
    responses = {m["ActionID"]: m for m in got if m.get("Event") == "OriginateResponse"}
    assert (responses["O0"]["Response"], responses["O0"]["Reason"]) == ("Success", "4")
    assert (responses["O1"]["Response"], responses["O1"]["Reason"]) == ("Failure", "5")
    assert (responses["O2"]["Response"], responses["O2"]["Reason"]) == ("Failure", "3")
    assert responses["O1"]["Channel"] == "Local/33171111@pstn-sim"
    assert responses["O1"]["Uniqueid"] == "<unknown>"
    result = next(m for m in got if m.get("UserEvent") == "RobocallResult")
    assert (result["Delivery"], result["Ack"]) == ("d0", "1")
    busy = [m for m in got if m.get("Event") == "Hangup" and "33171111" in m["Channel"]]
    assert [m["Cause"] for m in busy] == ["0", "17"]


# --- AMI rules --------------------------------------------------------------------

def run_with_sim(body, tmp_path=None, **kwargs):
    async def scenario():
        sim = make_sim(tmp_path, **kwargs)
        port = await sim.start()
        try:
            return await body(sim, port)
        finally:
            await sim.stop()
    return asyncio.run(scenario())


def test_permission_denied_before_login():
    async def body(sim, port):
        client = await AmiTestClient.connect(port)
        await client.next()
        client.send(("Action", "Ping"), ("ActionID", "p1"))
        reply = await client.next()
        assert (reply["Response"], reply["Message"], reply["ActionID"]) == \
            ("Error", "Permission denied", "p1")
        originate(client, "o1", "Local/1@pstn-sim")
        assert (await client.next())["Message"] == "Permission denied"
        assert sim.status()["active_calls"] == 0
    run_with_sim(body)


def test_wrong_password_fails_after_delay_then_closes():
    async def body(sim, port):
        client = await AmiTestClient.connect(port)
        loop = asyncio.get_running_loop()
        start = loop.time()
        reply = await client.login(secret="wrong")
        assert loop.time() - start >= 0.009  # one second, time-scaled
        assert (reply["Response"], reply["Message"]) == ("Error", "Authentication failed")
        assert await client.next() is None
    run_with_sim(body)


def test_ping_logoff_and_fully_booted():
    async def body(sim, port):
        client = await AmiTestClient.connect(port)
        reply = await client.login()
        assert reply["Message"] == "Authentication accepted"
        booted = await client.next()
        assert booted["Event"] == "FullyBooted" and booted["Privilege"] == "system,all"
        client.send(("Action", "Ping"), ("ActionID", "p"))
        pong = await client.next()
        assert pong["Ping"] == "Pong" and re.match(r"^\d+\.\d{6}$", pong["Timestamp"])
        client.send(("Action", "Ping"))
        assert "ActionID" not in await client.next()  # echoed only when sent
        client.send(("Action", "Logoff"), ("ActionID", "bye"))
        bye = await client.next()
        assert (bye["Response"], bye["Message"]) == ("Goodbye", "Thanks for all the fish.")
        assert await client.next() is None
    run_with_sim(body)


def test_originate_immediate_errors():
    async def body(sim, port):
        client = await AmiTestClient.connect(port)
        await client.login()
        await client.next()
        client.send(("Action", "Originate"), ("ActionID", "a"), ("Exten", "s"), ("Async", "true"))
        assert (await client.next())["Response"] == "Error"
        originate(client, "b", "Bogus/123@x")
        reply = await client.next()
        assert (reply["Response"], reply["Message"]) == ("Error", "Invalid channel")
        assert await client.collect(0.1) == []
    run_with_sim(body)


def test_channel_limit_gives_congestion(tmp_path):
    async def body(sim, port):
        client = await AmiTestClient.connect(port)
        await client.login()
        originate(client, "A", "PJSIP/393331111111@trunk1", ("ChannelId", "call-a"),
                  context="allerta-outbound")
        originate(client, "B", "PJSIP/393332222222@trunk1", ("ChannelId", "call-b"),
                  context="allerta-outbound")
        got = await client.collect(1.0)
        responses = {m["ActionID"]: m for m in got if m.get("Event") == "OriginateResponse"}
        assert (responses["B"]["Response"], responses["B"]["Reason"]) == ("Failure", "8")
        assert responses["B"]["Uniqueid"] == "call-b"  # the ChannelId, even on failure
        assert responses["A"]["Uniqueid"] == "call-a"
        hangup_b = next(m for m in got if m.get("Event") == "Hangup" and m["Uniqueid"] == "call-b")
        assert (hangup_b["Cause"], hangup_b["Cause-txt"]) == ("34", "Circuit/channel congestion")
        dial_end = next(m for m in got if m.get("Event") == "DialEnd" and m["DestUniqueid"] == "call-b")
        assert dial_end["DialStatus"] == "CONGESTION"
    run_with_sim(body, tmp_path, trunks={"trunk1": 1},
                 overrides={"+393331111111": {"behaviour": "listen"}})
    import json
    calls = {c["channel_id"]: c for c in map(json.loads, (tmp_path / "calls.jsonl").read_text().splitlines())}
    assert calls["call-b"]["outcome"] == "congestion" and calls["call-b"]["cause"] == 34
    assert calls["call-a"]["outcome"] == "listened" and calls["call-a"]["concurrent"] == 1
    assert calls["call-a"]["answer"] is not None and calls["call-a"]["trunk"] == "trunk1"


def test_pjsip_call_event_order_and_dtmf_class():
    async def body(sim, port):
        client = await AmiTestClient.connect(port)
        await client.login()
        originate(client, "A", "PJSIP/390612345678@trunk1", ("ChannelId", "c1"),
                  ("Variable", "ALLERTA_DELIVERY=42,ALLERTA_AUDIO=d42"), context="allerta-outbound")
        got = [m for m in await client.collect(1.0) if m.get("Event")]
        return [m["Event"] for m in got], got
    events, got = run_with_sim(body, trunks={"trunk1": 2}, overrides={"390612345678": {"behaviour": "confirm"}},
                               read_classes=frozenset({"call", "user", "system", "dtmf"}))
    assert events == ["FullyBooted", "Newchannel", "DialBegin", "Newstate", "Newstate", "DialEnd",
                      "OriginateResponse", "UserEvent", "DTMFBegin", "DTMFEnd", "UserEvent", "SoftHangupRequest",
                      "UserEvent", "Hangup"]
    user_events = [m["UserEvent"] for m in got if m.get("Event") == "UserEvent"]
    assert user_events == ["AllertaPlaying", "AllertaResult", "AllertaHangup"]
    hangup_event = [m for m in got if m.get("UserEvent") == "AllertaHangup"][0]
    assert (hangup_event["Delivery"], hangup_event["Cause"]) == ("42", "16")
    assert [m for m in got if m.get("Event") == "DTMFEnd"][0]["Digit"] == "1"


@pytest.mark.parametrize("behaviour,cause,reason,status", [
    ("busy", "17", "5", "BUSY"), ("no_answer", "19", "3", "NOANSWER"),
    ("invalid_number", "1", "0", "CHANUNAVAIL"), ("congestion", "34", "8", "CONGESTION"),
    ("reject", "21", "8", "CONGESTION"),
    # The network's other failures: Reason 8 for 27/38/41/42 (pbx.c), 0 for an invalid format.
    ("destination_out_of_order", "27", "8", "CHANUNAVAIL"), ("invalid_format", "28", "0", "CHANUNAVAIL"),
    ("network_out_of_order", "38", "8", "CHANUNAVAIL"), ("temporary_failure", "41", "8", "CONGESTION"),
    ("switching_congestion", "42", "8", "CONGESTION"),
])
def test_pjsip_failures(behaviour, cause, reason, status):
    async def body(sim, port):
        client = await AmiTestClient.connect(port)
        await client.login()
        originate(client, "A", "PJSIP/390612345678@trunk1", ("ChannelId", "c1"), ("Timeout", "20000"),
                  context="allerta-outbound")
        return await client.collect(0.6)
    got = run_with_sim(body, trunks={"trunk1": 2}, overrides={"390612345678": {"behaviour": behaviour}})
    by_event = {m.get("Event"): m for m in got}
    assert by_event["Hangup"]["Cause"] == cause
    assert by_event["DialEnd"]["DialStatus"] == status
    assert (by_event["OriginateResponse"]["Response"], by_event["OriginateResponse"]["Reason"]) == \
        ("Failure", reason)


def test_events_off_suppresses_originate_response():
    async def body(sim, port):
        client = await AmiTestClient.connect(port)
        await client.login(events="off")
        originate(client, "A", "Local/33171111@pstn-sim")
        got = await client.collect(0.5)
        assert [m.get("Message") for m in got] == ["Originate successfully queued"]
    run_with_sim(body, overrides={"33171111": {"behaviour": "busy"}})


def test_unknown_trunk_fails_without_channel_events():
    async def body(sim, port):
        client = await AmiTestClient.connect(port)
        await client.login()
        originate(client, "A", "PJSIP/390612345678@nowhere")
        got = [m for m in await client.collect(0.3) if m.get("Event")]
        assert [m["Event"] for m in got] == ["FullyBooted", "OriginateResponse"]
        assert got[1]["Reason"] == "0"
    run_with_sim(body)


def test_core_show_channels_and_command_permission():
    async def body(sim, port):
        client = await AmiTestClient.connect(port)
        await client.login(events="off")
        originate(client, "A", "PJSIP/390612345678@trunk1", ("ChannelId", "live-1"),
                  context="allerta-outbound")
        await client.next()
        await asyncio.sleep(0.05)
        client.send(("Action", "CoreShowChannels"), ("ActionID", "c"))
        got = await client.collect(0.2)
        assert got[0]["EventList"] == "start" and got[0]["Response"] == "Success"
        assert got[1]["Event"] == "CoreShowChannel" and got[1]["Uniqueid"] == "live-1"
        assert (got[-1]["Event"], got[-1]["ListItems"], got[-1]["ActionID"]) == \
            ("CoreShowChannelsComplete", "1", "c")
        client.send(("Action", "Command"), ("Command", "core show channels"))
        reply = await client.next()
        return reply
    denied = run_with_sim(body, trunks={"trunk1": 1}, overrides={"390612345678": {"behaviour": "no_answer"}})
    assert denied["Message"] == "Permission denied"  # write= lacks "command", as in our manager.conf
    allowed = run_with_sim(body, trunks={"trunk1": 1}, overrides={"390612345678": {"behaviour": "no_answer"}},
                           write_classes=frozenset({"originate", "call", "system", "command"}))
    outputs = allowed.get_all("Output")
    assert allowed["Message"] == "Command output follows"
    assert outputs[0].startswith("Channel") and "PJSIP/trunk1-" in outputs[1]
    assert outputs[-3:] == ["1 active channel", "1 active call", "1 call processed"]


def test_answer_on_attempt_and_sync_originate():
    async def body(sim, port):
        client = await AmiTestClient.connect(port)
        await client.login(events="off")
        replies = []
        for attempt in range(3):
            client.send(("Action", "Originate"), ("ActionID", f"s{attempt}"),
                        ("Channel", "Local/390699999999@pstn-sim"), ("Context", "robocall"),
                        ("Exten", "s"), ("Timeout", "5000"))
            replies.append(await client.next(5))
        return replies
    replies = run_with_sim(body, overrides={"+390699999999": {"answer_on_attempt": 3}})
    # Without Async the session blocks until the result and no event is sent.
    assert [r["Response"] for r in replies] == ["Error", "Error", "Success"]
    assert replies[0]["Message"] == "Originate failed"


def test_population_is_seeded():
    one = Population(seed=7)
    two = Population(seed=7)
    plans = [one.plan_call(f"+39333{i:07d}")[0] for i in range(50)]
    assert plans == [two.plan_call(f"+39333{i:07d}")[0] for i in range(50)]
    assert len({p.behaviour for p in plans}) > 2


def test_population_weights_for_network_failures():
    from asterisk.pbx_simulator.population import Population
    population = Population(answer=0, busy=0, no_answer=0, invalid_number=0, voicemail=0, congestion=0,
                            temporary_failure=1, network_out_of_order=1, seed=3)
    drawn = {population.plan_call(f"+3906{i:08d}")[0].behaviour for i in range(50)}
    assert drawn == {"temporary_failure", "network_out_of_order"}


def test_new_weights_leave_existing_seeded_draws_unchanged():
    """New failure kinds weigh 0 by default: a seed draws what it drew before they existed."""
    import random
    from asterisk.pbx_simulator.population import Population
    population = Population(seed=11)
    old_keys = ("answer", "busy", "no_answer", "invalid_number", "voicemail", "congestion")
    rng = random.Random(11)
    for i in range(200):
        rng.uniform(2.0, 10.0), rng.uniform(8.0, 20.0)
        expected = rng.choices(old_keys, weights=[0.7, 0.08, 0.12, 0.02, 0.05, 0.03])[0]
        if expected == "answer":
            expected = "confirm" if rng.random() < 0.8 else "listen"
        assert population.plan_call(f"+3906{i:08d}")[0].behaviour == expected
