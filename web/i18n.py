"""Translations: the `.po` catalogues we ship, compiled in memory at start.

We ship only the text `.po` files (reviewable, diffable) and compile them
with Babel's own API when the app is created: no binary `.mo` in the
repository, no build step that an installation could forget, and nothing
written into the package directory (which may be read-only). Compiling our
catalogue takes a few milliseconds.
"""
from __future__ import annotations

import io
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po
from babel.support import NullTranslations, Translations
from flask import current_app
from flask_babel import Babel, Domain, get_locale

TRANSLATIONS_DIR = Path(__file__).with_name("translations")
LANGUAGES = {"it": "Italiano", "en": "English"}
DEFAULT_LANGUAGE = "it"
# Italian and English both have one singular (exactly 1) and one plural (0, 2, 3, ...). CLDR gives Italian a
# third form for round millions ("1 milione di persone"); none of our sentences needs it, and with two forms
# a translator fills two lines, not three. Every catalogue is written with this header.
PLURAL_FORMS = "nplurals=2; plural=(n != 1);"
# The functions whose strings are translatable, for Babel's extractor: (1, 2) are the singular and the plural.
KEYWORDS = {"_": None, "gettext": None, "lazy_gettext": None, "ngettext": (1, 2), "lazy_ngettext": (1, 2),
            "pgettext": ((1, "c"), 2), "lazy_pgettext": ((1, "c"), 2)}


def compile_catalogues(directory: Path = TRANSLATIONS_DIR, domain: str = "messages") -> dict[str, Translations]:
    """``{language: Translations}`` from ``<directory>/<lang>/LC_MESSAGES/<domain>.po``."""
    catalogues = {}
    for po in sorted(directory.glob(f"*/LC_MESSAGES/{domain}.po")):
        language = po.parent.parent.name
        with po.open("rb") as handle:
            # abort_invalid: a broken entry (a msgid left without its msgstr by a merge) fails here,
            # in every panel test, instead of printing a warning to stdout and being dropped.
            catalog = read_po(handle, locale=language, domain=domain, abort_invalid=True)
        buffer = io.BytesIO()
        write_mo(buffer, catalog, use_fuzzy=False)
        buffer.seek(0)
        catalogues[language] = Translations(buffer, domain=domain)
    return catalogues


class CompiledDomain(Domain):
    """A Flask-Babel domain that reads the catalogues compiled by ``compile_catalogues``."""

    def get_translations(self):  # noqa: ANN201 - same signature as Flask-Babel's
        catalogues = current_app.extensions.get("allerta_catalogues", {})
        locale = get_locale()
        return catalogues.get(str(locale) if locale else DEFAULT_LANGUAGE) or NullTranslations()


class PanelBabel(Babel):
    @property
    def domain_instance(self) -> Domain:  # type: ignore[override]
        return _DOMAIN


_DOMAIN = CompiledDomain()


def extract_messages(root: Path = Path(__file__).parent) -> dict[str, list[str]]:
    """Every translatable string of the panel (Python and templates) -> where it is used; a plural
    message under its singular (``plural_messages`` gives its plural).

    Used by the test that keeps the Italian catalogue complete, and by
    ``python -m web.i18n`` which lists what is missing from each catalogue.
    """
    return {key: where for key, (_plural, where) in _extract(root).items()}


def plural_messages(root: Path = Path(__file__).parent) -> dict[str, str]:
    """Every ``ngettext`` message of the panel: singular msgid -> plural msgid."""
    return {key: plural for key, (plural, _where) in _extract(root).items() if plural}


def _extract(root: Path) -> dict[str, tuple[str | None, list[str]]]:
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    options = {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    found: dict[str, tuple[str | None, list[str]]] = {}
    for filename, lineno, message, _comments, context in extract_from_dir(
            str(root), method_map=method_map, options_map=options, keywords=KEYWORDS):
        plural = None
        if isinstance(message, tuple):
            message, plural = message[0], (message[1] if len(message) > 1 else None)
        key = with_context(context, message)
        _old_plural, where = found.setdefault(key, (plural, []))
        where.append(f"{filename}:{lineno}")
    return found


def with_context(context: str | None, message: str) -> str:
    """The key gettext files a message under: "context\x04message" when it has a context (web/labels.py:
    the same English word, such as "Cancelled", needs different Italian for an alert and a message)."""
    return f"{context}\x04{message}" if context else message


def missing_translations(language: str) -> list[str]:
    """Messages the code uses that ``language``'s catalogue does not translate (a plural message: both forms)."""
    catalogue = compile_catalogues().get(language)
    known = getattr(catalogue, "_catalog", {})
    plurals = plural_messages()
    return [m for m in extract_messages()
            if not (all(known.get((m, i)) for i in range(2)) if m in plurals else known.get(m))]


def update_catalogues(directory: Path = TRANSLATIONS_DIR) -> None:
    """Rewrite every catalogue with the strings the code uses now, keeping the translations it has."""
    found = _extract(Path(__file__).parent)
    for po in sorted(directory.glob("*/LC_MESSAGES/messages.po")):
        language = po.parent.parent.name
        with po.open("rb") as handle:
            old = {with_context(m.context, m.id[0] if isinstance(m.id, tuple) else m.id): m.string
                   for m in read_po(handle, locale=language) if m.id}
        catalog = Catalog(locale=language, project="allerta", charset="utf-8")
        catalog.mime_headers = [("Plural-Forms", PLURAL_FORMS)]
        for key, (plural, where) in found.items():
            context, _, message = key.rpartition("\x04")
            string = old.get(key, "")
            if plural:  # both forms, kept when the old entry was plural too
                string = tuple(string[:2]) if isinstance(string, tuple) else ("", "")
            elif isinstance(string, tuple):
                string = string[0]
            catalog.add((message, plural) if plural else message, string, context=context or None,
                        locations=[(w.rsplit(":", 1)[0], int(w.rsplit(":", 1)[1])) for w in where[:3]])
        with po.open("wb") as handle:
            write_po(handle, catalog, width=120)


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["update"]:
        update_catalogues()
    for message in missing_translations("it"):
        print(f"it: missing {message!r}")
