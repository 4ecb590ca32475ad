"""The PBX simulator learns the event orders and actions of a real Asterisk 22
(shared/reference/asterisk-ami.md, "Observed on a real Asterisk 22.10.1")."""
from __future__ import annotations

import pytest

from tests.test_pbx_simulator import AmiTestClient, originate, run_with_sim

pytestmark = pytest.mark.integration  # the simulator serves AMI on a TCP port


def _names(messages) -> list[str]:
    return [m.get("Event") or f"Response:{m.get('Response')}" for m in messages]


@pytest.mark.parametrize("channel", ["PJSIP/390612345678@trunk1", "Local/390612345678@trunk1"])
def test_instant_failure_can_send_originate_response_before_the_channel_events(channel):
    async def body(sim, port):
        client = await AmiTestClient.connect(port)
        await client.login()
        originate(client, "A", channel, ("ChannelId", "c1"), context="allerta-outbound")
        return await client.collect(0.6)
    got = run_with_sim(body, trunks={"trunk1": 2}, response_first=1.0,
                       overrides={"390612345678": {"behaviour": "invalid_number"}})
    names = _names(got)
    assert names.index("OriginateResponse") < names.index("Newchannel") < names.index("Hangup")
    assert names.count("OriginateResponse") == 1
    response = next(m for m in got if m.get("Event") == "OriginateResponse")
    assert (response["Response"], response["Reason"]) == ("Failure", "0")
    assert {m["Cause"] for m in got if m.get("Event") == "Hangup"} == {"1"}


def test_callee_hanging_up_with_cause_19_gives_reason_0_and_ring_timeout_reason_3():
    async def body(sim, port):
        client = await AmiTestClient.connect(port)
        await client.login()
        originate(client, "A", "PJSIP/390611111111@trunk1", ("ChannelId", "c1"), ("Timeout", "20000"),
                  context="allerta-outbound")
        originate(client, "B", "PJSIP/390622222222@trunk1", ("ChannelId", "c2"), ("Timeout", "1000"),
                  context="allerta-outbound")
        return await client.collect(1.0)
    got = run_with_sim(body, trunks={"trunk1": 2},
                       overrides={"390611111111": {"behaviour": "unavailable"},
                                  "390622222222": {"behaviour": "no_answer"}})
    reasons = {m["ActionID"]: m["Reason"] for m in got if m.get("Event") == "OriginateResponse"}
    causes = {m["Uniqueid"]: m["Cause"] for m in got if m.get("Event") == "Hangup"}
    assert reasons == {"A": "0", "B": "3"} and causes == {"c1": "19", "c2": "19"}


def test_core_restart_hangs_up_with_cause_0_then_shutdown_then_closes():
    async def body(sim, port):
        client = await AmiTestClient.connect(port)
        await client.login()
        originate(client, "A", "PJSIP/390612345678@trunk1", ("ChannelId", "c1"), ("Timeout", "600000"),
                  context="allerta-outbound")
        await client.collect(0.2)   # ringing (for 6 s at time scale 0.01)
        assert await sim.core_restart(5.0) == 1
        return await client.collect(0.5), sim.status()
    got, status = run_with_sim(body, trunks={"trunk1": 2}, overrides={
        "390612345678": {"behaviour": "no_answer"}})
    names = _names(got)
    assert names == ["Hangup", "Shutdown"]
    assert got[0]["Cause"] == "0" and got[1]["Restart"] == "True"
    assert not status["accepting"] and status["active_calls"] == 0


def test_astdb_actions_read_and_delete_what_the_dialplan_stored():
    async def body(sim, port):
        client = await AmiTestClient.connect(port)
        await client.login()
        await client.collect(0.1)   # FullyBooted
        sim.astdb[("allerta", "c1")] = "confirmed"
        client.send(("Action", "DBGet"), ("ActionID", "G1"), ("Family", "allerta"), ("Key", "c1"))
        found = await client.collect(0.2)
        client.send(("Action", "DBDel"), ("ActionID", "D1"), ("Family", "allerta"), ("Key", "c1"))
        client.send(("Action", "DBGet"), ("ActionID", "G2"), ("Family", "allerta"), ("Key", "c1"))
        gone = await client.collect(0.2)
        return found, gone, dict(sim.astdb)
    found, gone, astdb = run_with_sim(body)
    assert _names(found) == ["Response:Success", "DBGetResponse", "DBGetComplete"]
    assert found[1]["Val"] == "confirmed" and found[1]["ActionID"] == "G1"
    assert [(m["Response"], m["Message"]) for m in gone] == [
        ("Success", "Key deleted successfully"), ("Error", "Database entry not found")]
    assert astdb == {}


def test_astdb_actions_need_the_system_write_class():
    async def body(sim, port):
        client = await AmiTestClient.connect(port)
        await client.login()
        await client.collect(0.1)   # FullyBooted
        client.send(("Action", "DBGet"), ("ActionID", "G1"), ("Family", "allerta"), ("Key", "c1"))
        return await client.collect(0.2)
    [refused] = run_with_sim(body, write_classes=frozenset({"originate", "call"}))
    assert (refused["Response"], refused["Message"]) == ("Error", "Permission denied")
