"""Polls and confirmation requests: the words appended to the SMS, the checks, the count of votes."""
from __future__ import annotations

import ast
import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.core.alerts import AlertError, AlertRequest, AnswerError, Target
from gateway.core.db import utcnow
from gateway.core.models import Alert
from gateway.core.models_citizens import PollVote
from gateway.core.models_panel import AlertText
from gateway.core.polls import Poll, PollError, answer_suffix, check_poll, poll_results, poll_text, stored_poll
from gateway.core.states import Channel
from web.errors import POLL_MESSAGES

NOW = dt.datetime(2026, 12, 4, 15, 0)
SAFE = Poll("Siete al sicuro?", ("sì", "no, serve aiuto", "non sono a casa"))


def test_the_sms_ends_with_the_question_and_the_numbered_options_in_each_language():
    assert poll_text(SAFE, "it") == "Siete al sicuro? Rispondi 1 se sì, 2 se no, serve aiuto, 3 se non sono a casa."
    assert poll_text(SAFE, "en") == "Siete al sicuro? Reply 1 for sì, 2 for no, serve aiuto, 3 for non sono a casa."
    assert answer_suffix("ro", poll=SAFE, asks_confirmation=False) == "\n" + poll_text(SAFE, "en")
    assert answer_suffix("it", poll=None, asks_confirmation=True) == "\nRispondi OK per confermare."
    assert answer_suffix("en", poll=None, asks_confirmation=True) == "\nReply OK to confirm."
    assert answer_suffix("it", poll=None, asks_confirmation=False) == ""


@pytest.mark.parametrize("poll, field, message", [
    (Poll("  ", ("a", "b")), "/poll/question", "no question"),
    (Poll("Q?", ("solo",)), "/poll/options", "from 2 to 9 options, not 1"),
    (Poll("Q?", tuple("abcdefghij")), "/poll/options", "from 2 to 9 options, not 10"),
    (Poll("Q?", ("a", " ")), "/poll/options/1", "option 2 is empty"),
    (Poll("Q?", ("Sì", "sì")), "/poll/options/1", "option 2 repeats"),
    (Poll("Q?", ("a", "b\nc")), "/poll/options/1", r"control characters \(U\+000A\)"),
    (Poll("Q?", ("a", "x" * 81)), "/poll/options/1", "longer than 80"),
    (Poll("Q?", ("a", "b"), NOW - dt.timedelta(minutes=1)), "/poll/closes_at", "close before"),
])
def test_a_bad_poll_is_refused_saying_what_and_where(poll, field, message):
    with pytest.raises(PollError, match=message) as caught:
        check_poll(poll, now=NOW)
    assert caught.value.field == field


def test_a_poll_closing_before_a_scheduled_alert_goes_out_is_refused():
    with pytest.raises(PollError, match="close before"):
        check_poll(Poll("Q?", ("a", "b"), NOW + dt.timedelta(hours=1)), now=NOW,
                   starts_at=NOW + dt.timedelta(hours=2))
    assert check_poll(Poll(" Q? ", (" a ", "b")), now=NOW) == Poll("Q?", ("a", "b"))


def test_every_poll_message_is_translatable():
    known = {message._args[0] for message in POLL_MESSAGES}
    raised = set()
    root = Path(__file__).resolve().parents[1]
    for path in (root / "gateway/core/polls.py", root / "gateway/core/alerts.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "PollError":
                raised.add(ast.literal_eval(node.args[1]))
    assert raised and raised <= known, raised - known


def _request(**answers) -> AlertRequest:
    return AlertRequest(text="Allerta rossa.", target=Target(zones=("Fregene",)), **answers)


def test_the_alert_stores_the_poll_and_its_sms_counts_it(contacts):
    alerts = contacts.alerts
    alert_id, preview = alerts.create(_request(poll=Poll(" Siete al sicuro? ", ("sì", " no ")),
                                               translations={"en": "Red alert."}))
    with contacts.sessions() as s:
        alert = s.get(Alert, alert_id)
        versions = {v.language: v.sms_text for v in s.scalars(select(AlertText).where(AlertText.alert_id == alert_id))}
    assert (alert.poll_question, json.loads(alert.poll_options), alert.asks_confirmation) == \
        ("Siete al sicuro?", ["sì", "no"], False)
    assert alert.sms_text == preview.sms_text == "Allerta rossa.\nSiete al sicuro? Rispondi 1 se sì, 2 se no."
    assert versions == {"en": "Red alert.\nSiete al sicuro? Reply 1 for sì, 2 for no."}


def test_the_appended_text_counts_toward_the_segment_limit(contacts):
    text = "x" * 150     # one segment alone; with the poll, two
    alerts = contacts.alerts
    assert alerts.plan(AlertRequest(text=text, target=Target(zones=("Fregene",))))[1].segments == 1
    _sms, plan = alerts.plan(AlertRequest(text=text, target=Target(zones=("Fregene",)),
                                          poll=Poll("Q?", ("a", "b"))))
    assert plan.segments == 2
    alerts.max_segments = 1
    with pytest.raises(AlertError, match="needs 2 SMS segments"):
        alerts.plan(AlertRequest(text=text, target=Target(zones=("Fregene",)), asks_confirmation=True))


def test_a_poll_and_a_confirmation_together_or_a_confirmation_on_voice_alone_are_refused(contacts):
    with pytest.raises(AnswerError, match="not both") as caught:
        contacts.alerts.plan(_request(poll=SAFE, asks_confirmation=True))
    assert caught.value.field == "/asks_confirmation"
    voice = AlertRequest(text="Allerta.", target=Target(zones=("Fregene",)), channels=(Channel.VOICE,),
                         asks_confirmation=True)
    with pytest.raises(AnswerError, match="needs the SMS channel") as caught:
        contacts.alerts.plan(voice)
    assert caught.value.field == "/asks_confirmation"


def test_a_voice_only_alert_may_carry_a_poll_asked_after_the_message(contacts):
    voice = AlertRequest(text="Allerta.", target=Target(zones=("Fregene",)), channels=(Channel.VOICE,),
                         poll=SAFE, audio_path="/var/lib/allerta/sounds/allerta-1",
                         audio_seconds=10.0, audio_source="tts")
    alert_id, _preview = contacts.alerts.create(voice)
    with contacts.sessions() as s:
        assert stored_poll(s.get(Alert, alert_id)).options == SAFE.options


def test_results_count_one_vote_per_number_the_last_one(contacts):
    alert_id, _preview = contacts.alerts.create(_request(poll=SAFE))
    with contacts.sessions.begin() as s:
        s.add_all([PollVote(alert_id=alert_id, e164="+393331110001", option=1),
                   PollVote(alert_id=alert_id, e164="+393331110002", option=2),
                   PollVote(alert_id=alert_id, e164="+393331110003", option=2)])
    with contacts.sessions.begin() as s:  # the citizens' service changes a vote in place
        vote = s.scalar(select(PollVote).where(PollVote.e164 == "+393331110001"))
        vote.option, vote.changes = 3, 1
    with contacts.sessions() as s:
        results = poll_results(s, s.get(Alert, alert_id), now=utcnow())
    assert [(o["number"], o["text"], o["votes"], o["percent"]) for o in results["options"]] == \
        [(1, "sì", 0, 0), (2, "no, serve aiuto", 2, 67), (3, "non sono a casa", 1, 33)]
    assert (results["votes"], results["changed"], results["open"], results["question"]) == \
        (3, 1, True, "Siete al sicuro?")
