"""Whole numbers from URLs, query strings and forms, bounded to what the database can hold.

Werkzeug's ``int`` converter and ``request.args.get(..., type=int)`` accept any length of digits: an id of
99999999999999999999 reached SQLite as an integer it cannot bind (OverflowError, HTTP 500), and a page of
2**63-1 overflowed the OFFSET. Every id and page goes through here instead: out of range is "no such
thing" (404) for a path and a clear 400 for a parameter.
"""
from __future__ import annotations

from flask import abort
from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict
from werkzeug.routing import IntegerConverter

# PostgreSQL's BIGINT and SQLite's INTEGER: no row id is larger.
MAX_ID = 2**63 - 1
# A page beyond this has nothing on it; the bound keeps (page - 1) * per_page inside 64 bits.
MAX_PAGE = 10**9


class BoundedIntConverter(IntegerConverter):
    """``<int:...>`` that does not match beyond MAX_ID, so such a URL is a plain 404."""

    def __init__(self, url_map, fixed_digits: int = 0, min: int | None = None,  # noqa: A002
                 max: int | None = None, signed: bool = False) -> None:  # noqa: A002
        super().__init__(url_map, fixed_digits, min, MAX_ID if max is None else max, signed)


def bounded_int(values: MultiDict, name: str, default: int | None = None, *, low: int = 0,
                high: int = MAX_ID) -> int | None:
    """``values[name]`` as a whole number in [low, high]; ``default`` when absent or empty; else HTTP 400."""
    raw = (values.get(name) or "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.lstrip("-").isdigit()) or len(raw) > 20 or not low <= int(raw) <= high:
        abort(400, description=_("%(field)s must be a whole number between %(low)s and %(high)s.",
                                 field=name, low=low, high=high))
    return int(raw)


def page_number(values: MultiDict) -> int:
    return bounded_int(values, "page", 1, low=1, high=MAX_PAGE)
