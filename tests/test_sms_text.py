"""Tests for gateway.core.sms_text: alphabet choice, splitting, packing and SMS-SUBMIT PDUs.

PDUs are cross-checked with python-gsmmodem-new, the library that will carry
them to the modem: what it decodes is what a receiving stack would see.
"""
from __future__ import annotations

import datetime as dt

import pytest
from gsmmodem import pdu as gsmpdu

from gateway.core.sms_text import (
    GSM7_BASIC, GSM7_EXTENSION, TYPOGRAPHIC, SmsPlan, SmsTextError, decode_gsm7,
    encode_submit_pdus, gsm7_septets, is_gsm7, pack_septets, plan_sms,
    relative_validity_octet, septets_needed, transliterate, unpack_septets,
)

NUMBER = "+393331234567"
# Octet offsets in our PDUs to NUMBER: 0 SMSC, 1 first octet, 2 TP-MR, 3-10 address,
# 11 PID, 12 DCS, 13 UDL (or TP-VP, then UDL at 14), user data after.
DCS, UDL = 12, 13
UCS2_ALERT = " ".join(["Allerta: evacuare la zona Isola Sacra — اخلاء"] * 3)


def octets(hex_pdu: str) -> bytes:
    return bytes.fromhex(hex_pdu)


def decoded(pdu_hex: str) -> dict:
    return gsmpdu.decodeSmsPdu(pdu_hex)


def concat_info(result: dict) -> tuple[int, int, int]:
    (element,) = result["udh"]
    return element.reference, element.parts, element.number


# --- alphabet tables -------------------------------------------------------

def test_basic_alphabet_has_128_distinct_codes_at_their_23038_positions():
    assert len(GSM7_BASIC) == 128
    assert len(set(GSM7_BASIC)) == 128
    assert GSM7_BASIC[0x00] == "@"
    assert GSM7_BASIC[0x04] == "è"
    assert GSM7_BASIC[0x1B] == "\x1b"
    assert GSM7_BASIC[0x24] == "¤"
    assert GSM7_BASIC[0x5F] == "§"
    assert GSM7_BASIC[0x7F] == "à"


def test_extension_table_matches_23038():
    assert GSM7_EXTENSION == {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F,
                              "[": 0x3C, "~": 0x3D, "]": 0x3E, "|": 0x40, "€": 0x65}
    assert not set(GSM7_EXTENSION) & set(GSM7_BASIC)


def test_typographic_keys_are_not_gsm7_and_replacements_are():
    for char, replacement in TYPOGRAPHIC.items():
        assert not is_gsm7(char), repr(char)
        assert is_gsm7(replacement), repr(replacement)
    for char in "’‘“”«»–—…\u00a0\u202f\u2009":
        assert char in TYPOGRAPHIC


def test_literal_escape_character_is_not_encodable():
    # 0x1B only means "next code is from the extension table".
    assert not is_gsm7("a\x1bb")


@pytest.mark.parametrize("text, septets", [
    ("abc", 3), ("€", 2), ("[Allerta]", 11), ("", 0), ("a\U0001F600", None), ("Привет", None),
])
def test_septets_needed(text, septets):
    assert septets_needed(text) == septets


# --- splitting -------------------------------------------------------------

@pytest.mark.parametrize("length, part_lengths", [
    (1, [1]), (160, [160]), (161, [153, 8]), (306, [153, 153]), (307, [153, 153, 1]),
])
def test_gsm7_segment_boundaries(length, part_lengths):
    plan = plan_sms("a" * length)
    assert plan.encoding == "GSM-7"
    assert [len(part) for part in plan.parts] == part_lengths
    assert plan.segments == len(part_lengths)
    assert plan.units == length
    assert "".join(plan.parts) == plan.text


@pytest.mark.parametrize("length, part_lengths", [
    (70, [70]), (71, [67, 4]), (134, [67, 67]), (135, [67, 67, 1]),
])
def test_ucs2_segment_boundaries(length, part_lengths):
    plan = plan_sms("ж" * length)
    assert plan.encoding == "UCS-2"
    assert [len(part) for part in plan.parts] == part_lengths
    assert plan.units == length


def test_escape_pair_is_never_split_across_parts():
    # 152 septets leave one free in part 1: ESC would fit, its code would not.
    plan = plan_sms("a" * 152 + "€" + "b" * 10)
    assert plan.parts == ("a" * 152, "€" + "b" * 10)
    assert plan.units == 152 + 2 + 10


def test_escape_pair_that_fits_exactly_stays_in_part_one():
    plan = plan_sms("a" * 151 + "€" + "b" * 10)
    assert plan.parts == ("a" * 151 + "€", "b" * 10)


def test_extension_characters_cost_two_septets():
    plan = plan_sms("€" * 80)
    assert (plan.units, plan.segments) == (160, 1)
    plan = plan_sms("€" * 81)
    assert plan.units == 162
    assert [len(part) for part in plan.parts] == [76, 5]   # 152 + 10 septets


def test_too_many_parts_is_refused():
    plan_sms("a" * 153 * 255)
    with pytest.raises(SmsTextError, match="256 parts"):
        plan_sms("a" * (153 * 255 + 1))


# --- alphabet choice and transliteration ----------------------------------

def test_typographic_text_is_transliterated_to_gsm7():
    plan = plan_sms("L’allerta “rossa” – Comune…")
    assert plan.encoding == "GSM-7"
    assert plan.transliterated is True
    assert plan.text == "L'allerta \"rossa\" - Comune..."
    assert plan.parts == (plan.text,)


def test_transliterate_only_replaces_typographic_characters():
    assert transliterate("«Esci» — ora ж") == "\"Esci\" - ora ж"


def test_text_not_gsm7_even_after_transliteration_stays_ucs2_untouched():
    for text in ("Allerta “rossa” – эвакуация", "Allerta “rossa” – إخلاء"):
        plan = plan_sms(text)
        assert plan.encoding == "UCS-2"
        assert plan.transliterated is False
        assert plan.text == text
        assert plan.parts == (text,)


def test_non_breaking_space_would_silently_force_ucs2():
    # Word and web pages put a NBSP before ":" or between "10" and "km"; it
    # looks like a space but is not GSM-7, so a 100-character alert would
    # become a 2-part UCS-2 message instead of a single GSM-7 one.
    text = "Allerta meteo\u00a0: evacuare entro 10\u202fkm dal fiume Tevere. " * 2
    assert len(text) > 70
    untouched = plan_sms(text, transliterate_typographic=False)
    assert (untouched.encoding, untouched.segments) == ("UCS-2", 2)
    assert untouched.text == text
    plan = plan_sms(text)
    assert (plan.encoding, plan.segments, plan.transliterated) == ("GSM-7", 1, True)
    assert "\u00a0" not in plan.text and "\u202f" not in plan.text


def test_gsm7_text_is_not_marked_transliterated():
    plan = plan_sms("Allerta rossa")
    assert (plan.encoding, plan.transliterated, plan.text) == ("GSM-7", False, "Allerta rossa")


def test_italian_accents_in_gsm7_stay_gsm7():
    plan = plan_sms("Città, perché, più, così, però, è")
    assert plan.encoding == "GSM-7"
    assert plan.transliterated is False


@pytest.mark.parametrize("text", ["Piú tardi", "Bisognerà ê", "Perchó", "È in corso ê"])
def test_accents_missing_from_gsm7_force_ucs2(text):
    plan = plan_sms(text)
    assert plan.encoding == "UCS-2"
    assert plan.text == text


def test_capital_e_grave_is_written_e_apostrophe():
    # Capital È is not in GSM-7 (only É is); Italians write E' instead.
    plan = plan_sms("È in corso un'allerta")
    assert plan.encoding == "GSM-7"
    assert plan.text == "E' in corso un'allerta"
    assert plan.transliterated is True


def test_emoji_raises_naming_character_and_position():
    text = "Allerta! Ev 😀 acuare"
    with pytest.raises(SmsTextError, match="'😀'.* at position 13 cannot be sent") as info:
        plan_sms(text)
    assert info.value.position == 13
    assert info.value.character == "😀"
    assert text[info.value.position - 1] == "😀"


def test_lone_surrogate_raises():
    with pytest.raises(SmsTextError, match="position 2"):
        plan_sms("a\ud83d")


@pytest.mark.parametrize("text", ["", "\u200b\ufeff"])
def test_empty_text_raises(text):
    with pytest.raises(SmsTextError, match="message text is empty"):
        plan_sms(text)


def test_sms_text_error_is_a_value_error():
    assert issubclass(SmsTextError, ValueError)


# --- septets ---------------------------------------------------------------

def test_hellohello_packs_to_the_23038_example():
    assert pack_septets(gsm7_septets("hellohello")).hex().upper() == "E8329BFD4697D9EC37"


def test_gsm7_septets_uses_escape_pairs():
    assert gsm7_septets("a€[") == [0x61, 0x1B, 0x65, 0x1B, 0x3C]
    with pytest.raises(SmsTextError):
        gsm7_septets("ж")


def test_pack_with_fill_bits_by_hand():
    assert pack_septets([0x7F], fill_bits=1) == bytes([0xFE])
    assert pack_septets([0x01, 0x01], fill_bits=1) == bytes([0x02, 0x01])
    assert pack_septets([], fill_bits=0) == b""


@pytest.mark.parametrize("fill_bits", range(7))
def test_pack_matches_gsmmodem_and_round_trips(fill_bits):
    septets = gsm7_septets("Allerta € [rossa] ~ hellohello {}")
    packed = pack_septets(septets, fill_bits)
    assert unpack_septets(packed, len(septets), fill_bits) == septets
    if fill_bits:   # gsmmodem's padBits is the bit offset of the next septet, 7 - fill
        assert packed == bytes(gsmpdu.packSeptets(bytearray(septets), padBits=7 - fill_bits))
    else:
        assert packed == bytes(gsmpdu.packSeptets(bytearray(septets)))


def test_unpack_refuses_short_data():
    with pytest.raises(ValueError):
        unpack_septets(b"\x00", 2)


def test_decode_gsm7_round_trips_every_character():
    text = "".join(c for c in GSM7_BASIC if c != "\x1b") + "".join(GSM7_EXTENSION)
    assert decode_gsm7(gsm7_septets(text)) == text
    assert decode_gsm7(bytes(gsm7_septets("€uro"))) == "€uro"


def test_decode_gsm7_unknown_escape_and_trailing_escape():
    assert decode_gsm7([0x1B, 0x41]) == "A"
    assert decode_gsm7([0x61, 0x1B]) == "a "


# --- relative validity -----------------------------------------------------

@pytest.mark.parametrize("minutes, octet", [
    (1, 0), (5, 0), (7, 1), (10, 1), (720, 143), (721, 144), (750, 144), (1440, 167),
    (1441, 168), (2880, 168), (2881, 169), (30 * 1440, 196), (30 * 1440 + 1, 197),
    (63 * 7 * 1440, 255),
])
def test_relative_validity_rounds_up_to_representable_period(minutes, octet):
    assert relative_validity_octet(minutes) == octet
    period = gsmpdu._decodeRelativeValidityPeriod(octet)
    assert period >= dt.timedelta(minutes=minutes)


@pytest.mark.parametrize("minutes", [0, -5, 63 * 7 * 1440 + 1])
def test_relative_validity_out_of_range(minutes):
    with pytest.raises(ValueError):
        relative_validity_octet(minutes)


# --- SMS-SUBMIT PDUs -------------------------------------------------------

def test_single_gsm7_pdu_exact_hex():
    (pdu,) = encode_submit_pdus(NUMBER, plan_sms("Test"), concat_reference=0)
    # 00 SMSC from SIM | 21 SUBMIT+SRR | 00 TP-MR | 0C 91 933313325476 number |
    # 00 PID | 00 DCS | 04 UDL | D4F29C0E "Test" packed
    assert pdu.hex == "0021000C91933313325476000004D4F29C0E"
    assert pdu.tpdu_length == 17 == len(octets(pdu.hex)) - 1
    assert (pdu.part, pdu.parts) == (1, 1)


def test_single_gsm7_pdu_is_identical_to_gsmmodem():
    text = "Allerta rossa: evacuare la zona Isola Sacra €"
    for reference in (0, 42):
        (ours,) = encode_submit_pdus(NUMBER, plan_sms(text), concat_reference=reference,
                                     message_reference=reference)
        (theirs,) = gsmpdu.encodeSmsSubmitPdu(NUMBER, text, reference=reference)
        assert ours.hex == str(theirs)
        assert ours.tpdu_length == theirs.tpduLength


def test_multipart_gsm7_differs_from_gsmmodem_only_in_tp_mr_of_later_parts():
    text = "a" * 152 + "€" + "b" * 20
    ours = encode_submit_pdus(NUMBER, plan_sms(text), concat_reference=7, message_reference=7)
    theirs = gsmpdu.encodeSmsSubmitPdu(NUMBER, text, reference=7)
    assert len(ours) == len(theirs) == 2
    for index, (mine, other) in enumerate(zip(ours, theirs)):
        mine_octets, other_octets = bytearray(octets(mine.hex)), bytearray(other.data)
        assert mine_octets[2] == 7 + index       # gsmmodem repeats TP-MR 7 on every part
        mine_octets[2] = other_octets[2]
        assert mine_octets == other_octets


def test_single_gsm7_pdu_decodes_with_gsmmodem():
    (pdu,) = encode_submit_pdus(NUMBER, plan_sms("Allerta [rossa] a Fiumicino: 50€"),
                                concat_reference=0, message_reference=9)
    result = decoded(pdu.hex)
    assert result["type"] == "SMS-SUBMIT"
    assert result["number"] == NUMBER
    assert result["text"] == "Allerta [rossa] a Fiumicino: 50€"
    assert result["reference"] == 9
    assert result["tpdu_length"] == pdu.tpdu_length
    assert "udh" not in result


def test_multipart_gsm7_with_euro_at_boundary_decodes_with_gsmmodem():
    text = "Allerta " * 19 + "€" + " evacuare subito la zona Isola Sacra"   # 152 + € + ...
    plan = plan_sms(text)
    assert plan.parts[1].startswith("€")
    pdus = encode_submit_pdus(NUMBER, plan, concat_reference=0x1A5, message_reference=3)
    assert [(p.part, p.parts) for p in pdus] == [(1, 2), (2, 2)]
    texts = []
    for index, pdu in enumerate(pdus, start=1):
        raw = octets(pdu.hex)
        assert raw[1] == 0x61                     # SUBMIT | SRR | UDHI
        assert raw[2] == 3 + index - 1            # one TP-MR per submit
        result = decoded(pdu.hex)
        assert result["number"] == NUMBER
        assert concat_info(result) == (0xA5, 2, index)
        assert result["tpdu_length"] == pdu.tpdu_length == len(raw) - 1
        texts.append(result["text"])
    assert texts == list(plan.parts)
    # UDL of part 1: 7 septets of UDH (6 octets + 1 fill bit) + 152.
    assert octets(pdus[0].hex)[UDL] == 7 + 152


def test_single_ucs2_pdu_decodes_with_gsmmodem():
    text = "Evacuare — اخلاء"
    (pdu,) = encode_submit_pdus(NUMBER, plan_sms(text), concat_reference=0)
    raw = octets(pdu.hex)
    assert raw[DCS] == 0x08                        # DCS UCS-2
    assert raw[UDL] == 2 * len(text)               # UDL in octets
    result = decoded(pdu.hex)
    assert (result["number"], result["text"]) == (NUMBER, text)
    assert str(gsmpdu.encodeSmsSubmitPdu(NUMBER, text)[0]) == pdu.hex


def test_multipart_ucs2_pdu_decodes_with_gsmmodem():
    plan = plan_sms(UCS2_ALERT)
    assert plan.encoding == "UCS-2"
    assert "—" in plan.text                       # not transliterated: Arabic needs UCS-2
    pdus = encode_submit_pdus(NUMBER, plan, concat_reference=200)
    assert len(pdus) == plan.segments == 3
    texts = []
    for index, pdu in enumerate(pdus, start=1):
        result = decoded(pdu.hex)
        assert result["number"] == NUMBER
        assert concat_info(result) == (200, 3, index)
        assert octets(pdu.hex)[UDL] == 6 + 2 * len(plan.parts[index - 1])
        texts.append(result["text"])
    assert "".join(texts) == UCS2_ALERT
    assert len(octets(pdus[0].hex)) - (UDL + 1) == 140   # a full part fills the 140 octets


def test_national_number_and_odd_digit_padding():
    (pdu,) = encode_submit_pdus("3331234567", plan_sms("x"), concat_reference=0)
    assert octets(pdu.hex)[3:10] == bytes.fromhex("0A81" "3313325476")
    (pdu,) = encode_submit_pdus("+39333123456", plan_sms("x"), concat_reference=0)
    assert octets(pdu.hex)[3:11] == bytes.fromhex("0B91" "9333133254F6")
    assert decoded(pdu.hex)["number"] == "+39333123456"


@pytest.mark.parametrize("number", ["", "+", "+39 333 1234567", "12a4", "+" + "1" * 21, "٣٣٣"])
def test_bad_numbers_are_refused(number):
    with pytest.raises(ValueError):
        encode_submit_pdus(number, plan_sms("x"), concat_reference=0)


def test_options_set_first_octet_dcs_and_validity():
    (pdu,) = encode_submit_pdus(NUMBER, plan_sms("Test"), concat_reference=0,
                                status_report=False, validity_minutes=24 * 60, flash=True)
    raw = octets(pdu.hex)
    assert raw[1] == 0x11                         # SUBMIT | relative VP, no SRR
    assert raw[DCS] == 0x10                        # flash GSM-7
    assert raw[13] == 167                          # TP-VP: 24 hours
    result = decoded(pdu.hex)
    assert result["validity"] == dt.timedelta(hours=24)
    assert result["text"] == "Test"
    assert pdu.tpdu_length == 18
    (pdu,) = encode_submit_pdus(NUMBER, plan_sms("ж"), concat_reference=0, flash=True)
    assert octets(pdu.hex)[DCS] == 0x18


def test_references_wrap_at_one_octet():
    pdus = encode_submit_pdus(NUMBER, plan_sms("a" * 200), concat_reference=0x1FF,
                              message_reference=255)
    assert [octets(p.hex)[2] for p in pdus] == [255, 0]
    assert [concat_info(decoded(p.hex))[0] for p in pdus] == [0xFF, 0xFF]


def test_pdu_hex_is_uppercase():
    (pdu,) = encode_submit_pdus(NUMBER, plan_sms("hellohello"), concat_reference=0)
    assert pdu.hex == pdu.hex.upper()
    assert pdu.hex.endswith("0AE8329BFD4697D9EC37")


def test_plan_is_frozen():
    plan = plan_sms("Test")
    assert isinstance(plan, SmsPlan)
    with pytest.raises(AttributeError):
        plan.text = "other"   # type: ignore[misc]
