"""Polls by keypress in outbound calls (issue 13): the spoken question rendered beside each voice
version, the dialplan's poll branch run by the PBX simulator, and the vote counted once per number
by the same function as SMS and hotline votes. In-process, no socket."""
from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from asterisk.ami_protocol import AmiMessage
from asterisk.asterisk_config import dialplan_modules, render_configs
from asterisk.call_tracker import CallTracker
from asterisk.pbx_simulator.population import Population, PopulationError
from asterisk.pbx_simulator.simulator import PbxSimulator, SimulatorConfig
from asterisk.voice_channel import VOTE_FAMILY, VoiceChannel, VoiceSettings
from asterisk.trunks import TrunkConfig
from asterisk.ami_client import AmiSettings
from gateway.core.alerts import AlertRequest, Target
from gateway.core.audio import AudioInfo, poll_wav
from gateway.core.call_votes import alert_poll, options_to_ask, record_call_vote
from gateway.core.db import utcnow
from gateway.core.models import Alert, Delivery
from gateway.core.models_citizens import PollVote
from gateway.core.polls import Poll, VoteCount, cast_vote, poll_results, spoken_poll_text
from gateway.core.states import Channel
from gateway.core.voice_messages import Version, VoiceRenderer, remove_message
from tests.test_voice_channel import EventsRecorder

NUMBER = "390612345678"
SAFE = Poll("Siete al sicuro?", ("sì", "no, serve aiuto", "non sono a casa"))


# --- the words and the files ------------------------------------------------------------

def test_the_spoken_poll_asks_after_the_message_in_the_listeners_language():
    assert spoken_poll_text(SAFE, "it") == ("Domanda: Siete al sicuro? Premi 1 se sì, 2 se no, serve aiuto, "
                                            "3 se non sono a casa.")
    assert spoken_poll_text(SAFE, "en").startswith("Question: Siete al sicuro? Press 1 for sì, 2 for")
    # A listener whose language has no wording hears Italian, as the alert's own message.
    assert spoken_poll_text(Poll("Tutto bene", ("sì", "no")), "ro") == "Domanda: Tutto bene. Premi 1 se sì, 2 se no."


def test_the_poll_is_rendered_beside_each_voice_version_and_removed_with_it(tmp_path):
    spoken: list[tuple[str, str, Path]] = []

    def speak(text, listener, out_wav, **_options):
        Path(out_wav).write_bytes(b"RIFF")
        spoken.append((text, listener, Path(out_wav)))
        return AudioInfo(Path(out_wav), 1.0, 8000, 1, 16)

    renderer = VoiceRenderer(tmp_path, comune="Comune di Fiumicino", drill_prefix="ESERCITAZIONE", speak=speak)
    for version in (Version(None, "it", "Allerta rossa.", "it"), Version("en", "en", "Red alert.", "en")):
        name = renderer.new_name()
        renderer.render_with_confirmation(version, name, drill=False, poll=SAFE)
        assert poll_wav(name).is_file()
        assert [text for text, _, out in spoken if out == poll_wav(name)] == [spoken_poll_text(SAFE, version.listener)]
        remove_message(str(name))
        assert not poll_wav(name).exists() and not name.with_suffix(".wav").exists()
    # Without a poll, nothing more than before: the message and its "thank you".
    name = renderer.new_name()
    renderer.render_with_confirmation(Version(None, "it", "Allerta.", "it"), name, drill=False)
    assert not poll_wav(name).exists()


# --- the dialplan -------------------------------------------------------------------------

def test_the_rendered_dialplan_asks_the_poll_and_needs_no_new_module():
    conf = render_configs("allerta", "a-good-secret", "/var/lib/allerta/sounds",
                          read_timeout_seconds=6)["extensions_allerta.conf"]
    assert "Read(VOTE,${ALLERTA_AUDIO}-poll,1,,1,6)" in conf
    assert "Set(DB(allerta-vote/${UNIQUEID})=${VOTE} ${EPOCH})" in conf
    assert "UserEvent(AllertaVote,Delivery: ${ALLERTA_DELIVERY},Option: ${VOTE})" in conf
    # app_read, app_userevent, func_db and func_env were already needed (and listed for doctor).
    assert {"app_read", "app_userevent", "func_db", "func_env"} <= set(dialplan_modules())


def run_call(override: dict, *, poll: str = "3") -> tuple[list[AmiMessage], PbxSimulator]:
    async def scenario():
        sim = PbxSimulator(SimulatorConfig(trunks={"trunk1": 2}, time_scale=0.001),
                           Population(seed=1, overrides={NUMBER: override}, ring_seconds=(1, 1)))
        events: list[AmiMessage] = []
        sim.emit = lambda pairs: events.append(AmiMessage(pairs))   # type: ignore[method-assign]
        sim.place_call(AmiMessage([
            ("Action", "Originate"), ("Channel", f"PJSIP/{NUMBER}@trunk1"), ("Context", "allerta-outbound"),
            ("Exten", "s"), ("ChannelId", "allerta-7-1a-trunk1"), ("Async", "true"),
            ("Variable", f"ALLERTA_DELIVERY=7,ALLERTA_AUDIO=/var/lib/allerta/sounds/allerta-1,ALLERTA_AMD=1,"
                         f"ALLERTA_POLL={poll}")]), True)
        while sim.calls:
            await asyncio.sleep(0.01)
        return events, sim
    return asyncio.run(scenario())


def user_events(events: list[AmiMessage]) -> list[tuple[str, str]]:
    return [(e["UserEvent"], e.get("Result") or e.get("Option") or "") for e in events
            if e.get("Event") == "UserEvent"]


@pytest.mark.parametrize("behaviour, result", [("confirm", "confirmed"), ("listen", "listened")])
def test_after_the_message_the_poll_is_asked_and_a_key_is_a_vote(behaviour, result):
    events, sim = run_call({"behaviour": behaviour, "listen_seconds": 2, "vote": "2"})
    assert user_events(events) == [("AllertaPlaying", ""), ("AllertaResult", result), ("AllertaVote", "2"),
                                   ("AllertaHangup", "")]
    # Left in AstDB first, with when it was pressed: the engine reads it back after an AMI gap.
    option, epoch = sim.astdb[(VOTE_FAMILY, "allerta-7-1a-trunk1")].split()
    assert option == "2" and int(epoch) > 0
    tracker = CallTracker("allerta-7-1a-trunk1")
    for event in events:
        tracker.feed(event, dt.datetime.now(dt.timezone.utc))
    assert tracker.take_vote() == 2 and tracker.take_vote() is None


@pytest.mark.parametrize("vote", ["7", "0", "*"])
def test_a_key_that_is_no_option_is_asked_again_once_then_nothing(vote):
    events, sim = run_call({"behaviour": "confirm", "listen_seconds": 1, "vote": vote})
    assert "AllertaVote" not in [name for name, _ in user_events(events)]
    assert not any(family == VOTE_FAMILY for family, _ in sim.astdb)


def test_no_poll_no_question_and_a_machine_is_never_asked():
    events, _ = run_call({"behaviour": "confirm", "listen_seconds": 1, "vote": "1"}, poll="")
    assert [name for name, _ in user_events(events)] == ["AllertaPlaying", "AllertaResult", "AllertaHangup"]
    events, _ = run_call({"behaviour": "voicemail", "vote": "1"})
    assert ("AllertaResult", "voicemail") in user_events(events)
    assert "AllertaVote" not in [name for name, _ in user_events(events)]


def test_the_population_scripts_one_vote_per_call():
    population = Population(overrides={NUMBER: {"behaviour": "listen", "vote": ["2", "1"]}})
    assert [population.plan_call(NUMBER)[0].vote for _ in range(3)] == ["2", "1", "1"]
    with pytest.raises(PopulationError, match="vote must be a key"):
        Population(overrides={NUMBER: {"vote": "12"}})


# --- the engine -----------------------------------------------------------------------------

def test_a_vote_left_in_astdb_reaches_its_delivery_with_when_it_was_pressed():
    events = EventsRecorder()
    channel = VoiceChannel(VoiceSettings(ami=AmiSettings(username="allerta", secret="allerta"),
                                         trunks=(TrunkConfig("trunk1", "PJSIP/{number}@trunk1"),)))
    channel._events = events   # noqa: SLF001 - what start() sets, without a PBX
    channel._stored_vote("allerta-41-1b-trunk1", "3 1764860400")   # noqa: SLF001
    channel._stored_vote("allerta-41-1c-trunk1", "confirmed")      # noqa: SLF001 - not a vote: ignored
    assert events.votes == [(41, 3, dt.datetime(2025, 12, 4, 15, 0))]


def _voice_poll_alert(contacts, **poll) -> int:
    request = AlertRequest(text="Allerta rossa.", target=Target(zones=("Fregene",)), channels=(Channel.VOICE,),
                           poll=Poll(SAFE.question, SAFE.options, **poll), audio_path="/var/lib/allerta/sounds/allerta-1",
                           audio_seconds=10.0, audio_source="tts")
    return contacts.alerts.create(request)[0]


def test_a_vote_by_keypress_is_counted_once_per_number_and_a_change_is_counted(contacts):
    alert_id = _voice_poll_alert(contacts)
    assert options_to_ask(alert_poll(contacts.sessions, alert_id), utcnow()) == 3
    with contacts.sessions() as s:
        first, second = s.scalars(select(Delivery).where(Delivery.alert_id == alert_id)
                                  .order_by(Delivery.id)).all()[:2]
    at = utcnow()
    assert record_call_vote(contacts.sessions, first.id, 1, at).count is VoteCount.COUNTED
    assert record_call_vote(contacts.sessions, first.id, 1, at + dt.timedelta(minutes=1)).count is VoteCount.REPEATED
    assert record_call_vote(contacts.sessions, second.id, 2, at).count is VoteCount.COUNTED
    # Called again, the second number chose another option: one vote still, the change counted.
    changed = record_call_vote(contacts.sessions, second.id, 3, at + dt.timedelta(minutes=5))
    assert (changed.count, changed.previous) == (VoteCount.CHANGED, 2)
    # An older vote read back late (AstDB after a gap) does not undo the newer one.
    assert record_call_vote(contacts.sessions, second.id, 1, at).count is VoteCount.OUTDATED
    assert record_call_vote(contacts.sessions, first.id, 4, at).count is VoteCount.NOT_AN_OPTION
    assert record_call_vote(contacts.sessions, 999999, 1, at) is None
    with contacts.sessions() as s:
        votes = {v.e164: (v.option, v.channel, v.changes) for v in s.scalars(select(PollVote))}
        results = poll_results(s, s.get(Alert, alert_id), now=utcnow())
    assert votes == {first.e164: (1, "voice", 0), second.e164: (3, "voice", 1)}
    assert [o["votes"] for o in results["options"]] == [1, 0, 1] and results["changed"] == 1


def test_after_the_poll_closes_a_call_asks_nothing_and_a_late_key_is_not_counted(contacts):
    closes = utcnow() + dt.timedelta(hours=1)
    alert_id = _voice_poll_alert(contacts, closes_at=closes)
    poll = alert_poll(contacts.sessions, alert_id)
    assert options_to_ask(poll, closes - dt.timedelta(seconds=1)) == 3
    assert options_to_ask(poll, closes) == 0
    with contacts.sessions.begin() as s:
        alert = s.get(Alert, alert_id)
        delivery = s.scalars(select(Delivery).where(Delivery.alert_id == alert_id)).first()
        assert cast_vote(s, alert, delivery.e164, 1, at=closes, channel=Channel.VOICE).count is VoteCount.CLOSED
