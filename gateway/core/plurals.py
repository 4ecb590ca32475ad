"""Singular or plural for a count, outside Flask: the CLI, the terminal views and the core's errors.

The panel picks the form with flask-babel's ``ngettext`` from its catalogues (web/i18n.py). Texts built
outside a request (an error's English ``str()``, a CLI line, the live terminal view) use Babel's plural
rules (CLDR) directly, so "1 contact" and "2 contacts", "1 linea" and "2 linee" follow the same rule as
the panel: one singular for exactly 1 (Italian and English), the plural for everything else, 0 included.
"""
from __future__ import annotations

from functools import lru_cache

from babel import Locale


@lru_cache(maxsize=8)
def _locale(language: str) -> Locale:
    return Locale.parse(language)


def is_singular(count: int, language: str = "en") -> bool:
    """True when ``count`` takes the singular in ``language`` (CLDR category "one": 1, not 0 or 1.5)."""
    return _locale(language).plural_form(count) == "one"


def plural(count: int, singular: str, plural_form: str, language: str = "en") -> str:
    """``singular`` or ``plural_form`` for ``count``, formatted with ``%(num)s`` (and nothing else), as
    ``ngettext`` does: ``plural(1, "%(num)s contact", "%(num)s contacts")`` is "1 contact"."""
    text = singular if is_singular(count, language) else plural_form
    return text % {"num": count} if "%(num)" in text else text


def counted(count: int, noun: str, nouns: str | None = None) -> str:
    """An English count and its noun for the command line's lines: ``counted(1, "row")`` is "1 row",
    ``counted(0, "delivery", "deliveries")`` "0 deliveries" (the CLI speaks English, as its errors do)."""
    return f"{count} {noun if is_singular(count) else (nouns or noun + 's')}"
