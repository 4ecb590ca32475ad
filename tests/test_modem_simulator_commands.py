"""Commands real modems implement and gammu relies on (networkinfo, USSD, phonebook, battery), per profile:
byte transcripts of the pure AT engine. They were answered ERROR on every profile, so `gammu networkinfo`
failed and gammu-smsd got an ERROR after every message."""
from __future__ import annotations

import pytest
from gsmmodem.pdu import decodeGsm7, unpackSeptets

from modem.simulator.pdu_codec import packed_gsm7_hex
from modem.simulator.profiles import GENERIC, HUAWEI, SIM800
from tests.test_modem_simulator_engine import NOW, make_modem, talk


@pytest.mark.parametrize("profile", [GENERIC, HUAWEI, SIM800], ids=lambda p: p.name)
def test_gprs_registration_phonebook_and_ussd(profile):
    modem = make_modem(profile)
    talk(modem, b"ATE0\r")
    assert talk(modem, b"AT+CGREG?\r") == b"\r\n+CGREG: 0,1\r\n\r\nOK\r\n"
    assert talk(modem, b"AT+CGREG=?\r") == b"\r\n+CGREG: (0-2)\r\n\r\nOK\r\n"
    assert talk(modem, b"AT+CGREG=2\r") == b"\r\nOK\r\n"
    assert talk(modem, b"AT+CGREG?\r").startswith(b"\r\n+CGREG: 2,1,")
    assert talk(modem, b"AT+CGATT?\r") == b"\r\n+CGATT: 1\r\n\r\nOK\r\n"
    assert talk(modem, b"AT+CPBS?\r") == b'\r\n+CPBS: "SM",0,250\r\n\r\nOK\r\n'
    assert talk(modem, b'AT+CPBS="ME"\r') == b"\r\nOK\r\n"
    assert talk(modem, b'AT+CPBS="XX"\r') == b"\r\nERROR\r\n"
    actions = modem.feed(b'AT+CUSD=1,"*123#",15\r', NOW)
    assert actions[0].data == b"\r\nOK\r\n"
    (urc,) = [a for a in actions[1:] if a.data]
    # A Huawei stick answers in hex packed GSM-7 (as gammu, F_ENCODED_USSD, expects of an E3531).
    text = packed_gsm7_hex("Credito residuo")[:24] if profile.ussd_packed else "Credito residuo"
    assert urc.data.startswith(b'\r\n+CUSD: 0,"' + text.encode()) and urc.delay > actions[0].delay


def test_a_huawei_stick_takes_and_gives_ussd_as_packed_gsm7():
    """gammu sends an E3531 `AT+CUSD=1,"AA986C3602",15` (*123#) and decodes the answer as packed GSM-7:
    a UCS-2 answer came out of `gammu getussd` as an empty reply."""
    modem = make_modem(HUAWEI)
    talk(modem, b"ATE0\r")
    talk(modem, b'AT+CSCS="UCS2"\r')
    actions = modem.feed(b'AT+CUSD=1,"AA986C3602",15\r', NOW)
    urc = b"".join(a.data for a in actions[1:]).decode()
    packed = urc.split('"')[1]
    septets = unpackSeptets(bytearray(bytes.fromhex(packed)))
    assert decodeGsm7(septets).rstrip("@").startswith("Credito residuo: 5,00 EUR")


def test_a_ussd_answer_under_ucs2_is_hex():
    modem = make_modem(SIM800)
    talk(modem, b'ATE0\r')
    talk(modem, b'AT+CSCS="UCS2"\r')
    actions = modem.feed(b'AT+CUSD=1,"002A0031003200330023",15\r', NOW)
    urc = b"".join(a.data for a in actions[1:])
    assert "Credito".encode("utf-16-be").hex().upper().encode() in urc


@pytest.mark.parametrize("profile, reply", [(GENERIC, b"+CBC: 0,100"), (SIM800, b"+CBC: 0,95,4120"),
                                            (HUAWEI, None)], ids=["generic", "sim800", "huawei"])
def test_battery_where_the_model_has_one(profile, reply):
    modem = make_modem(profile)
    talk(modem, b"ATE0\r")
    answer = talk(modem, b"AT+CBC\r")
    if reply is None:   # a USB dongle: its own way of saying unknown command
        assert answer == b"\r\nCOMMAND NOT SUPPORT\r\n"
    else:
        assert answer == b"\r\n" + reply + b"\r\n\r\nOK\r\n"
