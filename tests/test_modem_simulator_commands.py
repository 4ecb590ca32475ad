"""Commands real modems implement and gammu relies on (networkinfo, USSD, phonebook, battery), per profile:
byte transcripts of the pure AT engine. They were answered ERROR on every profile, so `gammu networkinfo`
failed and gammu-smsd got an ERROR after every message."""
from __future__ import annotations

import pytest

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
    assert urc.data.startswith(b'\r\n+CUSD: 0,"Credito residuo') and urc.delay > actions[0].delay


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
