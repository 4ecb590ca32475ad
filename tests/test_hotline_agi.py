"""The hotline end to end: the PBX simulator runs our [allerta-hotline] context and drives the
engine's FastAGI server over TCP as Asterisk 22 would, against a real database (issue 13)."""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from asterisk.agi_server import FastAgiServer
from asterisk.asterisk_config import render_configs
from asterisk.hotline_agi import HotlineSession
from asterisk.pbx_simulator.inbound import InboundCall, InboundScript
from asterisk.pbx_simulator.population import Population
from asterisk.pbx_simulator.simulator import PbxSimulator, SimulatorConfig
from gateway.core.hotline_store import HotlineStore
from gateway.core.models import Contact, Delivery, PhoneNumberRow
from gateway.core.models_citizens import PollVote
from tests.test_hotline import add_poll
from tests.test_voice_store import voice_alert

pytestmark = pytest.mark.integration

HOUSEHOLD = "+390665211234"      # Mario and Anna Rossi's landline, zone Isola Sacra (tests/support.py)


def call_hotline(services, tmp_path, *, engine_up: bool = True, **request) -> InboundCall:
    """One scripted caller through the simulator into our FastAGI server; the call's record."""
    async def scenario() -> InboundCall:
        server = FastAgiServer(HotlineSession(HotlineStore(services.sessions), tmp_path / "sounds",
                                              check_files=False, key_timeout_ms=2000), port=0)
        port = await server.start()
        if not engine_up:
            await server.stop()       # the port is closed: the engine is down or restarting
        dialplan = render_configs("allerta", "simulator-secret", str(tmp_path / "sounds"),
                                  agi_port=port)["extensions_allerta.conf"]
        sim = PbxSimulator(SimulatorConfig(trunks={"trunk1": 4}, time_scale=0.001, dialplan=dialplan),
                           Population(seed=1))
        call = sim.incoming_call(InboundScript.from_request(request))
        async with asyncio.timeout(20):
            while sim.inbound:
                await asyncio.sleep(0.01)
        await server.stop()
        return call
    return asyncio.run(scenario())


def prompts(call: InboundCall) -> list[str]:
    return [path.rsplit("/", 1)[-1] for path in call.played]


def voice_states(services, alert_id: int) -> dict[str, str]:
    with services.sessions() as s:
        return dict(s.execute(select(Delivery.e164, Delivery.state).where(Delivery.alert_id == alert_id)).all())


def test_known_caller_hears_the_alert_and_one_stops_their_calls(contacts, tmp_path):
    alert_id = voice_alert(contacts, tmp_path)
    call = call_hotline(contacts, tmp_path, caller="06 6521 1234", keys="1")
    assert call.agi_status == "HANGUP" and call.hung_up_by == "script"   # the engine hung up
    assert prompts(call)[:4] == ["welcome", "msg", "menu-known", "confirmed"]
    assert prompts(call)[-1] == "goodbye"        # three silences after the menu
    states = voice_states(contacts, alert_id)
    assert states.pop(HOUSEHOLD) == "confirmed"
    assert set(states.values()) == {"pending"}


def test_unknown_caller_registers_by_phone(contacts, tmp_path):
    voice_alert(contacts, tmp_path)
    call = call_hotline(contacts, tmp_path, caller="+393339990001", keys="3 2 1 1")
    played = prompts(call)
    assert "menu-unknown" in played and "zone-isola-sacra" in played and "registered" in played
    with contacts.sessions() as s:
        contact = s.scalar(select(Contact).join(Contact.numbers).where(PhoneNumberRow.e164 == "+393339990001"))
        assert (contact.zone.name, contact.language, contact.consent_source) == ("Isola Sacra", "it", "phone")
        assert contact.consent_at is not None


def test_anonymous_caller_hears_every_alert_and_picks_a_zone_but_records_nothing(contacts, tmp_path):
    voice_alert(contacts, tmp_path)
    call = call_hotline(contacts, tmp_path, caller=None, keys="3 5 1")
    played = prompts(call)
    assert played[:3] == ["welcome", "msg", "menu-anonymous"]
    assert played[3] == "invalid"                 # 3 (register) needs a caller ID
    assert "zone-fregene" in played
    with contacts.sessions() as s:
        assert s.scalar(select(Contact).where(Contact.consent_source == "phone")) is None


def test_stop_is_asked_twice_then_every_planned_call_is_cancelled(contacts, tmp_path):
    alert_id = voice_alert(contacts, tmp_path)
    call = call_hotline(contacts, tmp_path, caller=HOUSEHOLD, keys="0 0")
    assert prompts(call)[-3:] == ["stop-ask", "stopped", "goodbye"]
    assert voice_states(contacts, alert_id)[HOUSEHOLD] == "cancelled"
    with contacts.sessions() as s:
        assert s.scalar(select(PhoneNumberRow.opted_out_via).where(PhoneNumberRow.e164 == HOUSEHOLD)) == "phone"


def test_known_caller_changes_zone_and_language(contacts, tmp_path):
    voice_alert(contacts, tmp_path)
    call_hotline(contacts, tmp_path, caller=HOUSEHOLD, keys="3 1 1 4 2")
    with contacts.sessions() as s:
        contacts_of_number = s.scalars(select(Contact).join(Contact.numbers)
                                       .where(PhoneNumberRow.e164 == HOUSEHOLD)).all()
        assert {(c.zone.name, c.language) for c in contacts_of_number} == {("Fregene", "en")}


def test_poll_vote_by_keypress_once_per_number(contacts, tmp_path):
    alert_id = voice_alert(contacts, tmp_path)
    (tmp_path / "msg-poll.wav").write_bytes(b"")
    add_poll(contacts, alert_id)
    call_hotline(contacts, tmp_path, caller=HOUSEHOLD, keys="2")
    call = call_hotline(contacts, tmp_path, caller=HOUSEHOLD, keys="1")
    assert "msg-poll" in prompts(call) and "vote-recorded" in prompts(call)
    with contacts.sessions() as s:
        votes = s.scalars(select(PollVote)).all()
        assert [(v.e164, v.option, v.channel, v.changes) for v in votes] == [(HOUSEHOLD, 1, "voice", 1)]


def test_hanging_up_mid_registration_records_nothing(contacts, tmp_path):
    voice_alert(contacts, tmp_path)
    # Hung up while the summary plays: zone and language chosen, never confirmed.
    call = call_hotline(contacts, tmp_path, caller="+393339990002", keys="3 2 1 1", hangup_after=7.5)
    assert call.hung_up_by == "caller" and call.agi_status == "HANGUP"
    assert "registered" not in prompts(call)
    with contacts.sessions() as s:
        assert s.scalar(select(PhoneNumberRow).where(PhoneNumberRow.e164 == "+393339990002")) is None
        assert any(command.startswith("SET VARIABLE") for command in call.commands) is False


def test_engine_down_the_context_still_plays_the_latest_message(contacts, tmp_path):
    call = call_hotline(contacts, tmp_path, engine_up=False, caller=HOUSEHOLD, keys="1")
    assert call.agi_status == "FAILURE"
    assert prompts(call) == ["latest", "call-again"]
