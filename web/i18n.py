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
    """Every translatable string of the panel (Python and templates) -> where it is used.

    Used by the test that keeps the Italian catalogue complete, and by
    ``python -m web.i18n`` which lists what is missing from each catalogue.
    """
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    options = {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    found: dict[str, list[str]] = {}
    for filename, lineno, message, _comments, context in extract_from_dir(
            str(root), method_map=method_map, options_map=options,
            keywords={"_": None, "gettext": None, "lazy_gettext": None,
                      "pgettext": ((1, "c"), 2), "lazy_pgettext": ((1, "c"), 2)}):
        if isinstance(message, tuple):
            message = message[0]
        found.setdefault(with_context(context, message), []).append(f"{filename}:{lineno}")
    return found


def with_context(context: str | None, message: str) -> str:
    """The key gettext files a message under: "context\x04message" when it has a context (web/labels.py:
    the same English word, such as "Cancelled", needs different Italian for an alert and a message)."""
    return f"{context}\x04{message}" if context else message


def missing_translations(language: str) -> list[str]:
    catalogue = compile_catalogues().get(language)
    known = getattr(catalogue, "_catalog", {})
    return [m for m in extract_messages() if not known.get(m)]


def update_catalogues(directory: Path = TRANSLATIONS_DIR) -> None:
    """Rewrite every catalogue with the strings the code uses now, keeping the translations it has."""
    found = extract_messages()
    for po in sorted(directory.glob("*/LC_MESSAGES/messages.po")):
        language = po.parent.parent.name
        with po.open("rb") as handle:
            old = {with_context(m.context, m.id): m.string for m in read_po(handle, locale=language) if m.id}
        catalog = Catalog(locale=language, project="allerta", charset="utf-8")
        for key, where in found.items():
            context, _, message = key.rpartition("\x04")
            catalog.add(message, old.get(key, ""), context=context or None,
                        locations=[(w.rsplit(":", 1)[0], int(w.rsplit(":", 1)[1])) for w in where[:3]])
        with po.open("wb") as handle:
            write_po(handle, catalog, width=120)


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["update"]:
        update_catalogues()
    for message in missing_translations("it"):
        print(f"it: missing {message!r}")
