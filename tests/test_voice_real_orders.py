"""The voice channel against the PBX simulator behaving as a real Asterisk 22 does
(issue 11): events in any order, a PBX restart, a confirmation during an AMI gap,
one congested callee."""
from __future__ import annotations

import asyncio

import pytest

from asterisk.outcomes import PBX_GONE
from asterisk.pbx_simulator.harness import PbxSimulatorProcess
from gateway.core.channels import DeliveryFailed
from tests.test_voice_channel import (CONGESTED, CONFIRM, INVALID, LONG_CALLS, POPULATION, _control,
                                      _wait_until, message, started, voice_settings)

pytestmark = pytest.mark.integration  # the PBX simulator subprocess over TCP

UNAVAILABLE = "+393330000007"
# People who listen for 18 s (600 s at time scale 0.03): still up when the PBX goes away.
LISTENING = {**LONG_CALLS, "listen_seconds": 600}


def _up(pbx: PbxSimulatorProcess) -> list[dict]:
    """The calls the simulator has in progress now."""
    return pbx.control({"cmd": "calls"})["calls"]


def test_instant_failure_reported_before_its_channel_events_keeps_its_cause(tmp_path):
    population = {"overrides": {**POPULATION["overrides"], UNAVAILABLE: {"behaviour": "unavailable"}}}
    with PbxSimulatorProcess(tmp_path, trunks={"trunk1": 4}, population=population,
                             extra_args=["--response-first", "1"]) as pbx:
        async def scenario():
            channel, _ = await started(voice_settings(pbx.port))
            failures = []
            for number in (INVALID, UNAVAILABLE):
                await _wait_until(lambda: channel.free_slots() > 0)
                with pytest.raises(DeliveryFailed) as failure:
                    await channel.submit(message(number))
                failures.append(failure.value)
            [line] = channel.lines()
            await channel.stop()
            return failures, line
        (invalid, unavailable), line = asyncio.run(scenario())
    # Reason 0 came first; the Q.850 cause 1 after it decides: never called again.
    assert (invalid.outcome, invalid.permanent, invalid.charge_attempt, invalid.cause) == \
        ("invalid_number", True, True, 1)
    # A callee's own cause 19 comes with Reason 0: still "no answer", charged.
    assert (unavailable.outcome, unavailable.cause, unavailable.charge_attempt) == ("no_answer", 19, True)
    # Neither is the trunk's fault.
    assert line.limit == 4 and line.last_error is None


def test_pbx_restart_mid_call_charges_nobody(tmp_path):
    with PbxSimulatorProcess(tmp_path, trunks={"trunk1": 4}, population=LISTENING,
                             time_scale=0.03) as pbx:
        async def scenario():
            channel, _ = await started(voice_settings(pbx.port))
            tasks = []
            for i in range(3):
                await _wait_until(lambda: channel.free_slots() > 0)
                tasks.append(asyncio.create_task(channel.submit(message(f"+39333500{i:04d}", delivery_id=i + 1))))
            await _wait_until(lambda: [bool(c["answer"]) for c in _up(pbx)] == [True] * 3)
            assert (await _control(pbx, {"cmd": "core_restart", "seconds": 0.3}))["hung_up"] == 3
            results = await asyncio.gather(*tasks, return_exceptions=True)
            await channel.stop()
            return results
        results = asyncio.run(scenario())
    for result in results:
        assert isinstance(result, DeliveryFailed), f"recorded as {result!r}"
        assert result.reason == PBX_GONE and not result.charge_attempt and not result.permanent
        assert result.answered_at is not None and not result.possible_duplicate


def test_confirmation_during_an_ami_gap_is_recovered_from_astdb(tmp_path):
    with PbxSimulatorProcess(tmp_path, trunks={"trunk1": 4}, population=LISTENING,
                             time_scale=0.03) as pbx:
        async def scenario():
            channel, _ = await started(voice_settings(pbx.port))
            task = asyncio.create_task(channel.submit(message(CONFIRM, delivery_id=5)))
            await _wait_until(lambda: [bool(c["answer"]) for c in _up(pbx)] == [True])
            [call] = _up(pbx)
            # The person pressed 1: our dialplan stored it, then the AMI link and the call
            # went away together (a PBX crash and restart keeps AstDB on disk).
            await _control(pbx, {"cmd": "astdb_set", "family": "allerta", "key": call["channel_id"],
                                 "value": "confirmed"})
            await _control(pbx, {"cmd": "restart", "seconds": 0.3})
            receipt = await task
            await channel.stop()
            return receipt
        receipt = asyncio.run(scenario())
        actions = pbx.control({"cmd": "received"})["actions"]
        astdb = pbx.control({"cmd": "astdb"})["entries"]
    assert receipt.outcome == "confirmed"
    names = [dict((k.lower(), v) for k, v in action).get("action") for action in actions]
    assert names.count("DBGet") == 1 and names.count("DBDel") == 1 and astdb == []


def test_one_congested_callee_does_not_slow_the_trunk_but_many_do(tmp_path):
    with PbxSimulatorProcess(tmp_path, trunks={"trunk1": 4}, population=POPULATION) as pbx:
        async def scenario():
            channel, _ = await started(voice_settings(pbx.port))
            for _ in range(5):
                await _wait_until(lambda: channel.free_slots() > 0)
                with pytest.raises(DeliveryFailed):
                    await channel.submit(message(CONGESTED))
            one_callee = channel.lines()[0]
            # Now the PBX itself has no circuit left: cause 34 for every number.
            await _control(pbx, {"cmd": "set_limit", "trunk": "trunk1", "limit": 0})
            for i in range(3):
                await _wait_until(lambda: channel.free_slots() > 0)
                with pytest.raises(DeliveryFailed):
                    await channel.submit(message(f"+39333600{i:04d}"))
            trunk_wide = channel.lines()[0]
            await channel.stop()
            return one_callee, trunk_wide
        one_callee, trunk_wide = asyncio.run(scenario())
    assert one_callee.limit == 4 and one_callee.last_error is None
    assert trunk_wide.limit < 4 and "congestion" in (trunk_wide.last_error or "")


def test_a_confirmation_made_while_the_engine_was_away_is_found_at_start_up(tmp_path):
    """The engine died; the person pressed 1 and the call ended before it came back: our dialplan
    left 'confirmed' in AstDB, which the engine reads (DBGetTree) before dialling anything."""
    with PbxSimulatorProcess(tmp_path, trunks={"trunk1": 4}, population=POPULATION) as pbx:
        pbx.control({"cmd": "astdb_set", "family": "allerta", "key": "allerta-7-31-trunk1", "value": "confirmed"})
        pbx.control({"cmd": "astdb_set", "family": "other", "key": "x", "value": "kept"})

        async def scenario():
            channel, events = await started(voice_settings(pbx.port))
            ready = channel.free_slots() > 0
            await channel.stop()
            return events.late, ready
        late, ready = asyncio.run(scenario())
        astdb = pbx.control({"cmd": "astdb"})["entries"]
    assert late == [(7, 31, "confirmed", "trunk1")] and ready
    assert astdb == [["other", "x", "kept"]]
