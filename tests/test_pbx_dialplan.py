"""The PBX simulator runs our rendered dialplan against callees as Asterisk 22 does (issue 11).

In-process, no socket: calls are placed on a PbxSimulator and its events collected.
"""
from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import pytest

from asterisk.ami_protocol import AmiMessage
from asterisk.asterisk_config import render_configs
from asterisk.call_tracker import CallTracker
from asterisk.dialplan_modules import required_modules
from asterisk.pbx_simulator.dialplan import evaluate_expression, parse_dialplan
from asterisk.pbx_simulator.population import Population
from asterisk.pbx_simulator.simulator import PbxSimulator, SimulatorConfig
from gateway.core.states import AttemptOutcome
from tests.support import DATA

NUMBER = "390612345678"


def run_call(override: dict, *, amd: bool = True, audio: str = "/var/lib/allerta/sounds/allerta-1",
             technology: str = "PJSIP", **config) -> tuple[list[AmiMessage], PbxSimulator]:
    """One call to NUMBER through the simulator; its events, and the simulator."""
    async def scenario():
        sim = PbxSimulator(SimulatorConfig(trunks={"trunk1": 2}, time_scale=0.001, **config),
                           Population(seed=1, overrides={NUMBER: override}, ring_seconds=(1, 1)))
        events: list[AmiMessage] = []
        sim.emit = lambda pairs: events.append(AmiMessage(pairs))   # type: ignore[method-assign]
        channel = f"{technology}/{NUMBER}@trunk1"
        sim.place_call(AmiMessage([
            ("Action", "Originate"), ("Channel", channel), ("Context", "allerta-outbound"), ("Exten", "s"),
            ("ChannelId", "allerta-7-abc"), ("Async", "true"),
            ("Variable", f"ALLERTA_DELIVERY=7,ALLERTA_AUDIO={audio},ALLERTA_AMD={'1' if amd else '0'}")]), True)
        while sim.calls:
            await asyncio.sleep(0.01)
        return events, sim
    return asyncio.run(scenario())


def user_events(events: list[AmiMessage]) -> list[tuple[str, ...]]:
    return [(e["UserEvent"], e.get("Result", ""), e.get("Digit", "")) if e["UserEvent"] == "AllertaResult"
            else (e["UserEvent"],) for e in events if e.get("Event") == "UserEvent"]


def result_of(events: list[AmiMessage]) -> str | None:
    return next((e["Result"] for e in events if e.get("UserEvent") == "AllertaResult"), None)


def engine_outcome(events: list[AmiMessage]) -> AttemptOutcome:
    tracker = CallTracker("allerta-7-abc")
    for event in events:
        if event.get("Uniqueid", "").startswith("allerta-7-abc") or event.get("Event") == "OriginateResponse":
            tracker.feed(event, None)   # type: ignore[arg-type]
    return tracker.outcome().outcome


# --- the fault a real Asterisk showed, reproduced with the old dialplan -----------------

OLD_DIALPLAN = (DATA / "extensions_allerta_amd.conf").read_text(encoding="utf-8")


@pytest.mark.parametrize("override", [
    {"behaviour": "confirm", "listen_seconds": 0.5},          # presses 1 at once: lost during Wait(1)
    {"behaviour": "confirm", "listen_seconds": 2.0},          # presses 1 during AMD(): lost too
    {"behaviour": "listen", "greets": True},                  # "Pronto?" during Wait(1), then silence
])
def test_the_old_amd_dialplan_calls_people_machines_as_asterisk_did(override):
    events, _ = run_call(override, dialplan=OLD_DIALPLAN)
    assert result_of(events) == "voicemail"


# --- the dialplan we ship --------------------------------------------------------------

@pytest.mark.parametrize("seconds", [0.05, 0.5, 1.0, 2.0, 4.0, 9.0])
@pytest.mark.parametrize("amd", [True, False])
@pytest.mark.parametrize("technology", ["PJSIP", "Local"])
def test_a_key_pressed_at_any_moment_after_answer_confirms(seconds, amd, technology):
    events, sim = run_call({"behaviour": "confirm", "listen_seconds": seconds}, amd=amd, technology=technology)
    assert user_events(events) == [("AllertaPlaying",), ("AllertaResult", "confirmed", "1"), ("AllertaHangup",)]
    # Left in AstDB before it was reported: the engine reads it back after an AMI gap.
    assert sim.astdb == {("allerta", "allerta-7-abc"): "confirmed"}
    assert engine_outcome(events) == AttemptOutcome.CONFIRMED


@pytest.mark.parametrize("then, result", [("confirm", "confirmed"), ("listen", "listened")])
def test_a_person_greeting_once_is_not_a_machine(then, result):
    events, _ = run_call({"behaviour": then, "greets": True, "listen_seconds": 9})
    assert result_of(events) == result


@pytest.mark.parametrize("amd, result", [(True, "voicemail"), (False, "listened")])
def test_an_answering_machine_gets_the_message_after_its_greeting(amd, result):
    events, _ = run_call({"behaviour": "voicemail"}, amd=amd)
    assert result_of(events) == result


def _wav(path: Path, seconds: float) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0" * int(8000 * seconds))


@pytest.mark.parametrize("behaviour", ["voicemail", "confirm", "listen"])
@pytest.mark.parametrize("amd", [True, False])
def test_a_missing_message_file_is_an_error_on_every_path(tmp_path, behaviour, amd):
    events, _ = run_call({"behaviour": behaviour, "listen_seconds": 1}, amd=amd,
                         audio=str(tmp_path / "missing"), sounds_on_disk=True)
    assert user_events(events) == [("AllertaResult", "error", ""), ("AllertaHangup",)]
    assert engine_outcome(events) == AttemptOutcome.FAILED


def test_a_real_file_plays_for_its_length_and_the_confirmation_beside_it(tmp_path):
    _wav(tmp_path / "allerta-1.wav", 12.0)
    _wav(tmp_path / "allerta-1-confirmed.wav", 1.0)
    events, _ = run_call({"behaviour": "confirm", "listen_seconds": 11}, audio=str(tmp_path / "allerta-1"),
                         sounds_on_disk=True)
    assert result_of(events) == "confirmed"
    # A machine greeting of 4 s inside a 3 s message is not heard as one: the documented price.
    _wav(tmp_path / "short.wav", 3.0)
    events, _ = run_call({"behaviour": "voicemail"}, audio=str(tmp_path / "short"), sounds_on_disk=True)
    assert result_of(events) == "listened"


@pytest.mark.parametrize("module", ["app_userevent", "app_stack", "func_channel"])
def test_a_missing_module_hangs_the_call_up_and_the_engine_does_not_call_it_answered(module):
    events, _ = run_call({"behaviour": "confirm", "listen_seconds": 3}, missing_modules=frozenset({module}))
    results = [e for e in user_events(events) if e[0] == "AllertaResult"]
    if module == "app_userevent":
        assert results == []
        assert engine_outcome(events) == AttemptOutcome.FAILED
    else:
        # Without hangup handlers (app_stack/func_channel) the call still goes through, unreported cause.
        assert results == [("AllertaResult", "confirmed", "1")]
        assert ("AllertaHangup",) not in user_events(events)


def test_a_missing_stat_function_is_an_error_not_a_delivery():
    events, _ = run_call({"behaviour": "listen"}, missing_modules=frozenset({"func_env"}))
    assert result_of(events) == "error"


def test_an_answered_call_with_nothing_said_is_not_answered():
    """The engine's side: Up, hung up, no AllertaPlaying, no AllertaResult."""
    events, _ = run_call({"behaviour": "listen"}, missing_modules=frozenset({"app_userevent"}))
    assert not [e for e in events if e.get("Event") == "UserEvent"]
    tracker_outcome = engine_outcome(events)
    assert tracker_outcome == AttemptOutcome.FAILED


# --- pieces ------------------------------------------------------------------------------

def test_required_modules_are_read_from_the_dialplan():
    modules = required_modules(render_configs("allerta", "s3cret-value", "/var/lib/sounds")["extensions_allerta.conf"])
    assert {"app_talkdetect", "app_waitforsilence", "app_read", "app_playback", "app_userevent", "app_stack",
            "func_channel", "func_env", "func_db", "func_dialplan", "pbx_config", "format_wav",
            "res_timing_timerfd"} <= set(modules)
    assert "app_amd" not in modules and "pbx_builtin" not in modules
    assert "app_amd" in required_modules(OLD_DIALPLAN)


@pytest.mark.parametrize("expression, value", [
    ('"1" != "1"', "0"), ('"" = "1"', "0"), ("1", "1"), ("", ""), ("2 < 3", "1"), ("1 + 1", "2"),
    ('$ 1 & 0', "0"), ("1 & 2", "2"), ("0 | 3", "3"),
])
def test_expressions(expression, value):
    if expression.startswith("$"):
        expression = expression[1:]
    assert evaluate_expression(expression) == value


def test_the_shipped_dialplan_parses_with_its_labels():
    plan = parse_dialplan(render_configs("allerta", "s3cret-value", "/var/lib/sounds")["extensions_allerta.conf"])
    outbound = plan.contexts["allerta-outbound"]
    assert set(outbound) == {"s", "1", "2", "talk"}
    for label in ("play", "digit", "again", "listened", "detect", "confirmed", "done", "error"):
        plan.find("allerta-outbound", "s", label)


def test_a_greeting_share_leaves_seeded_populations_unchanged():
    plain, greeting = Population(seed=5), Population(seed=5, greet=1.0)
    before = [plain.plan_call(f"39333000{i:04d}")[0] for i in range(20)]
    assert not any(plan.greets for plan in before)
    assert all(plan.greets for plan, _ in (greeting.plan_call(f"39333000{i:04d}") for i in range(20)))
    # Without the share, the same seed draws the same callees as before the key existed.
    again = Population(seed=5, greet=0.0)
    assert [again.plan_call(f"39333000{i:04d}")[0] for i in range(20)] == before
