"""Translations: Italian by default and complete, compiled from the shipped .po files at start."""
from __future__ import annotations

from web.i18n import TRANSLATIONS_DIR, compile_catalogues, extract_messages, missing_translations


def test_italian_catalogue_is_complete():
    assert extract_messages(), "no translatable string found: is the extraction broken?"
    assert missing_translations("it") == []


def test_placeholders_survive_translation():
    italian = compile_catalogues()["it"]
    for message in extract_messages():
        translated = italian.gettext(message)
        for placeholder in ("%(name)s", "%(id)s", "%(count)s", "%(minutes)s", "%(people)s", "%(reason)s"):
            assert (placeholder in message) == (placeholder in translated), (message, translated)


def test_only_text_catalogues_are_shipped():
    assert not list(TRANSLATIONS_DIR.rglob("*.mo"))
    assert {p.parent.parent.name for p in TRANSLATIONS_DIR.rglob("messages.po")} == {"it", "en"}
