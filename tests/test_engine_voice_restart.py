"""kill -9 of the engine with calls up, and a restart 2 s later (issue 11 item 10):
never more than max_channels of our calls on the trunk, never two calls to one number
at once, and everybody who pressed 1 ends 'confirmed'."""
from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from contextlib import contextmanager

import pytest
from sqlalchemy import select

from asterisk.pbx_simulator.harness import PbxSimulatorProcess
from gateway.core.contacts_import import import_contacts
from gateway.core.models import Attempt, Delivery
from tests.engine_harness import kill9, services_for, start_engine, wait_until
from tests.test_engine_voice import (SECRET, calls_by_number, create_voice_alert, max_concurrency,
                                     population_csv, voice_config)

pytestmark = pytest.mark.integration


def _overlaps(calls: list[dict]) -> bool:
    spans = sorted((dt.datetime.fromisoformat(c["start"]), dt.datetime.fromisoformat(c["end"])) for c in calls)
    return any(later_start < earlier_end for (_, earlier_end), (later_start, _) in zip(spans, spans[1:]))


@contextmanager
def thirty_listeners(tmp_path, trunk_channels: int, seed: int):
    """30 landlines of one voice alert over a 10-channel trunk; everybody answers and presses 1 after
    listening 5-8 s (100-160 s at time scale 0.05): calls up at a kill outlive the engine's restart."""
    population = {"seed": seed, "answer": 1, "busy": 0, "no_answer": 0, "invalid_number": 0, "voicemail": 0,
                  "congestion": 0, "press_1": 1, "ring_seconds": [1, 4], "listen_seconds": [100, 160]}
    with PbxSimulatorProcess(tmp_path / "pbx", trunks={"trunk1": trunk_channels}, population=population,
                             time_scale=0.05, secret=SECRET) as pbx:
        config_path = voice_config(tmp_path, pbx, channels=10)
        services = services_for(config_path)
        assert import_contacts(services.sessions, population_csv(30, 0)).imported
        alert_id, _ = create_voice_alert(services, tmp_path)
        yield pbx, config_path, services, alert_id


def kill_9_and_rerun(tmp_path, config_path, when, at_kill, pause: float = 0.0) -> None:
    """Start the engine, kill -9 it once ``when()``, call ``at_kill()``, then run it again to the end."""
    engine = start_engine(config_path, log_path=tmp_path / "engine-1.log")
    try:
        assert wait_until(when, 60)
        kill9(engine)
        at_kill()
        time.sleep(pause)
        engine = start_engine(config_path, "--once", log_path=tmp_path / "engine-2.log")
        assert engine.wait(timeout=300) == 0, (tmp_path / "engine-2.log").read_text()[-3000:]
    finally:
        if engine.poll() is None:
            engine.kill()


def test_kill_9_with_calls_up_and_a_restart_never_calls_anybody_twice_at_once(tmp_path):
    # The PBX would allow 20: only our own limit of 10 keeps the trunk honest.
    with thirty_listeners(tmp_path, 20, seed=11) as (pbx, config_path, services, alert_id):
        up_at_kill: set[str] = set()
        kill_9_and_rerun(
            tmp_path, config_path, lambda: pbx.control({"cmd": "status"})["trunks"]["trunk1"]["active"] == 10,
            lambda: up_at_kill.update(c["number"].lstrip("+") for c in pbx.control({"cmd": "calls"})["calls"]),
            pause=2)
        with services.sessions() as s:
            deliveries = {d.e164.lstrip("+"): d for d in s.scalars(select(Delivery).where(Delivery.alert_id == alert_id))}
        calls = calls_by_number(pbx)
        log = (tmp_path / "engine-2.log").read_text()
    assert len(up_at_kill) == 10
    every_call = [c for placed in calls.values() for c in placed]
    assert max_concurrency(every_call) <= 10
    for number, placed in calls.items():
        assert not _overlaps(placed), (number, placed)
    # Everybody who pressed 1 is confirmed; the calls up at the kill were followed, not placed again.
    pressed = {number for number, placed in calls.items() if any(c["outcome"] == "confirmed" for c in placed)}
    assert pressed == set(deliveries)
    assert Counter(d.state for d in deliveries.values()) == {"confirmed": 30}
    for number in up_at_kill:
        assert len(calls[number]) == 1, (number, calls[number])
    assert "10 calls from before the engine restarted are still up" in log


def test_kill_9_gives_back_unflagged_the_calls_claimed_ahead_and_never_placed(tmp_path):
    with thirty_listeners(tmp_path, 10, seed=12) as (pbx, config_path, services, alert_id):
        def claimed_ahead() -> dict[int, str]:
            with services.sessions() as s:
                return dict(s.execute(select(Attempt.id, Delivery.e164).join(Delivery).where(
                    Delivery.alert_id == alert_id, Attempt.outcome == "claimed")).all())

        at_kill: dict = {}

        def look() -> None:
            at_kill.update(claimed=claimed_ahead(), journal=(tmp_path / "data" / "voice-placed.log").read_text(),
                           up={c["number"] for c in pbx.control({"cmd": "calls"})["calls"]})

        # Killed with every channel busy and calls claimed ahead for the first ones to free.
        kill_9_and_rerun(tmp_path, config_path, lambda: pbx.control({"cmd": "status"})["trunks"]["trunk1"][
            "active"] == 10 and len(claimed_ahead()) > 10, look)
        with services.sessions() as s:
            deliveries = {d.e164: d for d in s.scalars(select(Delivery).where(Delivery.alert_id == alert_id))}
        calls = calls_by_number(pbx)
    claimed, up_at_kill = at_kill["claimed"], at_kill["up"]
    placed = {int(line) for line in at_kill["journal"].split()}
    never_placed = {e164 for attempt_id, e164 in claimed.items() if attempt_id not in placed}
    assert never_placed and not never_placed & up_at_kill
    assert {claimed[a] for a in placed} == up_at_kill                  # the journal names the calls that went
    assert Counter(d.state for d in deliveries.values()) == {"confirmed": 30}
    for e164 in never_placed:    # given back as if never claimed: called once, by the second run, unflagged
        assert len(calls[e164.lstrip("+")]) == 1
        assert not deliveries[e164].possible_duplicate and deliveries[e164].submissions == 1
    for e164 in up_at_kill:      # followed to their end, flagged: they may have been placed twice
        assert len(calls[e164.lstrip("+")]) == 1 and deliveries[e164].possible_duplicate
