"""What an alert asks of the citizens who get it: a poll with numbered options, or an SMS "OK".

The question and its options are written once, by the operator, in the alert's
language; what the SMS appends to tell people how to answer ("Rispondi 1 se …,
2 se …", "Rispondi OK per confermare.") is worded here, in each version's language,
so the answer counted by the citizens' service (a number from 1 to the number of
options, or OK) is the one the text asked for. The appended text is part of the
SMS: it counts toward the segment limit like the rest.

An alert carries one or the other, never both: a reply "1" would mean both
"option 1" and "received".
"""
from __future__ import annotations

import datetime as dt
import enum
import json
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.core.control_chars import control_characters
from gateway.core.models import Alert
from gateway.core.models_citizens import PollVote

MIN_OPTIONS = 2
MAX_OPTIONS = 9          # one digit to answer with
MAX_QUESTION = 300
MAX_OPTION = 80

# How a call asks the poll after its message ("Domanda: ... Premi 1 se ..., 2 se ..."), in the
# listener's language where a voice version has it; Italian otherwise (the alert's own message).
SPOKEN_WORDING = {
    "it": {"question": "Domanda: {question}", "press": "Premi", "option": "{number} se {text}"},
    "en": {"question": "Question: {question}", "press": "Press", "option": "{number} for {text}"},
}
SPOKEN_FALLBACK = "it"

# How each version tells people to answer. A language without its own wording gets
# the English one: a Romanian or Ukrainian reader is likelier to read English than Italian.
ANSWER_WORDING = {
    "it": {"reply": "Rispondi", "option": "{number} se {text}", "confirm": "Rispondi OK per confermare."},
    "en": {"reply": "Reply", "option": "{number} for {text}", "confirm": "Reply OK to confirm."},
}
FALLBACK_LANGUAGE = "en"


class PollError(ValueError):
    """A poll or confirmation request that cannot be sent as written.

    ``msgid``/``params`` as gateway.core.alerts.AlertError (the panel translates them);
    ``field`` names what is wrong as a JSON pointer into the API's body (``/poll/options/2``).
    """

    def __init__(self, field: str, msgid: str, **params: object) -> None:
        self.field = field
        self.msgid = msgid
        self.params = params
        super().__init__(msgid % params if params else msgid)


@dataclass(frozen=True)
class Poll:
    question: str
    options: tuple[str, ...]
    closes_at: dt.datetime | None = None     # naive UTC; None: open as long as answers come


def check_poll(poll: Poll, *, now: dt.datetime, starts_at: dt.datetime | None = None) -> Poll:
    """The poll as it will be stored (trimmed), or PollError saying what and where."""
    question = poll.question.strip()
    if not question:
        raise PollError("/poll/question", "the poll has no question")
    if len(question) > MAX_QUESTION:
        raise PollError("/poll/question", "the poll question is longer than %(maximum)s characters",
                        maximum=MAX_QUESTION)
    options = tuple(option.strip() for option in poll.options)
    if not MIN_OPTIONS <= len(options) <= MAX_OPTIONS:
        raise PollError("/poll/options", "a poll has from %(low)s to %(high)s options, not %(count)s",
                        low=MIN_OPTIONS, high=MAX_OPTIONS, count=len(options))
    seen: set[str] = set()
    for index, option in enumerate(options):
        where = f"/poll/options/{index}"
        if not option:
            raise PollError(where, "poll option %(number)s is empty", number=index + 1)
        if len(option) > MAX_OPTION:
            raise PollError(where, "poll option %(number)s is longer than %(maximum)s characters",
                            number=index + 1, maximum=MAX_OPTION)
        if option.casefold() in seen:
            raise PollError(where, "poll option %(number)s repeats another option", number=index + 1)
        seen.add(option.casefold())
    for where, text in (("/poll/question", question), *((f"/poll/options/{i}", o) for i, o in enumerate(options))):
        bad = control_characters(text, allowed="")  # a line break would split the "Rispondi" line
        if bad:
            raise PollError(where, "the poll contains control characters (%(characters)s): remove them",
                            characters=bad)
    if poll.closes_at is not None and poll.closes_at <= max(now, starts_at or now):
        raise PollError("/poll/closes_at", "the poll would close before the alert goes out")
    return Poll(question, options, poll.closes_at)


def _wording(language: str) -> dict[str, str]:
    return ANSWER_WORDING.get(language, ANSWER_WORDING[FALLBACK_LANGUAGE])


def poll_text(poll: Poll, language: str) -> str:
    """The question and how to answer it: "Siete al sicuro? Rispondi 1 se sì, 2 se no."."""
    words = _wording(language)
    choices = ", ".join(words["option"].format(number=number, text=text)
                        for number, text in enumerate(poll.options, 1))
    return f"{poll.question} {words['reply']} {choices}."


def spoken_poll_text(poll: Poll, listener: str) -> str:
    """What a call says after its message: "Domanda: Siete al sicuro? Premi 1 se sì, 2 se no."."""
    words = SPOKEN_WORDING.get(listener, SPOKEN_WORDING[SPOKEN_FALLBACK])
    question = poll.question.rstrip()
    if question[-1:] not in ".?!":
        question += "."
    choices = ", ".join(words["option"].format(number=number, text=text)
                        for number, text in enumerate(poll.options, 1))
    return f"{words['question'].format(question=question)} {words['press']} {choices}."


def answer_suffix(language: str, *, poll: Poll | None, asks_confirmation: bool) -> str:
    """What the SMS of ``language`` ends with (with the line break before it), "" when nothing is asked."""
    if poll is not None:
        return "\n" + poll_text(poll, language)
    if asks_confirmation:
        return "\n" + _wording(language)["confirm"]
    return ""


def stored_poll(alert: Alert) -> Poll | None:
    """The poll an alert carries, as AlertService stored it."""
    if not alert.poll_question or not alert.poll_options:
        return None
    return Poll(alert.poll_question, tuple(json.loads(alert.poll_options)), alert.poll_closes_at)


def poll_results(session: Session, alert: Alert, *, now: dt.datetime) -> dict | None:
    """Votes per option of the alert's poll (one per number: the last before it closed); None: no poll.

    ``changed``: how many votes were changed by a later answer. Votes for a number that is
    no option are not counted (the citizens' service should not store them).
    """
    poll = stored_poll(alert)
    if poll is None:
        return None
    counts = dict(session.execute(select(PollVote.option, func.count()).where(PollVote.alert_id == alert.id)
                                  .group_by(PollVote.option)).all())
    changed = session.scalar(select(func.coalesce(func.sum(PollVote.changes), 0))
                             .where(PollVote.alert_id == alert.id)) or 0
    options = [{"number": number, "text": text, "votes": counts.get(number, 0)}
               for number, text in enumerate(poll.options, 1)]
    total = sum(option["votes"] for option in options)
    for option in options:
        option["percent"] = round(100 * option["votes"] / total) if total else 0
    return {"question": poll.question, "options": options, "votes": total, "changed": int(changed),
            "closes_at": poll.closes_at.isoformat() + "Z" if poll.closes_at else None,
            "open": poll.closes_at is None or now < poll.closes_at}


class VoteCount(enum.StrEnum):
    """What one answer did to the poll's count."""
    COUNTED = "counted"          # the number's first vote
    REPEATED = "repeated"        # the same option again: nothing changes
    CHANGED = "changed"          # another option: the last answer counts, the change is counted
    OUTDATED = "outdated"        # older than the vote counted (a backlog read late): ignored
    CLOSED = "closed"            # after the poll closed: not counted
    NOT_AN_OPTION = "not_an_option"


@dataclass(frozen=True)
class VoteResult:
    count: VoteCount
    previous: int | None = None   # the option counted before a change


def cast_vote(session: Session, alert: Alert, e164: str, option: int, *, at: dt.datetime, channel: str,
              inbound_id: int | None = None) -> VoteResult:
    """Count one answer to ``alert``'s poll, whatever the channel (SMS, keypress in a call, hotline):
    one vote per number, the last one before the poll closes wins, and every change is counted."""
    poll = stored_poll(alert)
    if poll is None or not 1 <= option <= len(poll.options):
        return VoteResult(VoteCount.NOT_AN_OPTION)
    if poll.closes_at is not None and at >= poll.closes_at:
        return VoteResult(VoteCount.CLOSED)
    vote = session.scalar(select(PollVote).where(PollVote.alert_id == alert.id, PollVote.e164 == e164))
    if vote is None:
        session.add(PollVote(alert_id=alert.id, e164=e164, option=option, voted_at=at, channel=channel,
                             inbound_id=inbound_id, changes=0))
        return VoteResult(VoteCount.COUNTED)
    if vote.voted_at is not None and at < vote.voted_at:
        return VoteResult(VoteCount.OUTDATED, vote.option)
    if vote.option == option:
        return VoteResult(VoteCount.REPEATED, vote.option)
    previous = vote.option
    vote.option, vote.voted_at, vote.channel, vote.inbound_id = option, at, channel, inbound_id
    vote.changes = (vote.changes or 0) + 1
    return VoteResult(VoteCount.CHANGED, previous)


def votes_by_number(session: Session, alert_id: int) -> dict[str, int]:
    """e164 -> the option that number chose, for the alert's CSV export."""
    return dict(session.execute(select(PollVote.e164, PollVote.option).where(PollVote.alert_id == alert_id)).all())
