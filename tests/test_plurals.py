"""Singular and plural wherever a count is shown, in Italian and English (issue 16: "con 1 linee attive su 1")."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask_babel import force_locale

from gateway.core.plurals import is_singular, plural
from gateway.core.zones import ZoneError
from tests.web_support import client_for, post
from web.dashboard import capacity_sentences
from web.errors import error_message
from web.i18n import TRANSLATIONS_DIR, compile_catalogues, extract_messages, plural_messages

SMS = {
    ("it", 0): "Nei prossimi 10 minuti, con 0 modem attivi su 3, il sistema può raggiungere circa 0 persone via SMS",
    ("it", 1): "Nei prossimi 10 minuti, con 1 modem attivo su 3, il sistema può raggiungere circa 1 persona via SMS",
    ("it", 2): "Nei prossimi 10 minuti, con 2 modem attivi su 3, il sistema può raggiungere circa 2 persone via SMS",
    ("en", 0): "In the next 10 minutes, with 0 modems up of 3, the box can reach about 0 people by SMS",
    ("en", 1): "In the next 10 minutes, with 1 modem up of 3, the box can reach about 1 person by SMS",
    ("en", 2): "In the next 10 minutes, with 2 modems up of 3, the box can reach about 2 people by SMS",
}
VOICE = {
    ("it", 0): "Per voce, con 0 linee attive su 3, circa 0 chiamate.",
    ("it", 1): "Per voce, con 1 linea attiva su 3, circa 1 chiamata.",
    ("it", 2): "Per voce, con 2 linee attive su 3, circa 2 chiamate.",
    ("en", 0): "By voice, with 0 trunks up of 3, about 0 calls.",
    ("en", 1): "By voice, with 1 trunk up of 3, about 1 call.",
    ("en", 2): "By voice, with 2 trunks up of 3, about 2 calls.",
}


@pytest.mark.parametrize("language", ["it", "en"])
@pytest.mark.parametrize("count", [0, 1, 2])
def test_dashboard_capacity_sentence_has_the_right_form_for_0_1_and_2(app, language, count):
    cap = {"minutes": 10, "sms_people": count, "voice_people": count, "sms_lines_up": count,
           "voice_lines_up": count, "engine_reporting": count != 1, "sms_lines": 3, "voice_lines": 3}
    with app.test_request_context(), force_locale(language):
        text = capacity_sentences(cap, stale_seconds=count * 60)
    assert text["sms"].startswith(SMS[language, count]), text["sms"]
    assert text["voice"] == VOICE[language, count]
    if count == 1:  # the engine silent for a minute: singular
        assert ("più di 1 minuto:" if language == "it" else "more than 1 minute:") in text["engine"]
    else:
        assert text["engine"] == ""


def test_dashboard_page_says_one_line_in_the_singular(app, panel):
    from gateway.core.db import utcnow
    from gateway.core.models import Line
    with panel.sessions.begin() as s:
        s.add_all([Line(channel="sms", label="tim-1", state="up", sent_today=0, daily_cap=0, rate_per_minute=0.1,
                        updated_at=utcnow()),
                   Line(channel="voice", label="pstn", state="up", in_use=0, limit=1, rate_per_minute=0.1,
                        updated_at=utcnow())])
    viewer = client_for(app, "viewer")
    html = viewer.get("/").get_data(as_text=True)
    assert "con 1 modem attivo su 1, il sistema può raggiungere circa 1 persona via SMS" in html
    assert "Per voce, con 1 linea attiva su 1, circa 1 chiamata." in html
    assert "linee attive su 1" not in html
    post(viewer, "/language", {"lang": "en", "next": "/"})
    data = viewer.get("/dashboard.json").get_json()
    assert "with 1 modem up of 1, the box can reach about 1 person by SMS" in data["capacity_text"]["sms"]
    assert data["capacity_text"]["voice"] == "By voice, with 1 trunk up of 1, about 1 call."


def test_contacts_and_zone_pages_count_in_both_forms(app):
    viewer = client_for(app, "viewer")
    assert "0 contatti trovati" in viewer.get("/contacts/?group=nessuno").get_data(as_text=True)
    found = re.search(r"(\d+) contatt[oi] trovat[oi]", viewer.get("/contacts/").get_data(as_text=True)).group(0)
    assert found.endswith("contatti trovati") and not found.startswith("1 ")
    post(viewer, "/language", {"lang": "en", "next": "/"})
    assert "0 contacts found." in viewer.get("/contacts/?group=nessuno").get_data(as_text=True)


@pytest.mark.parametrize(("count", "english", "italian"), [
    (1, "Fregene still has 1 contact: merge", "Fregene ha ancora 1 contatto:"),
    (2, "Fregene still has 2 contacts: merge", "Fregene ha ancora 2 contatti:"),
])
def test_core_errors_about_a_count_take_its_form_in_the_cli_and_the_panel(app, count, english, italian):
    error = ZoneError("%(name)s still has %(num)s contact: merge it into another instead.",
                      plural="%(name)s still has %(num)s contacts: merge it into another instead.",
                      name="Fregene", num=count)
    assert str(error).startswith(english)  # what the CLI prints
    with app.test_request_context(), force_locale("it"):
        assert error_message(error).startswith(italian)
    with app.test_request_context(), force_locale("en"):
        assert error_message(error).startswith(english)


def test_babel_rules_outside_flask():
    assert [is_singular(n, "it") for n in (0, 1, 2, 1_000_000)] == [False, True, False, False]
    assert [is_singular(n) for n in (0, 1, 2)] == [False, True, False]
    assert plural(1, "%(num)s riga", "%(num)s righe", "it") == "1 riga"
    assert plural(0, "%(num)s riga", "%(num)s righe", "it") == "0 righe"
    assert plural(2, "%(num)s contact", "%(num)s contacts") == "2 contacts"


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"%\((\w+)\)", text)) - {"num"}


def test_every_plural_message_has_both_forms_in_both_catalogues():
    plurals = plural_messages()
    assert len(plurals) >= 20, "ngettext messages are no longer extracted"
    for language, catalogue in compile_catalogues().items():
        for singular, plural_id in plurals.items():
            forms = [catalogue.ngettext(singular, plural_id, n) for n in (0, 1, 2)]
            assert all(forms), (language, singular)
            assert forms[0] == forms[2] != forms[1] or singular == "%(num)s updated" and language == "en" \
                or singular == "%(num)s unchanged" and language == "en", (language, forms)
            for form in forms:  # same placeholders; the singular may say "il prossimo minuto" without the 1
                assert _placeholders(form) == _placeholders(singular), (language, form)
            assert "%(num)" in forms[0] or "%(count)" in forms[0], (language, forms)


def test_both_catalogues_have_two_plural_forms():
    for po in TRANSLATIONS_DIR.glob("*/LC_MESSAGES/messages.po"):
        text = po.read_text(encoding="utf-8")
        assert '"Plural-Forms: nplurals=2; plural=(n != 1);\\n"' in text, po
        assert "msgstr[2]" not in text, po


# A count followed by a noun that only has a plural form. Messages where the count is a configured maximum
# or always more than one (a refusal "needs 3 segments, at most 2") may keep one form: listed with why.
PLURAL_NOUNS = (r"contacts|people|persons|rows|messages|minutes|days|hours|calls|lines|modems|trunks|numbers|"
                r"zones|groups|votes|deliveries|recipients|addresses|contatti|persone|righe|messaggi|minuti|"
                r"giorni|ore|chiamate|linee|numeri|zone|gruppi|voti|destinatari|indirizzi")
ALWAYS_PLURAL = {
    "the description is too long: at most %(count)s characters",   # a constant (200)
    "The name is too long: at most %(count)s characters.",          # a constant (80)
    "a token lasts 1 to %(maximum)s days, not %(days)s",            # a constant (3650)
}
COUNT_THEN_NOUN = re.compile(r"%\((?!num\))\w+\)[sd] (?:\w+ )?(?:" + PLURAL_NOUNS + r")\b")


def test_no_single_form_message_puts_a_count_before_a_plural_noun():
    plurals = plural_messages()
    offenders = [m for m in extract_messages() if m not in plurals and m not in ALWAYS_PLURAL
                 and COUNT_THEN_NOUN.search(m)]
    assert offenders == []


def test_no_template_writes_a_number_before_a_plural_noun():
    """``{{ n }} contacts`` in a template is a count no translation can put in the singular."""
    pattern = re.compile(r"\}\}\s*(?:" + PLURAL_NOUNS + r")\b")
    templates = Path(__file__).parent.parent / "web" / "templates"
    offenders = [f"{path.name}: {match.group(0)}" for path in templates.rglob("*.html")
                 for match in pattern.finditer(path.read_text(encoding="utf-8"))]
    assert offenders == []


def test_the_compose_preview_words_its_counts(app, panel):
    from gateway.core.db import utcnow
    from gateway.core.models import Line
    with panel.sessions.begin() as s:
        s.add(Line(channel="sms", label="tim-1", state="up", sent_today=0, daily_cap=0, rate_per_minute=60.0,
                   updated_at=utcnow()))
    operator = client_for(app, "operator")
    one = post(operator, "/alerts/preview", {"text": "Prova", "numbers": "+393331234567", "channels": "sms"}).get_json()
    assert one["recipients"] == {"sms": 1} and one["recipients_text"] == {"sms": "1 destinatario"}
    assert one["eta_text"] == {"sms": "1 minuto"}
    everyone = post(operator, "/alerts/preview", {"text": "Prova", "everyone": "1", "channels": "sms"}).get_json()
    assert everyone["recipients_text"]["sms"] == f"{everyone['recipients']['sms']} destinatari"
    post(operator, "/language", {"lang": "en", "next": "/"})
    one = post(operator, "/alerts/preview", {"text": "Prova", "numbers": "+393331234567", "channels": "sms"}).get_json()
    assert one["recipients_text"] == {"sms": "1 recipient"} and one["eta_text"] == {"sms": "1 minute"}
