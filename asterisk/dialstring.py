"""Render the Originate ``Channel`` for one number from a trunk's template.

Pure code. The template comes from configuration (``PJSIP/{number}@trunk1``,
``DAHDI/g0/{number}``, ``Local/{number}@allerta-test``); the number is E.164.
Everything that ends up in an AMI header is checked here, because a CR or LF
would let a value start a header of its own, and a comma or '&' changes what
Asterisk dials. The template's rules live in the core (gateway/core/dialstring.py),
which the configuration loader applies too.
"""
from __future__ import annotations

import re

import phonenumbers

from gateway.core.dialstring import NUMBER_FORMATS, PLACEHOLDER, dial_template_problem

_E164 = re.compile(r"^\+[1-9]\d{5,14}$")


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
    problem = dial_template_problem(template)
    if problem:
        raise ValueError(f"dial string template {template!r}: {problem}")
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
