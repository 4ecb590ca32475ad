"""Turn a phone number as an office typed it into E.164 plus a channel hint.

Pure code: no I/O. ``phonenumbers`` does the numbering-plan work; this module
adds what an alert gateway needs on top of it:

* only digits and the usual punctuation are accepted, so phonenumbers never
  converts letters ("333 CALLME") or reads an extension ("int. 3") that we
  could not dial anyway;
* emergency and short service numbers (112, 113, 1515) are rejected: an alert
  must never call them;
* premium-rate numbers are rejected: calling them costs the municipality money;
* every rejection says, in the message, what is wrong with the input.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberType, shortnumberinfo

MOBILE = "mobile"
LANDLINE = "landline"

# Digits, spaces, and the punctuation people put in numbers: + ( ) . - /
_ALLOWED = re.compile(r"^\+?[\d\s().\-/]+$")
# No real subscriber number has fewer digits than this (Italian fixed lines
# have at least 6); shorter input is a typo or a truncated cell.
_MIN_DIGITS = 6


class InvalidNumber(ValueError):
    """The input is not a number an alert can be sent to; ``str()`` says why."""


@dataclass(frozen=True)
class PhoneNumber:
    e164: str   # '+393331234567'
    kind: str   # MOBILE or LANDLINE


def normalise_number(raw: str, region: str = "IT") -> PhoneNumber:
    """Parse ``raw`` (national numbers read in ``region``) or raise InvalidNumber.

    ``0039 ...`` and ``+39 ...`` are both international; ``06 6521 1234``,
    ``333.1234567``, ``(06) 65211234`` and ``333-123-4567`` are national.
    """
    text = raw.strip()
    if not text:
        raise InvalidNumber("the phone number is empty")
    digits = re.sub(r"\D", "", text)
    if not _ALLOWED.match(text) or not digits:
        raise InvalidNumber(f"{raw!r} is not a phone number")
    if not text.startswith("+") and not text.startswith("00"):
        if phonenumbers.is_emergency_number(digits, region):
            raise InvalidNumber(f"{raw!r} is an emergency number, not a recipient")
        try:
            short = phonenumbers.parse(digits, region)
        except phonenumbers.NumberParseException:
            short = None
        if short is not None and shortnumberinfo.is_valid_short_number(short):
            raise InvalidNumber(f"{raw!r} is a short service number, not a recipient")
    if len(digits) < _MIN_DIGITS:
        raise InvalidNumber(f"{raw!r} is too short")

    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumber(_parse_error_message(raw, exc)) from None

    if not phonenumbers.is_valid_number(number):
        reason = phonenumbers.is_possible_number_with_reason(number)
        if reason == phonenumbers.ValidationResult.TOO_LONG:
            raise InvalidNumber(f"{raw!r} is too long")
        if _lost_leading_zero(text, digits, region):
            raise InvalidNumber(
                f"{raw!r} is not a valid number (did a spreadsheet drop the leading 0?)")
        raise InvalidNumber(f"{raw!r} is not a valid number")

    number_type = phonenumbers.number_type(number)
    if number_type == PhoneNumberType.PREMIUM_RATE:
        raise InvalidNumber(f"{raw!r} is a premium-rate number")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return PhoneNumber(e164=e164, kind=_kind(number, number_type))


def _kind(number: phonenumbers.PhoneNumber, number_type: int) -> str:
    """'mobile' only when we are sure the number takes SMS.

    A number classified 'landline' gets voice calls only; voice reaches every
    kind of phone, whereas an SMS to a fixed line or a VoIP number is lost
    without any error. So anything doubtful is a landline: VoIP, toll-free,
    UAN, pagers, and FIXED_LINE_OR_MOBILE outside Italy (US/Canada numbers
    cannot be told apart). Italian FIXED_LINE_OR_MOBILE numbers are decided by
    the numbering plan: mobile numbers, and only they, start with 3.
    """
    if number_type == PhoneNumberType.MOBILE:
        return MOBILE
    if (number_type == PhoneNumberType.FIXED_LINE_OR_MOBILE
            and number.country_code == 39
            and str(number.national_number).startswith("3")):
        return MOBILE
    return LANDLINE


def _parse_error_message(raw: str, exc: phonenumbers.NumberParseException) -> str:
    errors = phonenumbers.NumberParseException
    if exc.error_type == errors.INVALID_COUNTRY_CODE:
        return f"{raw!r} has an unknown country code"
    if exc.error_type in (errors.TOO_SHORT_NSN, errors.TOO_SHORT_AFTER_IDD):
        return f"{raw!r} is too short"
    if exc.error_type == errors.TOO_LONG:
        return f"{raw!r} is too long"
    return f"{raw!r} is not a phone number"


def _lost_leading_zero(text: str, digits: str, region: str) -> bool:
    """True for '665211234': Excel stores 06 6521 1234 as a number and drops the 0."""
    if region != "IT" or text.startswith(("+", "0")):
        return False
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse("0" + digits, region))
    except phonenumbers.NumberParseException:
        return False
