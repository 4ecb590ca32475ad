import dataclasses

import phonenumbers
import pytest
from phonenumbers import PhoneNumberType

from gateway.core.phone import InvalidNumber, PhoneNumber, _kind, normalise_number


@pytest.mark.parametrize("raw, e164", [
    ("06 6521 1234", "+390665211234"),
    ("066521 1234", "+390665211234"),
    ("(06) 65211234", "+390665211234"),
    ("06-6521-1234", "+390665211234"),
    ("0039 06 6521 1234", "+390665211234"),
    ("+39 333 123 4567", "+393331234567"),
    ("0039 333 1234567", "+393331234567"),
    ("333.1234567", "+393331234567"),
    ("333-123-4567", "+393331234567"),
    ("3331234567", "+393331234567"),
    ("  +393331234567 ", "+393331234567"),
    ("333\u00a01234567", "+393331234567"),   # non-breaking space pasted from Word
    ("0612345", "+390612345"),                # old short Rome line, still valid
])
def test_accepts_what_italian_offices_write(raw, e164):
    assert normalise_number(raw).e164 == e164


@pytest.mark.parametrize("raw, kind", [
    ("333 1234567", "mobile"),
    ("+39 320 1234567", "mobile"),
    ("06 6521 1234", "landline"),
    ("055 123456", "landline"),
    ("800 123456", "landline"),          # toll free: voice only
    ("+41 79 123 45 67", "mobile"),      # Swiss mobile
    ("+44 20 7946 0958", "landline"),
    ("+1 650 253 0000", "landline"),     # US FIXED_LINE_OR_MOBILE: voice reaches both
])
def test_kind(raw, kind):
    assert normalise_number(raw).kind == kind


@pytest.mark.parametrize("raw, message", [
    ("12", "'12' is too short"),
    ("06 abc", "'06 abc' is not a phone number"),
    ("+1 202 555", "'+1 202 555' is not a valid number"),
    ("112", "'112' is an emergency number, not a recipient"),
    ("113", "'113' is an emergency number, not a recipient"),
    ("1515", "'1515' is a short service number, not a recipient"),
    ("333 CALLME", "'333 CALLME' is not a phone number"),            # no vanity letters
    ("06 6521 1234 int. 3", "'06 6521 1234 int. 3' is not a phone number"),  # no extensions
    ("3331234567890", "'3331234567890' is too long"),
    ("+999 1234567", "'+999 1234567' has an unknown country code"),
    ("899 123456", "'899 123456' is a premium-rate number"),
    ("++39 333 1234567", "'++39 333 1234567' is not a phone number"),
    ("", "the phone number is empty"),
    ("   ", "the phone number is empty"),
])
def test_rejects_with_a_message_saying_what_is_wrong(raw, message):
    with pytest.raises(InvalidNumber) as excinfo:
        normalise_number(raw)
    assert str(excinfo.value) == message


def test_hints_at_a_leading_zero_dropped_by_a_spreadsheet():
    with pytest.raises(InvalidNumber, match="leading 0"):
        normalise_number("665211234")


def test_invalid_number_is_a_value_error():
    assert issubclass(InvalidNumber, ValueError)


def test_region_decides_how_national_numbers_are_read():
    assert normalise_number("020 7946 0958", region="GB").e164 == "+442079460958"
    assert normalise_number("+39 333 1234567", region="GB").e164 == "+393331234567"


def test_phone_number_is_frozen():
    number = normalise_number("333 1234567")
    assert number == PhoneNumber(e164="+393331234567", kind="mobile")
    with pytest.raises(dataclasses.FrozenInstanceError):
        number.e164 = "+390000"


@pytest.mark.parametrize("raw, number_type, kind", [
    # Current metadata never says FIXED_LINE_OR_MOBILE for Italy, but older or
    # newer releases may: then the numbering plan decides (mobiles start with 3).
    ("+39 333 1234567", PhoneNumberType.FIXED_LINE_OR_MOBILE, "mobile"),
    ("+39 06 6521 1234", PhoneNumberType.FIXED_LINE_OR_MOBILE, "landline"),
    ("+1 305 253 0000", PhoneNumberType.FIXED_LINE_OR_MOBILE, "landline"),  # starts with 3, not Italy
    ("+39 06 6521 1234", PhoneNumberType.VOIP, "landline"),
    ("+39 333 1234567", PhoneNumberType.MOBILE, "mobile"),
])
def test_kind_for_ambiguous_types(raw, number_type, kind):
    assert _kind(phonenumbers.parse(raw), number_type) == kind
