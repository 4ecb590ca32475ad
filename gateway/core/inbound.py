"""Received SMS parts and the messages they make (3GPP TS 23.040 §9.2.3.24.1 and .8: concatenation).

Pure code, no I/O: the store (inbound_store.py) keeps the parts and asks this module
what they are. A message without a concatenation header is one part (reference 0,
parts 1, seq 1). A long message comes as parts sharing (sender, reference, parts),
in any order and on any line; it is whole once every seq from 1 to ``parts`` is
there, and after ``part_timeout`` without the missing ones it is kept as it is,
marked incomplete (the network may never deliver a lost part).

Phones split a long UCS-2 text by 16-bit units, and some split an emoji's
surrogate pair across two parts: a part's text keeps such a half as it is, and
the halves meet again when the parts are joined.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Protocol, Sequence

from gateway.core.channels import ReceivedPart

# A lone UTF-16 half cannot be stored (no database or UTF-8 log accepts one): in the
# parts table it is kept as a code point of Supplementary Private Use Area-B, at the
# same offset, and turned back when the parts are joined.
_SURROGATES = range(0xD800, 0xE000)
_KEPT_HALVES = 0x100000


def keep_pairs(text: str) -> str:
    """Text decoded one UTF-16 unit at a time (python-gsmmodem-new) with its surrogate pairs joined
    and any half pair left as it is."""
    if not any(ord(char) in _SURROGATES for char in text):
        return text
    return text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "surrogatepass")


def storable(text: str) -> str:
    """A part's text as the parts table keeps it: half pairs moved out of the surrogate range."""
    return "".join(chr(ord(c) - 0xD800 + _KEPT_HALVES) if ord(c) in _SURROGATES else c for c in text)


def joined(texts: Sequence[str]) -> str:
    """The stored texts of the parts, in order, as one text: halves split across parts meet again,
    a half whose other half never came becomes U+FFFD."""
    raw = "".join(texts)
    top = _KEPT_HALVES + len(_SURROGATES)
    if not any(_KEPT_HALVES <= ord(c) < top for c in raw):
        return raw
    halves = "".join(chr(ord(c) - _KEPT_HALVES + 0xD800) if _KEPT_HALVES <= ord(c) < top else c for c in raw)
    return halves.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "replace")


def fingerprint(part: ReceivedPart) -> str:
    """What makes a part the same part when it is read again (after a crash between our commit and the
    modem's delete): sender, SMSC time stamp, reference, parts, seq and text. Not the line: after a
    restart the same SIM may sit on another port."""
    sent = part.sent_at.isoformat() if part.sent_at else "-"
    key = "\x1f".join((part.sender, sent, str(part.reference), str(part.parts), str(part.seq), storable(part.text)))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class StoredPart(Protocol):
    line: str
    sender: str
    sent_at: dt.datetime | None
    received_at: dt.datetime
    parts: int
    seq: int
    text: str


@dataclass(frozen=True)
class Assembled:
    """One inbound_sms row made of parts."""
    line: str
    sender: str
    text: str
    sent_at: dt.datetime | None
    received_at: dt.datetime
    parts: int
    incomplete: bool


def usable(group: Sequence[StoredPart]) -> list[StoredPart]:
    """The parts that make the message, in seq order: the first one stored of each seq (a second
    part 2 with the same reference is another message's, left for it)."""
    first: dict[int, StoredPart] = {}
    for part in group:
        if 1 <= part.seq <= part.parts and part.seq not in first:
            first[part.seq] = part
    return [first[seq] for seq in sorted(first)]


def complete(group: Sequence[StoredPart]) -> bool:
    return bool(group) and len(usable(group)) == group[0].parts


def assemble(group: Sequence[StoredPart]) -> Assembled:
    """The message these parts (stored texts, any order) make; incomplete when a seq is missing."""
    chosen = usable(group)
    if not chosen:
        raise ValueError("no usable part to assemble")
    first = chosen[0]
    stamps = [p.sent_at for p in chosen if p.sent_at is not None]
    return Assembled(line=first.line, sender=first.sender, text=joined([p.text for p in chosen]),
                     # The first part's SMSC time when it came (all parts carry about the same).
                     sent_at=first.sent_at if first.sent_at is not None else (min(stamps) if stamps else None),
                     # Received when it became whole (or was given up on): its last part.
                     received_at=max(p.received_at for p in chosen),
                     parts=first.parts, incomplete=len(chosen) < first.parts)


def overdue(group: Sequence[StoredPart], now: dt.datetime, timeout: dt.timedelta) -> bool:
    """True when the first part of an unfinished message arrived more than ``timeout`` ago."""
    return bool(group) and min(p.received_at for p in group) <= now - timeout
