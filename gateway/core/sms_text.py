"""SMS text planning and SMS-SUBMIT PDU encoding (3GPP TS 23.038 / 23.040).

Pure code, no I/O: the modem driver asks :func:`plan_sms` how a text will be
sent (alphabet, parts, cost) and :func:`encode_submit_pdus` for the hex to
write after ``AT+CMGS=<tpdu_length>``.

Encoding choice, in order:

1. GSM-7 if every character is in the default alphabet or its extension table;
2. GSM-7 after replacing typographic characters (curly quotes, dashes, the
   ellipsis, non-breaking spaces) when that is all that stood in the way;
3. UCS-2 with the original text, untouched.

Step 2 exists because text pasted from a word processor or a web page is full
of such characters: one NBSP or ’ turns a 160-character message into a
70-character one and can triple the number of parts of an alert sent to
thousands of numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "GSM7_BASIC", "GSM7_EXTENSION", "TYPOGRAPHIC", "SmsTextError", "SmsPlan", "SubmitPdu",
    "septets_needed", "is_gsm7", "transliterate", "plan_sms", "gsm7_septets", "decode_gsm7",
    "pack_septets", "unpack_septets", "relative_validity_octet", "encode_submit_pdus",
]

# GSM 03.38 / 3GPP TS 23.038 §6.2.1 default alphabet; index = septet code.
# 0x1B is ESC (the switch to the extension table), kept here only so that the
# indexes line up: a literal ESC in a text is not encodable.
GSM7_BASIC: str = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
ESC = 0x1B

# 23.038 §6.2.1.1 extension table: each is sent as ESC + code and costs 2 septets.
GSM7_EXTENSION: dict[str, int] = {
    "\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F,
    "[": 0x3C, "~": 0x3D, "]": 0x3E, "|": 0x40, "€": 0x65,
}

# Characters with a plain GSM-7 look-alike. Only applied when it makes the
# whole text GSM-7 (see plan_sms). Accented letters are deliberately absent:
# "á" -> "a" changes the text, a curly quote -> straight quote does not.
TYPOGRAPHIC: dict[str, str] = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",   # ‘ ’ ‚ ‛
    "\u2032": "'", "\u2039": "'", "\u203a": "'",                  # ′ ‹ ›
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"',   # “ ” „ ‟
    "\u2033": '"', "\u00ab": '"', "\u00bb": '"',                  # ″ « »
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-",   # ‐ ‑ ‒ –
    "\u2014": "-", "\u2015": "-", "\u2212": "-",                  # — ― −
    "\u2026": "...",                                              # …
    # Spaces that look like a space but are not GSM-7. A single NBSP (Word
    # puts one before ":" and "%", French style) silently forces UCS-2.
    "\u00a0": " ", "\u202f": " ", "\u2007": " ", "\u2009": " ",
    "\u200a": " ", "\u2002": " ", "\u2003": " ", "\u2004": " ",
    "\u2005": " ", "\u2006": " ", "\u2008": " ", "\u205f": " ",
    "\u3000": " ", "\t": " ",
    # Capital È is not in GSM-7 (only É is), yet starts half the sentences of
    # an Italian alert ("È in corso..."); Italians type it as E' without an
    # accent key, and it keeps a 3-part alert from becoming a 7-part one.
    "\u00c8": "E'",
    # Invisible characters that come with pasted text.
    "\u200b": "", "\u00ad": "", "\ufeff": "",                     # ZWSP, soft hyphen, BOM
}

_BASIC_CODES: dict[str, int] = {c: i for i, c in enumerate(GSM7_BASIC) if i != ESC}
_EXTENSION_CHARS: dict[int, str] = {code: c for c, code in GSM7_EXTENSION.items()}

SINGLE_GSM7_SEPTETS = 160
MULTIPART_GSM7_SEPTETS = 153    # 160 minus the 7 septets of the 6-octet concat UDH
SINGLE_UCS2_UNITS = 70
MULTIPART_UCS2_UNITS = 67       # (140 - 6 octets of UDH) / 2
MAX_PARTS = 255                 # the UDH's part counter is one octet
MAX_USER_DATA_OCTETS = 140


class SmsTextError(ValueError):
    """The text cannot be sent by SMS (empty, unsendable character, too long)."""

    def __init__(self, message: str, *, character: str | None = None,
                 position: int | None = None) -> None:
        super().__init__(message)
        self.character = character
        self.position = position   # 1-based, as a person counts characters


def septets_needed(text: str) -> int | None:
    """GSM-7 cost of ``text`` in septets (extension characters cost 2); None if not GSM-7."""
    total = 0
    for char in text:
        if char in _BASIC_CODES:
            total += 1
        elif char in GSM7_EXTENSION:
            total += 2
        else:
            return None
    return total


def is_gsm7(text: str) -> bool:
    """True if every character of ``text`` is in the GSM-7 alphabet or its extension."""
    return septets_needed(text) is not None


def transliterate(text: str) -> str:
    """Replace the :data:`TYPOGRAPHIC` characters with their GSM-7 look-alikes."""
    return "".join(TYPOGRAPHIC.get(char, char) for char in text)


@dataclass(frozen=True)
class SmsPlan:
    """How a text will be sent: alphabet, the text of each part, and its cost."""

    text: str               # the text that will be sent (transliterated if that was applied)
    encoding: str           # "GSM-7" or "UCS-2"
    parts: tuple[str, ...]  # text of each part, in order
    transliterated: bool    # typographic characters were replaced to stay in GSM-7
    units: int              # septets (GSM-7) or UTF-16 code units (UCS-2) of the whole text

    @property
    def segments(self) -> int:
        """Number of SMS the text costs."""
        return len(self.parts)


def plan_sms(text: str, *, transliterate_typographic: bool = True) -> SmsPlan:
    """Choose the alphabet for ``text`` and split it into parts.

    Raises :class:`SmsTextError` for an empty text, a character UCS-2 cannot
    carry (emoji and anything else outside the BMP), or more than 255 parts.
    """
    if not text:
        raise SmsTextError("message text is empty")

    septets = septets_needed(text)
    transliterated = False
    if septets is None and transliterate_typographic:
        replaced = transliterate(text)
        replaced_septets = septets_needed(replaced)
        if replaced_septets is not None:
            text, septets, transliterated = replaced, replaced_septets, True
            if not text:   # the text was only zero-width characters
                raise SmsTextError("message text is empty")

    if septets is not None:
        parts = _split_gsm7(text, septets)
        encoding, units = "GSM-7", septets
    else:
        _check_ucs2(text)
        # Every character left is in the BMP, so one character is one UCS-2
        # unit and slicing by characters can never split a surrogate pair.
        units = len(text)
        if units <= SINGLE_UCS2_UNITS:
            parts = (text,)
        else:
            step = MULTIPART_UCS2_UNITS
            parts = tuple(text[i:i + step] for i in range(0, units, step))
        encoding = "UCS-2"

    if len(parts) > MAX_PARTS:
        raise SmsTextError(f"message text is too long: {len(parts)} parts, at most {MAX_PARTS}")
    return SmsPlan(text=text, encoding=encoding, parts=parts,
                   transliterated=transliterated, units=units)


def _split_gsm7(text: str, septets: int) -> tuple[str, ...]:
    if septets <= SINGLE_GSM7_SEPTETS:
        return (text,)
    parts: list[str] = []
    start = used = 0
    for index, char in enumerate(text):
        cost = 2 if char in GSM7_EXTENSION else 1
        # An escape pair that does not fit whole moves to the next part:
        # a receiver would show a lone ESC at the end of one part.
        if used + cost > MULTIPART_GSM7_SEPTETS:
            parts.append(text[start:index])
            start, used = index, 0
        used += cost
    parts.append(text[start:])
    return tuple(parts)


def _check_ucs2(text: str) -> None:
    for index, char in enumerate(text):
        code = ord(char)
        # python-gsmmodem's encodeUcs2 fails on these (b >> 8 > 255), and a
        # lone surrogate would reach the phone as garbage.
        if code > 0xFFFF or 0xD800 <= code <= 0xDFFF:
            where = "outside UCS-2" if code > 0xFFFF else "a lone UTF-16 surrogate"
            raise SmsTextError(
                f"character {char!r} (U+{code:04X}) at position {index + 1} "
                f"cannot be sent by SMS ({where})",
                character=char, position=index + 1)


def join_utf16(text: str) -> str:
    """Text as python-gsmmodem-new decodes UCS-2 user data, one 16-bit unit per character, with its
    surrogate pairs joined: a reply "Ok 👍" arrives from the library as U+D83D U+DC4D, which no database
    or UTF-8 log accepts. A half pair left alone (split across two parts) becomes U+FFFD."""
    if not any(0xD800 <= ord(char) <= 0xDFFF for char in text):
        return text
    return text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "replace")


def gsm7_septets(text: str) -> list[int]:
    """GSM-7 codes of ``text``, extension characters as ESC pairs (not packed)."""
    result: list[int] = []
    for index, char in enumerate(text):
        if char in _BASIC_CODES:
            result.append(_BASIC_CODES[char])
        elif char in GSM7_EXTENSION:
            result += (ESC, GSM7_EXTENSION[char])
        else:
            raise SmsTextError(f"character {char!r} at position {index + 1} is not in GSM-7",
                               character=char, position=index + 1)
    return result


def decode_gsm7(septets: bytes | list[int]) -> str:
    """Text of unpacked GSM-7 codes.

    An ESC followed by a code missing from the extension table shows the
    basic-table character, as 23.038 §6.2.1.1 asks of receivers; a trailing
    ESC shows as a space.
    """
    chars: list[str] = []
    codes = iter(septets)
    for code in codes:
        if code == ESC:
            following = next(codes, None)
            if following is None:
                chars.append(" ")
            else:
                chars.append(_EXTENSION_CHARS.get(following, GSM7_BASIC[following & 0x7F]))
        else:
            chars.append(GSM7_BASIC[code & 0x7F])
    return "".join(chars)


def pack_septets(septets: list[int], fill_bits: int = 0) -> bytes:
    """Pack 7-bit codes into octets, least significant bit first (23.038 §6.1.2.1.1).

    ``fill_bits`` zero bits come first, so that user data following a UDH
    starts on a septet boundary.
    """
    if not 0 <= fill_bits <= 6:
        raise ValueError(f"fill_bits must be 0..6, not {fill_bits}")
    stream = 0
    for index, septet in enumerate(septets):
        if not 0 <= septet <= 0x7F:
            raise ValueError(f"septet {septet} at index {index} is out of range")
        stream |= septet << (fill_bits + 7 * index)
    bits = fill_bits + 7 * len(septets)
    return stream.to_bytes(math.ceil(bits / 8), "little")


def unpack_septets(data: bytes, count: int, fill_bits: int = 0) -> list[int]:
    """Inverse of :func:`pack_septets`: ``count`` septets after ``fill_bits`` bits."""
    if fill_bits + 7 * count > 8 * len(data):
        raise ValueError(f"{len(data)} octets cannot hold {count} septets "
                         f"after {fill_bits} fill bits")
    stream = int.from_bytes(data, "little") >> fill_bits
    return [(stream >> (7 * index)) & 0x7F for index in range(count)]


def relative_validity_octet(minutes: int) -> int:
    """TP-VP, relative format (23.040 §9.2.3.12.1), for at least ``minutes``.

    Rounds up to the next representable period, so that a message never
    expires before the time asked for.
    """
    if minutes <= 0:
        raise ValueError(f"validity must be positive, not {minutes} minutes")
    if minutes <= 12 * 60:                       # 0..143: (VP + 1) x 5 minutes
        return math.ceil(minutes / 5) - 1
    if minutes <= 24 * 60:                       # 144..167: 12 h + (VP - 143) x 30 minutes
        return 143 + math.ceil((minutes - 12 * 60) / 30)
    if minutes <= 30 * 24 * 60:                  # 168..196: (VP - 166) days
        return 166 + math.ceil(minutes / (24 * 60))
    if minutes <= 63 * 7 * 24 * 60:              # 197..255: (VP - 192) weeks
        return 192 + math.ceil(minutes / (7 * 24 * 60))
    raise ValueError(f"validity of {minutes} minutes is longer than 63 weeks")


@dataclass(frozen=True)
class SubmitPdu:
    """One SMS-SUBMIT for ``AT+CMGS=<tpdu_length>`` followed by ``hex`` and Ctrl-Z."""

    hex: str           # uppercase, with the leading "00" (use the SMSC stored on the SIM)
    tpdu_length: int   # octets after the SMSC octet: the number for AT+CMGS=<n>
    part: int          # 1-based
    parts: int


def _encode_address(number: str) -> bytes:
    international = number.startswith("+")
    digits = number[1:] if international else number
    if not (digits.isascii() and digits.isdigit()) or not 1 <= len(digits) <= 20:
        raise ValueError(f"destination {number!r} is not a phone number "
                         "(digits, optionally after '+', at most 20)")
    padded = digits + "F" * (len(digits) % 2)
    # Semi-octets: the first digit goes in the low nibble of each octet.
    swapped = "".join(padded[i + 1] + padded[i] for i in range(0, len(padded), 2))
    type_of_address = 0x91 if international else 0x81
    return bytes([len(digits), type_of_address]) + bytes.fromhex(swapped)


def encode_submit_pdus(number: str, plan: SmsPlan, *, concat_reference: int,
                       status_report: bool = True, message_reference: int = 0,
                       validity_minutes: int | None = None,
                       flash: bool = False) -> list[SubmitPdu]:
    """SMS-SUBMIT PDUs, one per part of ``plan``, for PDU mode (AT+CMGF=0).

    ``number`` is E.164 with '+' (type of address 0x91) or national digits
    (0x81). ``concat_reference`` is taken modulo 256 (8-bit reference UDH);
    use a different one for each long message sent to the same number.
    Part ``i`` (1-based) gets TP-MR ``(message_reference + i - 1) % 256``,
    as each part is its own submit; many modems replace TP-MR anyway and
    report the one they used in ``+CMGS: <mr>``.
    """
    if concat_reference < 0 or message_reference < 0:
        raise ValueError("references must not be negative")
    address = _encode_address(number)
    multipart = plan.segments > 1

    first_octet = 0x01                      # SMS-SUBMIT, TP-RD 0, TP-RP 0
    if validity_minutes is not None:
        first_octet |= 0x10                 # TP-VPF: relative, one octet
    if status_report:
        first_octet |= 0x20                 # TP-SRR
    if multipart:
        first_octet |= 0x40                 # TP-UDHI

    gsm7 = plan.encoding == "GSM-7"
    if not gsm7 and plan.encoding != "UCS-2":
        raise ValueError(f"unknown encoding {plan.encoding!r}")
    dcs = (0x00 if gsm7 else 0x08) | (0x10 if flash else 0x00)   # 0x10: class 0 (flash)
    validity = (b"" if validity_minutes is None
                else bytes([relative_validity_octet(validity_minutes)]))

    pdus: list[SubmitPdu] = []
    for index, part_text in enumerate(plan.parts, start=1):
        udh = (bytes([0x05, 0x00, 0x03, concat_reference & 0xFF, plan.segments, index])
               if multipart else b"")
        if gsm7:
            septets = gsm7_septets(part_text)
            # The UDH is counted in septets too: pad it to a septet boundary.
            fill_bits = (7 - (len(udh) * 8) % 7) % 7
            user_data = udh + pack_septets(septets, fill_bits)
            user_data_length = (len(udh) * 8 + fill_bits) // 7 + len(septets)
        else:
            user_data = udh + part_text.encode("utf-16-be")
            user_data_length = len(user_data)
        if len(user_data) > MAX_USER_DATA_OCTETS:   # a planning bug, not a user error
            raise ValueError(f"part {index} has {len(user_data)} octets of user data")

        tpdu = (bytes([first_octet, (message_reference + index - 1) & 0xFF]) + address
                + bytes([0x00, dcs]) + validity + bytes([user_data_length]) + user_data)
        pdus.append(SubmitPdu(hex=("00" + tpdu.hex()).upper(), tpdu_length=len(tpdu),
                              part=index, parts=plan.segments))
    return pdus
