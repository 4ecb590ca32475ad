"""The hotline's decisions (gateway/core/hotline.py) and their records (hotline_store.py).

The same paths run end to end through the PBX simulator and FastAGI in tests/test_hotline_agi.py."""
from __future__ import annotations

import json

from sqlalchemy import select, update

from gateway.core.hotline import (Caller, Confirm, HotlineCall, Message, Register, SetLanguage, Situation,
                                  StopCalls, Vote, prompt)
from gateway.core.audit import audit_log_for
from gateway.core.hotline_store import HotlineStore
from gateway.core.models import Alert, Contact, Delivery, PhoneNumberRow
from gateway.core.models_citizens import PollVote
from gateway.core.models_panel import AuditEntry
from gateway.shell.hotline_upkeep import refresh_hotline_files
from tests.support import FakeClock
from tests.test_voice_store import voice_alert

ALERT = Message(7, "/s/alert-7")
SITUATION = Situation(zones=("Fregene", "Isola Sacra"), languages=("it", "en"),
                      in_progress={None: (ALERT,), "Isola Sacra": (ALERT,)})
MARIO = Caller("+390665211234", known=True, zone="Isola Sacra")


def press(call: HotlineCall, keys: str):
    """Every step for the keys ('.' is a silence), the first from start()."""
    steps = [call.start()]
    for key in keys:
        steps.append(call.on_key(None if key == "." else key))
    return steps


def effects(steps):
    return [effect for step in steps for effect in step.effects]


def test_known_caller_hears_their_zone_then_the_menu():
    first = HotlineCall(MARIO, SITUATION).start()
    assert [s.name for s in first.play] == ["welcome", "/s/alert-7", "menu-known"]
    assert first.wants_key and not first.effects


def test_no_alert_in_progress_plays_the_latest_information_message():
    info = Message(3, "/s/info-3")
    quiet = Situation(zones=(), languages=("it",), in_progress={}, latest_information=info)
    assert [s.name for s in HotlineCall(MARIO, quiet).start().play] == ["welcome", "/s/info-3", "menu-known"]


def test_one_confirms_the_alerts_in_progress():
    assert effects(press(HotlineCall(MARIO, SITUATION), "1")) == [Confirm((7,))]


def test_stop_needs_zero_twice():
    assert effects(press(HotlineCall(MARIO, SITUATION), "05")) == []
    steps = press(HotlineCall(MARIO, SITUATION), "00")
    assert effects(steps) == [StopCalls()] and steps[-1].hangup


def test_change_zone_and_language_for_a_known_caller():
    assert effects(press(HotlineCall(MARIO, SITUATION), "311")) == [Register("Fregene", "it")]
    steps = press(HotlineCall(MARIO, SITUATION), "42")
    assert effects(steps) == [SetLanguage("en")] and steps[-1].language == "en"


def test_unknown_caller_registers_with_zone_language_and_a_confirmed_summary():
    call = HotlineCall(Caller("+393330000009", known=False), SITUATION)
    steps = press(call, "3221")
    assert effects(steps) == [Register("Isola Sacra", "en")]
    summary = steps[-2].play
    assert (summary[1].kind, summary[1].name) == ("zone", "Isola Sacra")
    assert call.caller.known


def test_hanging_up_before_the_summary_records_nothing():
    assert effects(press(HotlineCall(Caller("+393330000009", known=False), SITUATION), "322")) == []


def test_anonymous_caller_cannot_register_but_can_pick_a_zone():
    call = HotlineCall(Caller(None, known=False), SITUATION)
    steps = press(call, "352")
    assert steps[1].play[0] == prompt("invalid")
    assert [s.name for s in steps[3].play] == ["/s/alert-7", "menu-anonymous"]
    assert effects(steps) == []


def test_zones_are_paged_by_eight_with_nine_for_more():
    zones = tuple(f"Zona {n:02d}" for n in range(1, 13))
    call = HotlineCall(Caller("+393330000009", known=False), Situation(zones, ("it",), {}))
    steps = press(call, "39")
    first_page = [s.name for s in steps[1].play if s.kind == "zone"]
    second_page = [s.name for s in steps[2].play if s.kind == "zone"]
    assert first_page == list(zones[:8]) and second_page == list(zones[8:])
    assert effects(press(HotlineCall(Caller("+393330000009", known=False), Situation(zones, ("it",), {})),
                         "39311")) == [Register("Zona 11", "it")]


def test_poll_vote_by_keypress():
    poll = Message(9, "/s/alert-9", poll_audio="/s/alert-9-poll", poll_options=2)
    situation = Situation((), ("it",), {None: (poll,), "Isola Sacra": (poll,)})
    steps = press(HotlineCall(MARIO, situation), "2")
    assert steps[0].play[-1].name == "/s/alert-9-poll"
    assert effects(steps) == [Vote(9, 2)]


def test_three_silences_say_goodbye():
    steps = press(HotlineCall(MARIO, SITUATION), "...")
    assert steps[-1].hangup and not effects(steps)


# --- the records -----------------------------------------------------------------------

def add_poll(services, alert_id: int) -> None:
    with services.sessions.begin() as s:
        s.execute(update(Alert).where(Alert.id == alert_id).values(
            poll_question="Avete acqua in casa?", poll_options=json.dumps(["sì", "no"])))


def test_store_confirm_ends_that_numbers_calls_only(contacts, tmp_path):
    alert_id = voice_alert(contacts, tmp_path)
    store = HotlineStore(contacts.sessions)
    caller = store.caller("06 6521 1234")
    assert caller.known and caller.zone == "Isola Sacra"
    situation = store.situation("it")
    assert [m.alert_id for m in situation.in_progress["Isola Sacra"]] == [alert_id]
    store.record(caller, Confirm((alert_id,)))
    with contacts.sessions() as s:
        states = dict(s.execute(select(Delivery.e164, Delivery.state).where(Delivery.alert_id == alert_id)).all())
    assert states.pop(caller.e164) == "confirmed"
    assert set(states.values()) == {"pending"}


def test_store_stop_cancels_planned_calls_and_opts_out(contacts, tmp_path):
    alert_id = voice_alert(contacts, tmp_path)
    store = HotlineStore(contacts.sessions)
    caller = store.caller("+390665211234")
    store.record(caller, StopCalls())
    with contacts.sessions() as s:
        number = s.scalar(select(PhoneNumberRow).where(PhoneNumberRow.e164 == caller.e164))
        state = s.scalar(select(Delivery.state).where(Delivery.alert_id == alert_id,
                                                      Delivery.e164 == caller.e164))
    assert (number.opted_out, number.opted_out_via, state) == (True, "phone", "cancelled")


def test_store_registers_an_unknown_caller_with_phone_consent_and_audits_it(contacts, tmp_path):
    audit = audit_log_for(contacts.config, contacts.sessions)
    store = HotlineStore(contacts.sessions, audit=audit)
    caller = store.caller("0039 333 999 0001")
    assert not caller.known
    store.record(caller, Register("Fregene", "en"))
    again = store.caller("+393339990001")
    assert (again.known, again.zone, again.language) == (True, "Fregene", "en")
    with contacts.sessions() as s:
        contact = s.scalar(select(Contact).where(Contact.consent_source == "phone"))
        assert contact.consent_at is not None
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "hotline.register"))
        assert (entry.actor, entry.target) == ("phone +393339990001", "+393339990001")
    assert audit.verify() == []


def test_store_vote_once_per_number(contacts, tmp_path):
    alert_id = voice_alert(contacts, tmp_path)
    add_poll(contacts, alert_id)
    store = HotlineStore(contacts.sessions)
    caller = store.caller("+390665211234")
    store.record(caller, Vote(alert_id, 1))
    store.record(caller, Vote(alert_id, 2))
    with contacts.sessions() as s:
        votes = s.scalars(select(PollVote)).all()
        assert [(v.option, v.channel, v.changes) for v in votes] == [(2, "voice", 1)]


def test_upkeep_renders_prompts_zones_and_polls_and_publishes_the_latest_message(contacts, tmp_path):
    alert_id = voice_alert(contacts, tmp_path)
    (tmp_path / "msg.wav").write_bytes(b"RIFF-message")
    add_poll(contacts, alert_id)
    spoken = {}

    def render(text, language, path, **_):
        spoken[path.name] = text
        path.write_bytes(b"")
    sounds = tmp_path / "sounds"
    refresh_hotline_files(HotlineStore(contacts.sessions), sounds, render=render)
    # The same words as an outbound call's (gateway.core.polls.spoken_poll_text).
    assert spoken["msg-poll.wav"] == "Domanda: Avete acqua in casa? Premi 1 se sì, 2 se no."
    assert spoken["zone-isola-sacra.wav"] == "Isola Sacra" and "menu-known.wav" in spoken
    assert (sounds / "hotline" / "latest.wav").read_bytes() == b"RIFF-message"
    spoken.clear()
    refresh_hotline_files(HotlineStore(contacts.sessions), sounds, render=render)
    assert spoken == {}      # nothing rendered twice


def test_callers_ringing_together_share_one_reading_of_the_situation(contacts, tmp_path):
    clock = FakeClock()
    store = HotlineStore(contacts.sessions, clock=clock)
    assert store.situation("it").in_progress == {}
    alert_id = voice_alert(contacts, tmp_path)
    assert store.situation("it").in_progress == {}          # read 0 s ago: the same reading
    clock.now += 5
    assert [m.alert_id for m in store.situation("it").in_progress[None]] == [alert_id]
