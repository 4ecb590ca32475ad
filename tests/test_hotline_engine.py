"""The hotline through the real engine process and the PBX simulator process (issue 13):
the engine killed while a caller is in the menu, and restarted."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from asterisk.asterisk_config import render_configs
from asterisk.pbx_simulator.harness import PbxSimulatorProcess
from gateway.core.contacts_import import import_contacts
from gateway.core.hotline_prompts import PROMPTS, render_hotline_sounds
from gateway.core.models import Contact, PhoneNumberRow
from gateway.shell.bench_hotline import free_port, listening
from tests.engine_harness import kill9, services_for, start_engine, wait_until
from tests.test_engine_voice import SECRET, create_voice_alert, max_concurrency, population_csv, voice_config

pytestmark = pytest.mark.integration
CALLER = "+393339990007"


def hotline_dialplan(tmp_path) -> tuple[int, Path]:
    """A free FastAGI port, and our dialplan rendered for it with the prompts as (empty) files."""
    port = free_port()
    sounds = tmp_path / "data" / "sounds"
    dialplan = tmp_path / "extensions_allerta.conf"
    dialplan.write_text(render_configs("allerta", SECRET, str(sounds), agi_port=port)["extensions_allerta.conf"])
    # Their words do not matter here: espeak-ng is not needed.
    render_hotline_sounds(sounds, ["Fregene"], PROMPTS, render=lambda text, lang, path, **_: path.write_bytes(b""))
    return port, dialplan


def hotline_config(tmp_path, pbx, port: int, *, channels: int, trunk_extra: str = ""):
    config_path = voice_config(tmp_path, pbx, channels=channels)
    text = config_path.read_text().replace("[asterisk]\n", f"[asterisk]\nhotline = true\nagi_port = {port}\n")
    config_path.write_text(text + trunk_extra)
    return config_path


def inbound(pbx, call_id: int) -> dict:
    return next(c for c in pbx.control({"cmd": "inbound_calls"})["calls"] if c["id"] == call_id)


def test_engine_killed_mid_menu_the_caller_is_told_to_call_again_and_nothing_half_done_is_kept(tmp_path):
    port, dialplan = hotline_dialplan(tmp_path)
    population = {"seed": 3, "answer": 1, "press_1": 1, "ring_seconds": [1, 2], "listen_seconds": [2, 3]}
    with PbxSimulatorProcess(tmp_path / "pbx", trunks={"trunk1": 6}, population=population, time_scale=0.2,
                             secret=SECRET, extra_args=["--dialplan", str(dialplan)]) as pbx:
        config_path = hotline_config(tmp_path, pbx, port, channels=4)
        services = services_for(config_path)
        assert import_contacts(services.sessions, population_csv(3, 0)).imported
        create_voice_alert(services, tmp_path)
        engine = start_engine(config_path, log_path=tmp_path / "engine-1.log")
        try:
            assert wait_until(lambda: listening(port), 30), (tmp_path / "engine-1.log").read_text()
            # 3: register; then the zone menu plays while the engine is killed.
            first = pbx.control({"cmd": "incoming_call", "caller": CALLER, "keys": "3 1 1 1"})["id"]
            assert wait_until(lambda: any("zones-intro" in c for c in inbound(pbx, first)["commands"]), 30)
            kill9(engine)
            assert wait_until(lambda: inbound(pbx, first)["ended"], 30)
            engine = start_engine(config_path, log_path=tmp_path / "engine-2.log")
            assert wait_until(lambda: listening(port), 30), (tmp_path / "engine-2.log").read_text()
            second = pbx.control({"cmd": "incoming_call", "caller": CALLER, "keys": "3 1 1 1"})["id"]
            assert wait_until(lambda: inbound(pbx, second)["ended"], 60)
        finally:
            if engine.poll() is None:
                engine.terminate()
                engine.wait(timeout=20)
        cut_short, again = inbound(pbx, first), inbound(pbx, second)
    names = [path.rsplit("/", 1)[-1] for path in cut_short["played"]]
    assert names[-2:] == ["latest", "call-again"] and "registered" not in names
    assert "registered" in [path.rsplit("/", 1)[-1] for path in again["played"]]
    with services.sessions() as s:
        registered = s.scalars(select(Contact).join(Contact.numbers).where(PhoneNumberRow.e164 == CALLER)).all()
        assert [(c.zone.name, c.consent_source) for c in registered] == [("Fregene", "phone")]


def test_hotline_callers_get_the_reserved_lines_and_outbound_keeps_to_its_share(tmp_path):
    port, dialplan = hotline_dialplan(tmp_path)
    population = {"seed": 5, "answer": 1, "press_1": 1, "ring_seconds": [1, 2], "listen_seconds": [15, 25]}
    # The PBX has 4 lines; 2 are kept for the hotline.
    with PbxSimulatorProcess(tmp_path / "pbx", trunks={"trunk1": 4}, population=population, time_scale=0.1,
                             secret=SECRET, extra_args=["--dialplan", str(dialplan)]) as pbx:
        config_path = hotline_config(tmp_path, pbx, port, channels=4, trunk_extra="inbound_reserved = 2\n")
        services = services_for(config_path)
        assert import_contacts(services.sessions, population_csv(10, 0)).imported
        alert_id, _ = create_voice_alert(services, tmp_path)
        engine = start_engine(config_path, log_path=tmp_path / "engine.log")
        try:
            assert wait_until(lambda: listening(port), 30), (tmp_path / "engine.log").read_text()
            assert wait_until(lambda: pbx.control({"cmd": "status"})["trunks"]["trunk1"]["active"] == 2, 30)
            # Two callers while the alert keeps its 2 lines busy: both answered, each repeating for a while.
            ids = [pbx.control({"cmd": "incoming_call", "caller": f"+39333999001{i}", "keys": "2 2 2 2 2 2"})["id"]
                   for i in range(2)]
            assert wait_until(lambda: all(inbound(pbx, i)["ended"] for i in ids), 60)
            assert wait_until(lambda: pbx.control({"cmd": "status"})["totals"].get("confirmed", 0) == 10, 90)
        finally:
            engine.terminate()
            engine.wait(timeout=20)
        callers = [inbound(pbx, i) for i in ids]
        outbound = pbx.calls()
    assert [c["agi_status"] for c in callers] == ["HANGUP", "HANGUP"]     # answered, ended by the engine
    assert not any(c["outcome"] == "congestion" for c in outbound)        # never an originate over the limit
    assert max_concurrency(outbound + callers) <= 4
