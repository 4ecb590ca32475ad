"""Render the Originate ``Channel`` for one number from a trunk's template.

Pure code. The template comes from configuration (``PJSIP/{number}@trunk1``,
``DAHDI/g0/{number}``, ``Local/{number}@allerta-test``); the number is E.164.
Everything that ends up in an AMI header is checked here, because a CR or LF
would let a value start a header of its own, and a comma or '&' changes what
Asterisk dials.
"""
from __future__ import annotations

import re

import phonenumbers

PLACEHOLDER = "{number}"
NUMBER_FORMATS = ("keep_plus", "international", "international_00", "national")

_E164 = re.compile(r"^\+[1-9]\d{5,14}$")
# Technology, resource, '@', context/endpoint, '/' separators, '-' '_' '.' ':'.
_TEMPLATE_CHARS = re.compile(r"^[A-Za-z0-9/@._:\-+]*$")
_TECHNOLOGY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*/")


def _digits_for(number: str, number_format: str, home_country: str,
                international_prefix: str) -> str:
    if number_format == "keep_plus":
        return number
    if number_format == "international":
        return number[1:]
    if number_format == "international_00":
        return international_prefix + number[1:]
    parsed = phonenumbers.parse(number)
    if phonenumbers.region_code_for_number(parsed) != home_country:
        # A national-format trunk still needs the international prefix for
        # a foreign number.
        return international_prefix + number[1:]
    national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    return re.sub(r"\D", "", national)


def render_dial_string(template: str, number: str, number_format: str = "keep_plus", *,
                       home_country: str = "IT", international_prefix: str = "00") -> str:
    """Fill ``{number}`` in ``template`` with ``number`` written as the trunk wants.

    ``number_format``: ``keep_plus`` '+39061234', ``international`` '39061234',
    ``international_00`` '0039061234', ``national`` '061234' (foreign numbers
    then get ``international_prefix``). Raises ValueError naming what is wrong.
    """
    if template.count(PLACEHOLDER) != 1:
        raise ValueError(f"dial string template {template!r} must contain {PLACEHOLDER} exactly once")
    rest = template.replace(PLACEHOLDER, "")
    if not _TEMPLATE_CHARS.match(rest):
        raise ValueError(f"dial string template {template!r} contains characters not allowed "
                         "in an AMI Channel header (allowed: letters, digits, / @ . _ : - +)")
    if not _TECHNOLOGY.match(template):
        raise ValueError(f"dial string template {template!r} must start with a technology "
                         "such as PJSIP/ or Local/")
    if number_format not in NUMBER_FORMATS:
        raise ValueError(f"unknown number format {number_format!r}; use one of {NUMBER_FORMATS}")
    if not _E164.match(number):
        raise ValueError(f"number {number!r} is not E.164 ('+' and 6 to 15 digits)")
    if not re.fullmatch(r"\d+", international_prefix):
        raise ValueError(f"international prefix {international_prefix!r} must be digits")
    return template.replace(PLACEHOLDER,
                            _digits_for(number, number_format, home_country, international_prefix))


def trunk_of(channel: str) -> tuple[str, str]:
    """(technology, trunk name) of a rendered Originate channel.

    ``PJSIP/393331234567@trunk1`` -> ('PJSIP', 'trunk1'); ``Local/123@ctx`` ->
    ('Local', 'ctx'); ``DAHDI/g0/123`` -> ('DAHDI', 'g0').
    """
    technology, sep, data = channel.partition("/")
    if not sep or not technology or not data:
        raise ValueError(f"channel {channel!r} is not Technology/resource")
    if "@" in data:
        return technology, data.rsplit("@", 1)[1]
    if "/" in data:
        return technology, data.split("/", 1)[0]
    return technology, technology
