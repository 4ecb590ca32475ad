"""What a citizen's SMS asks for: pure reading of the text, no database, no reply.

Citizens write as they speak, in Italian first, English too: "Stop per favore",
"ISCRIVIMI isola sacra en", "ok grazie 👍", "siamo bloccati al primo piano".
``read_command`` turns such a text into one ``Command``; what is done with it
(the contact's state, the alert it answers, the poll or zone menu it may be
an answer to) is decided by whoever holds that context.

Order of reading, safety first: a plea for help anywhere in the text wins over
everything (a trapped person may also write "ok" or "stop"); then a command
word at the start (STOP, ISCRIVI, ZONA, LINGUA, INFO); then a confirmation
made only of confirming and polite words; then a bare number (a vote, a zone
chosen from a numbered list, or "1" to confirm: the context decides).
Case, accents, punctuation and emoji never matter.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from gateway.core.contacts_csv import parse_language


class Intent(StrEnum):
    STOP = "stop"                    # nothing more, of any kind, on any channel
    STOP_INFO = "stop_info"          # no information messages; emergencies still come
    REGISTER = "register"            # ISCRIVI [zone] [language]
    ZONE = "zone"                    # ZONA x
    LANGUAGE = "language"            # LINGUA xx
    CONFIRM = "confirm"              # OK, RICEVUTO (a bare "1" is NUMBER: the context decides)
    HELP_REQUEST = "help_request"    # AIUTO, SOS, "siamo bloccati"
    NUMBER = "number"                # a bare number: vote, numbered zone, or "1" to confirm
    INFO = "info"                    # INFO: the list of commands
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Command:
    intent: Intent
    zone: str | None = None          # a zone as the town names it, when one was recognised
    zone_text: str = ""              # what was written where a zone was expected ("" if nothing)
    language: str | None = None      # an ISO code ("en") when one was recognised
    number: int | None = None


_STOP = {"stop", "arresta", "basta", "cancellami", "cancella", "disiscrivimi", "unsubscribe", "stopp"}
_INFO_WORDS = {"info", "informazioni", "informazione", "notizie", "news"}
_REGISTER = {"iscrivi", "iscrivimi", "iscrizione", "registra", "registrami", "register", "subscribe",
             "signup", "join"}
_ZONE = {"zona", "zone", "quartiere", "area"}
_LANGUAGE = {"lingua", "language", "lang", "idioma"}
_CONFIRM = {"ok", "okay", "okk", "ricevuto", "ricevuta", "ricevo", "received", "confermo", "conferma",
            "confirm", "confirmed", "letto", "visto", "got", "it", "si", "yes", "capito", "understood"}
_POLITE = {"grazie", "mille", "thanks", "thank", "you", "tante", "molte", "ciao", "buonasera", "buongiorno",
           "saluti", "va", "bene", "tutto", "all", "good", "fine", "noted"}
# Whole words (after folding) or phrases that ask for help. "help" is here, not among the
# commands: a citizen writing HELP after an alert is more likely trapped than curious.
_HELP_WORDS = {"aiuto", "aiutateci", "aiutatemi", "aiutare", "sos", "soccorso", "soccorsi", "help", "emergenza",
               "intrappolato", "intrappolata", "intrappolati", "intrappolate", "bloccato", "bloccata",
               "bloccati", "bloccate", "isolati", "isolato", "isolata", "ferito", "ferita", "feriti",
               "mayday", "trapped", "stuck", "injured", "rescue", "annegando", "allagata", "allagato"}
_HELP_PHRASES = ("non riusciamo a uscire", "non riesco a uscire", "non possiamo uscire", "can t get out",
                 "cannot get out", "venite a prenderci", "acqua in casa", "water in the house")
_NEGATIONS = {"non", "not", "no"}


def fold(text: str) -> str:
    """Lower case, accents and punctuation removed, emoji dropped, spaces collapsed:
    "Sì, RICEVUTO! 👍" -> "si ricevuto"."""
    plain = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch)).casefold()
    return " ".join(re.sub(r"[^\w]+|_", " ", plain).split())


def match_zone(words: Sequence[str], zones: Sequence[str]) -> tuple[str | None, int]:
    """The zone named by the first words (the longest name that fits), and how many words it took."""
    folded = sorted(((fold(zone).split(), zone) for zone in zones), key=lambda item: -len(item[0]))
    for zone_words, zone in folded:
        if zone_words and list(words[:len(zone_words)]) == zone_words:
            return zone, len(zone_words)
    return None, 0


def _language(word: str) -> str | None:
    try:
        return parse_language(word) if word else None
    except ValueError:
        return None


def _asks_for_help(words: list[str], folded: str) -> bool:
    if any(phrase in folded for phrase in _HELP_PHRASES):
        return True
    for index, word in enumerate(words):
        # "non siamo bloccati" / "not stuck" is good news, not a plea.
        if word in _HELP_WORDS and not _NEGATIONS.intersection(words[max(0, index - 2):index]):
            return True
    return False


def _register(rest: list[str], zones: Sequence[str]) -> Command:
    """ISCRIVI [zone] [language]: "iscrivimi isola sacra en", "iscrivi en isola sacra", "iscrivi"."""
    zone, used = match_zone(rest, zones)
    if zone is not None:
        tail = rest[used:]
        return Command(Intent.REGISTER, zone=zone, zone_text=" ".join(rest[:used]),
                       language=_language(tail[0]) if tail else None)
    if rest and _language(rest[0]):
        zone, used = match_zone(rest[1:], zones)
        if zone is not None:
            return Command(Intent.REGISTER, zone=zone, zone_text=" ".join(rest[1:1 + used]),
                           language=_language(rest[0]))
    # No zone recognised: the reply offers the numbered list. A language may still be last.
    language = _language(rest[-1]) if rest else None
    return Command(Intent.REGISTER, zone_text=" ".join(rest[:-1] if language else rest), language=language)


def read_command(text: str, zones: Sequence[str] = ()) -> Command:
    """What ``text`` asks for; ``zones``: the town's zone names, to recognise one in the text."""
    folded = fold(text)
    words = folded.split()
    if not words:
        return Command(Intent.UNKNOWN)
    if _asks_for_help(words, folded):
        return Command(Intent.HELP_REQUEST)
    first, rest = words[0], words[1:]
    if first in _STOP:
        return Command(Intent.STOP_INFO if rest[:1] and rest[0] in _INFO_WORDS else Intent.STOP)
    if first in _REGISTER:
        return _register(rest, zones)
    if first in _ZONE:
        zone, _used = match_zone(rest, zones)
        return Command(Intent.ZONE, zone=zone, zone_text=" ".join(rest))
    if first in _LANGUAGE:
        return Command(Intent.LANGUAGE, language=_language(rest[0]) if rest else None)
    if first in _INFO_WORDS and not rest:
        return Command(Intent.INFO)
    if len(words) == 1 and first.isdigit() and len(first) <= 3:
        return Command(Intent.NUMBER, number=int(first))
    if first in _CONFIRM and all(word in _CONFIRM or word in _POLITE for word in words):
        return Command(Intent.CONFIRM)
    return Command(Intent.UNKNOWN)
