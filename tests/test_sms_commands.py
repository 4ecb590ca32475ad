"""Reading citizens' SMS: Italian first, English too; case, accents, punctuation, emoji and extra words tolerated."""
from __future__ import annotations

import pytest

from gateway.core.sms_commands import Command, Intent, fold, read_command

ZONES = ("Aranova", "Focene", "Fregene", "Isola Sacra", "Isola", "Centro Storico", "Passoscuro")


@pytest.mark.parametrize("text, expected", [
    # STOP and its variants; STOP INFO
    ("STOP", Command(Intent.STOP)),
    ("stop.", Command(Intent.STOP)),
    ("Stop per favore, grazie", Command(Intent.STOP)),
    ("ARRESTA", Command(Intent.STOP)),
    ("Basta!!", Command(Intent.STOP)),
    ("cancellami", Command(Intent.STOP)),
    ("Unsubscribe", Command(Intent.STOP)),
    ("STOP INFO", Command(Intent.STOP_INFO)),
    ("stop informazioni", Command(Intent.STOP_INFO)),
    ("Stop news please", Command(Intent.STOP_INFO)),
    # registration
    ("ISCRIVI", Command(Intent.REGISTER)),
    ("ISCRIVIMI isola sacra en", Command(Intent.REGISTER, zone="Isola Sacra", zone_text="isola sacra", language="en")),
    ("iscrivi Isola", Command(Intent.REGISTER, zone="Isola", zone_text="isola")),
    ("Registra FREGENE", Command(Intent.REGISTER, zone="Fregene", zone_text="fregene")),
    ("register en focene", Command(Intent.REGISTER, zone="Focene", zone_text="focene", language="en")),
    ("Iscrivimi a Macchia Grande inglese", Command(Intent.REGISTER, zone_text="a macchia grande", language="en")),
    ("registrami centro storico, italiano", Command(Intent.REGISTER, zone="Centro Storico",
                                                     zone_text="centro storico", language="it")),
    # zone and language
    ("ZONA Passoscuro", Command(Intent.ZONE, zone="Passoscuro", zone_text="passoscuro")),
    ("zona atlantide", Command(Intent.ZONE, zone_text="atlantide")),
    ("LINGUA en", Command(Intent.LANGUAGE, language="en")),
    ("Language: english", Command(Intent.LANGUAGE, language="en")),
    ("lingua klingon", Command(Intent.LANGUAGE)),
    # confirmation
    ("OK", Command(Intent.CONFIRM)),
    ("Ok 👍", Command(Intent.CONFIRM)),
    ("ricevuto, grazie mille", Command(Intent.CONFIRM)),
    ("RICEVUTO", Command(Intent.CONFIRM)),
    ("Sì", Command(Intent.CONFIRM)),
    ("Got it, thanks", Command(Intent.CONFIRM)),
    ("1", Command(Intent.NUMBER, number=1)),
    (" 2. ", Command(Intent.NUMBER, number=2)),
    # help: wins over everything else
    ("AIUTO", Command(Intent.HELP_REQUEST)),
    ("sos", Command(Intent.HELP_REQUEST)),
    ("Siamo bloccati al primo piano, via Roma 3", Command(Intent.HELP_REQUEST)),
    ("ok ma siamo intrappolati", Command(Intent.HELP_REQUEST)),
    ("STOP aiuto", Command(Intent.HELP_REQUEST)),
    ("Help, we are trapped", Command(Intent.HELP_REQUEST)),
    ("non riusciamo a uscire di casa", Command(Intent.HELP_REQUEST)),
    ("Soccorso!", Command(Intent.HELP_REQUEST)),
    # not a plea: negated
    ("ricevuto, non siamo bloccati", Command(Intent.UNKNOWN)),
    # info and the rest
    ("INFO", Command(Intent.INFO)),
    ("Chi siete?", Command(Intent.UNKNOWN)),
    ("", Command(Intent.UNKNOWN)),
    ("👍", Command(Intent.UNKNOWN)),
    ("ok non va bene per niente", Command(Intent.UNKNOWN)),
])
def test_read_command(text, expected):
    assert read_command(text, ZONES) == expected


def test_fold_drops_case_accents_punctuation_and_emoji():
    assert fold("Sì, RICEVUTO! 👍") == "si ricevuto"
    assert fold("Città—Perché?") == "citta perche"
    assert fold("\ud83d\ude00") == ""          # a lone surrogate pair, as a bad decoder may leave it


def test_any_text_is_read_without_an_error():
    from hypothesis import given, strategies as st

    @given(st.text())
    def check(text):
        assert isinstance(read_command(text, ZONES), Command)
    check()
