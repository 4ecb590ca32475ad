"""What the engine answers a citizen by SMS, in Italian (the default) and English.

Short by design: one SMS when the data allow (the zone list takes two or three),
written in GSM 03.38 so the accented letters Italian needs (à è é ì ò ù) stay in
the 7-bit alphabet: an apostrophe typed as ’ or a word like "perché" with the
wrong accent would turn the answer into UCS-2 and halve its room (sms_text).
Every answer names the commands in the language of the citizen's phone book
entry: the words themselves are the same in both languages' reader
(sms_commands), so an English speaker may also write ISCRIVI.
"""
from __future__ import annotations

from collections.abc import Sequence

from gateway.core.sms_text import plan_sms
from gateway.core.states import ReplyReason

LANGUAGES = ("it", "en")

_TEXTS: dict[str, dict[str, str]] = {
    "it": {
        ReplyReason.STOPPED: "{comune}: non riceverai più messaggi, su nessun canale. Per tornare scrivi ISCRIVI.",
        ReplyReason.STOPPED_INFO: "{comune}: non riceverai più messaggi informativi; le allerte di emergenza "
                                  "arriveranno comunque. Per annullare scrivi ISCRIVI.",
        ReplyReason.REGISTERED: "{comune}: iscrizione fatta, zona {zone}, lingua {language}. STOP per "
                                "cancellarti, ZONA o LINGUA per cambiare.",
        ReplyReason.ZONE_CHANGED: "{comune}: zona cambiata in {zone}.",
        ReplyReason.LANGUAGE_CHANGED: "{comune}: lingua cambiata in {language}.",
        ReplyReason.CONFIRMED: "{comune}: conferma ricevuta, grazie.",
        ReplyReason.HELP_REQUEST: "{comune}: richiesta di aiuto ricevuta, la giriamo ai soccorsi. Se c'è "
                                  "pericolo di vita chiama subito il 112.",
        ReplyReason.POLL_VOTE: "{comune}: risposta {option} registrata, grazie.",
        ReplyReason.COMMANDS: "{comune}: scrivi STOP per non ricevere più messaggi, ISCRIVI e la zona per "
                              "iscriverti, ZONA nome, LINGUA it/en. Emergenze: 112.",
        "poll_changed": "{comune}: risposta cambiata in {option}, grazie.",
        "poll_closed": "{comune}: il sondaggio è chiuso, la risposta non è stata contata.",
        "not_registered": "{comune}: questo numero non è iscritto. Scrivi ISCRIVI e la tua zona.",
        "unknown_language": "{comune}: lingua non riconosciuta. Scrivi LINGUA IT o LINGUA EN.",
        "zone_menu": "{comune}: scegli la zona, rispondi con il numero: {options}",
        "zone_menu_more": "0 altre",
        "no_zones": "{comune}: iscrizione fatta, lingua {language}. STOP per cancellarti.",
    },
    "en": {
        ReplyReason.STOPPED: "{comune}: you will get no more messages on any channel. To come back, text "
                             "REGISTER.",
        ReplyReason.STOPPED_INFO: "{comune}: no more information messages; emergency alerts will still reach "
                                  "you. To undo, text REGISTER.",
        ReplyReason.REGISTERED: "{comune}: registered, zone {zone}, language {language}. STOP to leave, ZONE "
                                "or LANGUAGE to change.",
        ReplyReason.ZONE_CHANGED: "{comune}: zone changed to {zone}.",
        ReplyReason.LANGUAGE_CHANGED: "{comune}: language changed to {language}.",
        ReplyReason.CONFIRMED: "{comune}: confirmation received, thank you.",
        ReplyReason.HELP_REQUEST: "{comune}: your request for help was received and passed on. If life is in "
                                  "danger call 112 now.",
        ReplyReason.POLL_VOTE: "{comune}: answer {option} recorded, thank you.",
        ReplyReason.COMMANDS: "{comune}: text STOP to get no more messages, REGISTER and your zone to sign up, "
                              "ZONE name, LANGUAGE it/en. Emergencies: 112.",
        "poll_changed": "{comune}: answer changed to {option}, thank you.",
        "poll_closed": "{comune}: the poll is closed, your answer was not counted.",
        "not_registered": "{comune}: this number is not registered. Text REGISTER and your zone.",
        "unknown_language": "{comune}: language not recognised. Text LANGUAGE IT or LANGUAGE EN.",
        "zone_menu": "{comune}: choose your zone, reply with the number: {options}",
        "zone_menu_more": "0 more",
        "no_zones": "{comune}: registered, language {language}. STOP to leave.",
    },
}

_LANGUAGE_NAMES = {"it": {"it": "italiano", "en": "inglese"}, "en": {"it": "Italian", "en": "English"}}

# The zone list fills at most this many SMS; the rest is offered with "0 more".
ZONE_MENU_SEGMENTS = 2


def reply_language(language: str | None) -> str:
    """The language we answer in: English for an English speaker, Italian for everyone else."""
    return language if language in LANGUAGES else "it"


def language_name(code: str, in_language: str) -> str:
    return _LANGUAGE_NAMES[reply_language(in_language)].get(code, code)


def reply_text(key: str, reply_in: str | None, **values: object) -> str:
    """The answer ``key`` in the language ``reply_in`` (a contact's), filled with ``values``."""
    return _TEXTS[reply_language(reply_in)][key].format(**values)


def zone_menu_page(zones: Sequence[str], start: int, language: str | None, comune: str) -> tuple[str, int]:
    """The numbered list from ``zones[start]`` on (numbers count from the first zone of the whole
    list, so an answer means the same whatever page it was read on), as many as fit in
    ZONE_MENU_SEGMENTS SMS with the "0 more" entry when some are left; and the index after the last."""
    more = _TEXTS[reply_language(language)]["zone_menu_more"]
    shown: list[str] = []
    end = start
    for index in range(start, len(zones)):
        candidate = shown + [f"{index + 1} {zones[index]}"]
        tail = [more] if index + 1 < len(zones) else []
        text = reply_text("zone_menu", language, comune=comune, options=", ".join(candidate + tail))
        if shown and plan_sms(text).segments > ZONE_MENU_SEGMENTS:
            break
        shown, end = candidate, index + 1
    tail = [more] if end < len(zones) else []
    return reply_text("zone_menu", language, comune=comune, options=", ".join(shown + tail)), end
