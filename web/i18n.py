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

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
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
            catalog = read_po(handle, locale=language, domain=domain)
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
