"""Messages of the engine's errors in the panel user's language.

``gateway`` knows nothing of Flask: its ``AlertError`` (and the panel's own
``FlowError``) carry ``msgid``, an English gettext key with ``%(name)s``
placeholders, and ``params``. Here every such key is listed once with
``lazy_gettext`` so the catalogue extraction (web/i18n.py) finds it and the
test of the Italian catalogue keeps it translated; ``error_message`` looks the
key up at request time. A key nobody listed is shown in English, never lost.
``tests/test_web_followups.py`` checks that every key raised in
gateway/core/alerts.py and web/alert_flow.py is listed here.
"""
from __future__ import annotations

import re

from flask_babel import gettext, lazy_gettext, ngettext

# gateway/core/alerts.py
ALERT_MESSAGES = (
    lazy_gettext("the alert text is empty"),
    lazy_gettext("the message needs %(segments)s SMS segments (GSM-7, %(units)s septets); the configured "
                 "maximum is %(maximum)s ([general] max_sms_segments). Shorten the text."),
    lazy_gettext("the message needs %(segments)s SMS segments (UCS-2, %(units)s characters); the configured "
                 "maximum is %(maximum)s ([general] max_sms_segments). Shorten the text."),
    lazy_gettext("%(language)s is not a language code (two letters, such as en, fr, ro)"),
    lazy_gettext("the Italian text is the main text, not another version"),
    lazy_gettext("the %(language)s version is empty"),
    lazy_gettext("the %(language)s version: %(reason)s"),
    lazy_gettext("no alert with id %(id)s"),
    lazy_gettext("alert %(id)s has not gone out to anyone: there is nobody to correct or reassure"),
    lazy_gettext("alert %(id)s did not go out by %(channels)s: a follow-up uses its channels"),
    lazy_gettext("no recipients chosen: give --zone, --group, --all or --to"),
    lazy_gettext("unknown zone: %(names)s (known: %(known)s)"),
    lazy_gettext("unknown group: %(names)s (known: %(known)s)"),
    lazy_gettext("--to %(number)s: %(reason)s"),
    lazy_gettext("unknown channel(s): %(channels)s"),
    lazy_gettext("a voice alert needs its audio message (a recording or speech from the text)"),
    lazy_gettext("attempts and the per-number cap must be at least 1"),
    lazy_gettext("a follow-up is a correction or an all clear of an alert that went out"),
    lazy_gettext("the chosen target has no reachable recipient for %(channels)s"),
    lazy_gettext("alert %(id)s is %(state)s, not waiting to be sent"),
    lazy_gettext("the chosen target has no reachable recipient any more"),
    lazy_gettext("the text contains control characters (%(characters)s): remove them"),
    lazy_gettext("unknown category %(category)s: emergency or information"),
    lazy_gettext("a CAP category (%(cap)s) is what an emergency is about: an information message has none"),
    lazy_gettext("unknown CAP category %(cap)s: one of %(known)s"),
    lazy_gettext("election period %(description)s (%(span)s, Italian time): an information message goes out only "
                 "with an approver's reason that it is impersonal and indispensable (law 28/2000, art. 9); give "
                 "the reason, or send it as an emergency if it is one"),
)

# web/alert_flow.py: the approval rules
FLOW_MESSAGES = (
    lazy_gettext("unknown action %(action)s"),
    lazy_gettext("your role cannot create alerts"),
    lazy_gettext("only an approver may send without approval"),
    lazy_gettext("sending without a second person's approval needs a reason"),
    lazy_gettext("alert %(id)s is %(state)s, not a draft"),
    lazy_gettext("alert %(id)s is no longer a draft"),
    lazy_gettext("only an approver may approve an alert"),
    lazy_gettext("alert %(id)s is %(state)s, not awaiting approval"),
    lazy_gettext("the two-person rule: someone else must approve your alert"),
    lazy_gettext("only an approver may reject an alert"),
    lazy_gettext("alert %(id)s is %(state)s: nothing to cancel"),
    lazy_gettext("only the author of a draft may share it"),
    lazy_gettext("this draft belongs to %(author)s: only they may submit it, unless they share it"),
    lazy_gettext("the two-person rule: you asked for this approval, someone else must give it"),
    lazy_gettext("only its author, an approver or an administrator may cancel alert %(id)s"),
    lazy_gettext("say why the alert is cancelled"),
    lazy_gettext("only an approver may give the election-period reason (law 28/2000, art. 9): submit the alert "
                 "and an approver gives it when approving"),
)

# gateway/core/elections.py
ELECTION_MESSAGES = (
    lazy_gettext("%(option)s %(value)s: not a date (YYYY-MM-DD) or a date and time (YYYY-MM-DD HH:MM), "
                 "Italian time"),
    lazy_gettext("the description is empty: say which election (e.g. 'Comunali 2027'), it is shown "
                 "on the banner"),
    lazy_gettext("the description is too long: at most %(count)s characters"),
    lazy_gettext("the end must be after the start (the period runs from the calling of the election to the "
                 "close of the polls)"),
    lazy_gettext("no election period with id %(id)s"),
    lazy_gettext("election period %(id)s was already revoked"),
)

# gateway/core/polls.py: a poll or a confirmation request refused (raised as AnswerError)
POLL_MESSAGES = (
    lazy_gettext("the poll has no question"),
    lazy_gettext("the poll question is longer than %(maximum)s characters"),
    lazy_gettext("a poll has from %(low)s to %(high)s options, not %(count)s"),
    lazy_gettext("poll option %(number)s is empty"),
    lazy_gettext("poll option %(number)s is longer than %(maximum)s characters"),
    lazy_gettext("poll option %(number)s repeats another option"),
    lazy_gettext("the poll contains control characters (%(characters)s): remove them"),
    lazy_gettext("the poll would close before the alert goes out"),
    lazy_gettext("an alert asks for a confirmation or carries a poll, not both: a reply 1 would mean both"),
    lazy_gettext("a confirmation request needs the SMS channel (a call is confirmed with 1)"),
)

# gateway/core/inbox.py
INBOX_MESSAGES = (
    lazy_gettext("unknown kind %(kind)s (known: %(known)s)"),
    lazy_gettext("no incoming message with id %(id)s"),
    lazy_gettext("%(sender)s is not a phone number: it cannot receive a reply"),
    lazy_gettext("%(sender)s is not a mobile number: it cannot receive an SMS"),
    lazy_gettext("the note is longer than %(maximum)s characters"),
    lazy_gettext("no help request with id %(id)s"),
    lazy_gettext("help request %(id)s was already handled by %(by)s"),
)

# gateway.core.replies.ReplyError says what is wrong with a reply in English, with the details inline.
REPLY_REASONS = (
    (re.compile(r"^the reply is empty$"), lazy_gettext("the reply is empty")),
    (re.compile(r"^the reply contains control characters \((?P<characters>.+)\)$"),
     lazy_gettext("the reply contains control characters (%(characters)s)")),
    (re.compile(r"^the reply cannot be sent by SMS: (?P<reason>.+)$"),
     lazy_gettext("the reply cannot be sent by SMS: %(reason)s")),
    (re.compile(r"^the reply needs (?P<segments>\d+) SMS, at most (?P<maximum>\d+)$"),
     lazy_gettext("the reply needs %(segments)s SMS, at most %(maximum)s")),
)

# web/tokens.py
TOKEN_MESSAGES = (
    lazy_gettext("give the token a name (which system uses it)"),
    lazy_gettext("the token name is %(length)s characters; at most %(maximum)s"),
    lazy_gettext("the token name contains control characters"),
    lazy_gettext("unknown token role %(role)s; one of %(roles)s"),
    lazy_gettext("a token lasts 1 to %(maximum)s days, not %(days)s"),
    lazy_gettext("the owner %(owner)s is not an active panel account"),
    lazy_gettext("%(owner)s is %(owner_role)s: their token cannot be %(role)s"),
    lazy_gettext("a token named %(name)s exists already; names are unique"),
)

# Values of %(state)s and %(channels)s, so "alert 3 is active" reads whole in Italian.
WORDS = {
    "draft": lazy_gettext("a draft"), "awaiting_approval": lazy_gettext("awaiting approval"),
    "active": lazy_gettext("being sent"), "cancelled": lazy_gettext("cancelled"),
    "rejected": lazy_gettext("rejected"), "completed": lazy_gettext("finished"),
    "sms": lazy_gettext("SMS"), "voice": lazy_gettext("voice"), "sms or voice": lazy_gettext("SMS or voice"),
    "voice or sms": lazy_gettext("voice or SMS"),
}

# gateway.core.audio.AudioError texts name a file; what an operator needs is the reason.
AUDIO_REASONS = (
    (re.compile(r"the recording is silent"), lazy_gettext("the recording is silent")),
    (re.compile(r"the recording is empty"), lazy_gettext("the recording is empty")),
    (re.compile(r"the recording lasts (?P<seconds>\d+) s, longer than the limit of (?P<limit>\d+) s"),
     lazy_gettext("the recording lasts %(seconds)s s, longer than the limit of %(limit)s s")),
    (re.compile(r"not a readable audio file"),
     lazy_gettext("not a readable audio file (WAV, MP3 or OGG Vorbis)")),
)


def error_message(error: Exception) -> str:
    """``error`` in the current user's language when its key is known, else its English text."""
    msgid = getattr(error, "msgid", None)
    if not msgid:
        return str(error)
    params = {key: str(WORDS[value]) if isinstance(value, str) and value in WORDS else value
              for key, value in getattr(error, "params", {}).items()}
    plural = getattr(error, "plural", None)
    try:
        if plural:  # a count: its form in the user's language (gateway.core.translatable)
            return ngettext(msgid, plural, int(params.pop("num")), **params)
        return gettext(msgid, **params) if params else gettext(msgid)
    except (KeyError, ValueError, TypeError):  # a translation with a broken placeholder
        return str(error)


def audio_reason(message: str) -> str:
    """The reason of an ``AudioError`` in the user's language, when it is one we know."""
    return _known_reason(message, AUDIO_REASONS)


def reply_reason(message: str) -> str:
    """Why a reply (gateway.core.replies.ReplyError) was refused, in the user's language when known."""
    return _known_reason(message, REPLY_REASONS)


def _known_reason(message: str, reasons: tuple) -> str:
    for pattern, translated in reasons:
        match = pattern.search(message)
        if match:
            return str(translated) % match.groupdict() if match.groupdict() else str(translated)
    return message
