import pytest

from asterisk.dialstring import render_dial_string, trunk_of


@pytest.mark.parametrize("fmt,expected", [
    ("keep_plus", "PJSIP/+390612345678@trunk1"),
    ("international", "PJSIP/390612345678@trunk1"),
    ("international_00", "PJSIP/00390612345678@trunk1"),
    ("national", "PJSIP/0612345678@trunk1"),
])
def test_formats(fmt, expected):
    assert render_dial_string("PJSIP/{number}@trunk1", "+390612345678", fmt) == expected


def test_national_mobile_and_foreign():
    assert render_dial_string("DAHDI/g0/{number}", "+393331234567", "national") == "DAHDI/g0/3331234567"
    # A foreign number on a national-format trunk keeps the international prefix.
    assert render_dial_string("DAHDI/g0/{number}", "+33612345678", "national") == "DAHDI/g0/0033612345678"


@pytest.mark.parametrize("template", ["PJSIP/trunk1", "PJSIP/{number}@{number}", "PJSIP/{n}@trunk1"])
def test_placeholder_exactly_once(template):
    with pytest.raises(ValueError, match="exactly once") as info:
        render_dial_string(template, "+390612345678")
    assert template in str(info.value)


@pytest.mark.parametrize("template", ["PJSIP/{number}@trunk1\r\nAction: Command",
                                      "PJSIP/{number}@trunk1,30", "PJSIP/{number}@t1&PJSIP/x@t2",
                                      "PJSIP/{number}@trunk 1", "PJSIP/{number}@${EVIL}"])
def test_injection_characters_refused(template):
    with pytest.raises(ValueError, match="not allowed"):
        render_dial_string(template, "+390612345678")


@pytest.mark.parametrize("number", ["390612345678", "+39 06 1234", "+39061234\r\n", "+39,1", ""])
def test_number_must_be_e164(number):
    with pytest.raises(ValueError, match="E.164"):
        render_dial_string("PJSIP/{number}@trunk1", number)


def test_template_needs_technology_and_known_format():
    with pytest.raises(ValueError, match="technology"):
        render_dial_string("{number}@trunk1", "+390612345678")
    with pytest.raises(ValueError, match="unknown number format"):
        render_dial_string("PJSIP/{number}@trunk1", "+390612345678", "e164")


def test_trunk_of():
    assert trunk_of("PJSIP/393331234567@trunk1") == ("PJSIP", "trunk1")
    assert trunk_of("Local/33171111@pstn-sim") == ("Local", "pstn-sim")
    assert trunk_of("DAHDI/g0/0612345678") == ("DAHDI", "g0")
    with pytest.raises(ValueError):
        trunk_of("nonsense")
