"""Control characters in what people type: refused where a person reads the text, never stored.

A NUL (U+0000) or another control character has no place in an alert, a name or a zone: it is
invisible on the panel and in an export, it turns an SMS into UCS-2 (U+0000 is no GSM 03.38
character: that alphabet's 0x00 is '@'), halving what fits in a segment, and PostgreSQL refuses
NUL in text outright, so the same input would fail on one database and not on the other.
"Control" is Unicode's category Cc: C0 (U+0000-U+001F), DEL (U+007F) and C1 (U+0080-U+009F).
"""
from __future__ import annotations

import unicodedata

# Tab, line feed and carriage return: a text may be written on several lines (an SMS carries LF and
# CR; a tab becomes a space), and in a name they are whitespace that is folded into one space.
WHITESPACE = "\t\n\r"


def control_characters(text: str, allowed: str = WHITESPACE) -> str:
    """The control characters of ``text`` that are not in ``allowed``, each once in the order met,
    written "U+0000, U+001B"; empty when there are none."""
    found: list[str] = []
    for ch in text:
        if ch not in allowed and unicodedata.category(ch) == "Cc":
            code = f"U+{ord(ch):04X}"
            if code not in found:
                found.append(code)
    return ", ".join(found)
