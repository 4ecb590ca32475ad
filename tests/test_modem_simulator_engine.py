"""Byte transcripts of the pure AT engine (no pty, no threads)."""
from __future__ import annotations

import random

import pytest
from gsmmodem.pdu import decodeSmsPdu, encodeSmsSubmitPdu

from modem.simulator.at_engine import ModemConfig, SimulatedModem
from modem.simulator.at_parser import Command, parse_command_line
from modem.simulator.incoming import compose
from modem.simulator.latency import Latency
from modem.simulator.profiles import GENERIC, HUAWEI, SIM800, TELIT, luhn_valid, make_imei
from modem.simulator.sms import network_time

SUBMIT_DELAY = 0.5
NOW = 1_800_000_000.0


def make_modem(profile=GENERIC, **config) -> SimulatedModem:
    settings = dict(submit_latency=Latency(fixed=SUBMIT_DELAY), command_latency=Latency(fixed=0.001),
                    prompt_latency=Latency(fixed=0.002), report_delay=1.0)
    settings.update(config)
    modem = SimulatedModem("modem-0", profile, make_imei(profile, 7, 0), "222011234567890",
                           random.Random(7), ModemConfig(**settings))
    modem.power_on(NOW)
    return modem


def out(actions) -> bytes:
    return b"".join(a.data for a in actions)


def talk(modem, data: bytes, now: float = NOW) -> bytes:
    return out(modem.feed(data, now))


def pdu_for(text: str, number: str = "+393331234567", reference: int = 0) -> tuple[str, int]:
    pdu = encodeSmsSubmitPdu(number, text, reference=reference)[0]
    return str(pdu), pdu.tpduLength


def test_power_on_echo_then_ate0_silences_echo():
    modem = make_modem()
    assert talk(modem, b"ATZ\r") == b"ATZ\r\r\nOK\r\n"
    # ATE0 is echoed: the modem echoes characters before it runs the command.
    assert talk(modem, b"ATE0\r") == b"ATE0\r\r\nOK\r\n"
    assert talk(modem, b"AT\r") == b"\r\nOK\r\n"
    assert talk(modem, b"ATE1\r") == b"\r\nOK\r\n"
    assert talk(modem, b"AT+CGMI\r") == b"AT+CGMI\r\r\nAllerta\r\n\r\nOK\r\n"


def test_atz_restores_echo_and_cmee():
    modem = make_modem()
    talk(modem, b"ATE0\r")
    talk(modem, b"AT+CMEE=1\r")
    assert talk(modem, b"ATZ\r") == b"\r\nOK\r\n"
    assert (modem.echo, modem.cmee) == (True, 0)


def test_bytes_split_across_reads_form_one_command():
    modem = make_modem()
    talk(modem, b"ATE0\r")
    assert talk(modem, b"AT+CG") == b""
    assert talk(modem, b"SN\r") == f"\r\n{modem.imei}\r\n\r\nOK\r\n".encode()


def test_pdu_submit_flow_and_incrementing_reference():
    modem = make_modem()
    talk(modem, b"ATE0\r")
    for expected_mr in (0, 1, 2):
        pdu, length = pdu_for(f"Allerta {expected_mr}", reference=99)
        assert talk(modem, f"AT+CMGS={length}\r".encode()) == b"\r\n> "
        actions = modem.feed(pdu.encode() + b"\x1a", NOW)
        reply = [a for a in actions if a.data]
        assert reply[0].data == f"\r\n+CMGS: {expected_mr}\r\n\r\nOK\r\n".encode()
        assert reply[0].delay == pytest.approx(SUBMIT_DELAY)
        event = reply[0].event
        assert event["event"] == "submit"
        assert (event["text"], event["destination"], event["reference"]) == (
            f"Allerta {expected_mr}", "+393331234567", expected_mr)
        assert (event["part"], event["parts"], event["concat_ref"], event["encoding"]) == (1, 1, None, "gsm7")


def test_pdu_is_echoed_after_prompt_when_echo_is_on():
    modem = make_modem()
    pdu, length = pdu_for("Eco")
    assert talk(modem, f"AT+CMGS={length}\r".encode()) == f"AT+CMGS={length}\r\r\n> ".encode()
    assert talk(modem, pdu.encode() + b"\x1a") == pdu.encode() + b"\r\n+CMGS: 0\r\n\r\nOK\r\n"


def test_concatenated_ucs2_parts_are_reported_per_part():
    modem = make_modem()
    talk(modem, b"ATE0\r")
    text = "Evacuare la zona rossa ⚠ subito, seguire le indicazioni della protezione civile"
    events = []
    for pdu in encodeSmsSubmitPdu("+393331234567", text, reference=42):
        talk(modem, f"AT+CMGS={pdu.tpduLength}\r".encode())
        events += [a.event for a in modem.feed(str(pdu).encode() + b"\x1a", NOW) if a.event]
    assert [(e["part"], e["parts"], e["concat_ref"], e["encoding"]) for e in events] == [
        (1, 2, 42, "ucs2"), (2, 2, 42, "ucs2")]
    assert "".join(e["text"] for e in events) == text


def test_gammu_style_pdu_with_smsc_is_accepted():
    modem = make_modem()
    talk(modem, b"ATE0\r")
    tpdu = "1100" + "0C91933313325476" + "0000" + "AA" + "05C8329BFD06"
    smsc = "07913933909506F0"
    talk(modem, f"AT+CMGS={len(tpdu) // 2}\r".encode())
    actions = modem.feed((smsc + tpdu).encode() + b"\x1a", NOW)
    assert actions[0].data == b"\r\n+CMGS: 0\r\n\r\nOK\r\n"
    assert actions[0].event["text"] == "Hello"
    assert not any(a.timer for a in actions), "no status report unless TP-SRR is set"


@pytest.mark.parametrize("body, length", [
    ("0021000C91933313325476000005C8329BFD06", 30),  # length mismatch
    ("00ZZ", 1),  # not hex
    ("0021000C9193331332547600000AC8", 14),  # truncated user data
])
def test_bad_pdu_gets_cms_304(body, length):
    modem = make_modem()
    talk(modem, b"ATE0\r")
    talk(modem, b"AT+CMEE=1\r")
    if length < 7:
        assert talk(modem, f"AT+CMGS={length}\r".encode()) == b"\r\n+CMS ERROR: 304\r\n"
        return
    talk(modem, f"AT+CMGS={length}\r".encode())
    assert talk(modem, body.encode() + b"\x1a") == b"\r\n+CMS ERROR: 304\r\n"
    assert modem.message_reference == 0


def test_escape_cancels_pdu_entry():
    modem = make_modem()
    talk(modem, b"ATE0\r")
    talk(modem, b"AT+CMGS=20\r")
    assert talk(modem, b"0011\x1b") == b"\r\nOK\r\n"
    assert talk(modem, b"AT\r") == b"\r\nOK\r\n"


def test_chained_commands_with_and_without_semicolons():
    modem = make_modem()
    talk(modem, b"ATE0\r")
    assert talk(modem, b"AT+CMEE=1;+CLIP=1;+CREG=2\r") == b"\r\nOK\r\n"
    assert (modem.cmee, modem.clip, modem.creg_mode) == (1, 1, 2)
    assert talk(modem, b"AT+CREG?\r") == b'\r\n+CREG: 2,1,"5B2A","0000C3F1"\r\n\r\nOK\r\n'
    reply = talk(modem, b'ATE0+CPMS="SM"+CNMI=2,1,0,2,1\r')
    assert reply == b"\r\n+CPMS: 0,30,0,30,0,30\r\n\r\nOK\r\n"
    assert modem.cnmi == [2, 1, 0, 2, 1]
    # A failing command stops the chain: +CSCS="KOI8" fails, +CMGF=1 never runs.
    assert talk(modem, b'AT+CSQ;+CSCS="KOI8";+CMGF=1\r').endswith(b"\r\nERROR\r\n")
    assert modem.cmgf == 0


def test_parser_splits_basic_and_extended_commands():
    assert parse_command_line('ATE0+CPMS="SM"+CNMI=2,0,0,2,1') == [
        Command("E", "", "0"), Command("+CPMS", "=", '"SM"'), Command("+CNMI", "=", "2,0,0,2,1")]
    assert parse_command_line('AT+CMGS="+393331234567"') == [Command("+CMGS", "=", '"+393331234567"')]
    assert parse_command_line("at+cpms=?") == [Command("+CPMS", "=?", "")]


@pytest.mark.parametrize("cmee, expected", [
    (0, b"\r\nERROR\r\n"),
    (1, b"\r\n+CMS ERROR: 321\r\n"),
    (2, b"\r\n+CMS ERROR: Invalid memory index\r\n"),
])
def test_cmee_error_forms(cmee, expected):
    modem = make_modem()
    talk(modem, b"ATE0\r")
    talk(modem, f"AT+CMEE={cmee}\r".encode())
    assert talk(modem, b"AT+CMGR=999\r") == expected


def test_unknown_command_generic_and_huawei():
    generic, huawei = make_modem(GENERIC), make_modem(HUAWEI)
    for modem in (generic, huawei):
        talk(modem, b"ATE0\r")
        talk(modem, b"AT+CMEE=1\r")
    assert talk(generic, b"AT+MODE=2\r") == b"\r\nERROR\r\n"
    assert talk(huawei, b"AT+MODE=2\r") == b"\r\nCOMMAND NOT SUPPORT\r\n"
    assert talk(generic, b"AT^CURC=0\r") == b"\r\nERROR\r\n"
    assert talk(huawei, b"AT^CURC=0\r") == b"\r\nOK\r\n"


def test_huawei_identity_unquoted_creg_and_curc_stops_urcs():
    modem = make_modem(HUAWEI)
    talk(modem, b"ATE0\r")
    assert talk(modem, b"AT+CGMI;+CGMM\r") == b"\r\nhuawei\r\nE3531\r\n\r\nOK\r\n"
    talk(modem, b"AT+CREG=2\r")
    assert talk(modem, b"AT+CREG?\r") == b"\r\n+CREG: 2,1, E006B, ABE0016\r\n\r\nOK\r\n"
    timer = next(a.timer for a in modem.power_on(NOW) if a.timer)
    talk(modem, b"ATE0\r")
    urc = out(modem.on_timer(timer, NOW + 30))
    assert urc.startswith(b"\r\n^") and urc.endswith(b"\r\n")
    talk(modem, b"AT^CURC=0\r", NOW + 31)
    again = modem.on_timer(timer, NOW + 60)
    assert out(again) == b"" and any(a.timer for a in again)


def test_sim800_identity_boot_urcs_clac_and_cnmi():
    modem = make_modem(SIM800)
    boot = out(modem.power_on(NOW))
    assert boot == b"\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\nCall Ready\r\n\r\nSMS Ready\r\n"
    talk(modem, b"ATE0\r")
    talk(modem, b"AT+CMEE=1\r")
    assert talk(modem, b"AT+CGMI\r") == b"\r\nSIMCOM_Ltd\r\n\r\nOK\r\n"
    assert b"\r\nAT+CGMI\r\n" in talk(modem, b"AT+CLAC\r")
    assert talk(modem, b"AT+CNMI=?\r") == b"\r\n+CNMI: (0-3),(0-3),(0,2),(0,1),(0,1)\r\n\r\nOK\r\n"
    assert talk(modem, b"AT+CNMI=2,1,0,2\r") == b"\r\n+CMS ERROR: 303\r\n"
    assert talk(modem, b"AT+CNMI=2,1,0,1,0\r") == b"\r\nOK\r\n"


def test_sim_pin_flow():
    modem = make_modem(pin="1234")
    modem.power_on(NOW)
    talk(modem, b"ATE0\r")
    talk(modem, b"AT+CMEE=1\r")
    assert talk(modem, b"AT+CPIN?\r") == b"\r\n+CPIN: SIM PIN\r\n\r\nOK\r\n"
    assert talk(modem, b"AT+CSCA?\r") == b"\r\n+CMS ERROR: 311\r\n"
    assert talk(modem, b"AT+COPS?\r") == b"\r\n+CME ERROR: 11\r\n"
    assert talk(modem, b'AT+CPIN="0000"\r') == b"\r\n+CME ERROR: 16\r\n"
    assert talk(modem, b'AT+CPIN="1234"\r') == b"\r\nOK\r\n"
    assert talk(modem, b"AT+CPIN?\r") == b"\r\n+CPIN: READY\r\n\r\nOK\r\n"
    assert talk(modem, b"AT+CSCA?\r") == b'\r\n+CSCA: "+393359609600",145\r\n\r\nOK\r\n'


def _submit_with_report(modem):
    pdu, length = pdu_for("Allerta", reference=0)
    talk(modem, f"AT+CMGS={length}\r".encode())
    actions = modem.feed(pdu.encode() + b"\x1a", NOW)
    timer_action = next(a for a in actions if a.timer)
    assert timer_action.delay == pytest.approx(SUBMIT_DELAY + 1.0)
    return actions[0].event["reference"], timer_action.timer


def test_status_report_stored_in_sr_with_cdsi_round_trips():
    modem = make_modem(TELIT)  # the profile whose model keeps reports in a memory of their own
    talk(modem, b"ATE0\r")
    talk(modem, b"AT+CNMI=2,1,0,2,0\r")
    modem.message_reference = 41
    reference, timer = _submit_with_report(modem)
    actions = modem.on_timer(timer, NOW + 2)
    assert out(actions) == b'\r\n+CDSI: "SR",1\r\n'
    assert [a.event["event"] for a in actions if a.event] == ["status_report"]
    talk(modem, b'AT+CPMS="SR"\r')
    reply = talk(modem, b"AT+CMGR=1\r").split(b"\r\n")
    assert reply[1].startswith(b"+CMGR: 0,,")
    decoded = decodeSmsPdu(reply[2].decode())
    assert decoded["type"] == "SMS-STATUS-REPORT"
    assert (decoded["reference"], decoded["status"], decoded["number"]) == (41, 0, "+393331234567")
    assert int(reply[1].rsplit(b",", 1)[1]) == decoded["tpdu_length"]


def test_status_report_routed_to_te_with_cds_in_one_write():
    modem = make_modem(SIM800)
    talk(modem, b"ATE0\r")
    talk(modem, b"AT+CNMI=2,1,0,1,0\r")
    reference, timer = _submit_with_report(modem)
    writes = [a.data for a in modem.on_timer(timer, NOW + 2) if a.data]
    assert len(writes) == 1
    head, pdu, tail = writes[0].split(b"\r\n")[1:4]
    decoded = decodeSmsPdu(pdu.decode())
    assert head == f"+CDS: {decoded['tpdu_length']}".encode() and tail == b""
    assert decoded["reference"] == reference


@pytest.mark.parametrize("text", ["SI, confermo", "Ricevuto ✓ grazie"])
def test_incoming_sms_cmti_and_cmgr_decode(text):
    modem = make_modem()
    talk(modem, b"ATE0\r")
    assert out(modem.incoming_sms(compose("+393331234567", text, modem.smsc, network_time(NOW)), NOW)) == b'\r\n+CMTI: "SM",1\r\n'
    lines = talk(modem, b"AT+CMGR=1\r").split(b"\r\n")
    decoded = decodeSmsPdu(lines[2].decode())
    assert (decoded["type"], decoded["number"], decoded["text"]) == ("SMS-DELIVER", "+393331234567", text)
    assert talk(modem, b"AT+CMGD=1,0\r") == b"\r\nOK\r\n"
    assert modem.store.counts()["SM"] == 0


def test_injected_cms_error_comes_after_the_latency():
    modem = make_modem(cms_error_rate=1.0, cms_error_code=42)
    talk(modem, b"ATE0\r")
    talk(modem, b"AT+CMEE=1\r")
    pdu, length = pdu_for("x")
    assert talk(modem, f"AT+CMGS={length}\r".encode()) == b"\r\n> "
    actions = modem.feed(pdu.encode() + b"\x1a", NOW)
    assert [(a.delay, a.data) for a in actions] == [(SUBMIT_DELAY, b"\r\n+CMS ERROR: 42\r\n")]
    assert modem.counters.cms_errors == 1 and modem.message_reference == 0


def test_deregistration_gives_creg_urc_and_cms_331():
    modem = make_modem()
    talk(modem, b"ATE0\r")
    talk(modem, b"AT+CMEE=1;+CREG=1\r")
    assert out(modem.set_registered(False, NOW)) == b"\r\n+CREG: 2\r\n"
    pdu, length = pdu_for("x")
    talk(modem, f"AT+CMGS={length}\r".encode())
    assert talk(modem, pdu.encode() + b"\x1a") == b"\r\n+CMS ERROR: 331\r\n"
    assert talk(modem, b"AT+COPS?\r") == b"\r\n+COPS: 0\r\n\r\nOK\r\n"
    assert out(modem.set_registered(True, NOW)) == b"\r\n+CREG: 1\r\n"


def test_urc_during_data_entry_waits_for_the_reply():
    modem = make_modem()
    talk(modem, b"ATE0\r")
    pdu, length = pdu_for("x")
    talk(modem, f"AT+CMGS={length}\r".encode())
    for text in ("uno", "due"):
        assert out(modem.incoming_sms(compose("+393331234567", text, modem.smsc, network_time(NOW)), NOW)) == b""
    data = [a.data for a in modem.feed(pdu.encode() + b"\x1a", NOW) if a.data]
    assert data[0] == b"\r\n+CMGS: 0\r\n\r\nOK\r\n"
    assert data[1:] == [b'\r\n+CMTI: "SM",1\r\n', b'\r\n+CMTI: "SM",2\r\n']


def test_hang_is_silent_until_ctrl_z_cr():
    modem = make_modem()
    talk(modem, b"ATE0\r")
    modem.hang(None)
    assert talk(modem, b"AT\r") == b""
    assert talk(modem, b"\x1a\r") == b""
    assert talk(modem, b"AT\r") == b"\r\nOK\r\n"


def test_imeis_are_valid_and_stable():
    imeis = [make_imei(profile, 3, index) for profile in (GENERIC, HUAWEI, SIM800) for index in range(8)]
    assert all(len(i) == 15 and luhn_valid(i) for i in imeis)
    assert len(set(imeis)) == len(imeis)
    assert make_imei(HUAWEI, 3, 5) == make_imei(HUAWEI, 3, 5) != make_imei(HUAWEI, 4, 5)
    assert luhn_valid("490154203237518")


def test_text_mode_submit():
    modem = make_modem()
    talk(modem, b"ATE0\r")
    talk(modem, b"AT+CMGF=1;+CSMP=49,167,0,0\r")
    assert talk(modem, b'AT+CMGS="+393331234567"\r') == b"\r\n> "
    actions = modem.feed(b"Allerta\rmeteo\x1a", NOW)
    submit = next(a for a in actions if a.event)
    assert submit.data == b"\r\n+CMGS: 0\r\n\r\nOK\r\n"
    assert (submit.event["text"], submit.event["destination"]) == ("Allerta\nmeteo", "+393331234567")
    assert any(a.timer for a in actions), "CSMP fo 49 asks for a status report"


def test_cfun_reset_reboots_with_boot_urcs():
    modem = make_modem(SIM800)
    talk(modem, b"ATE0\r")
    actions = modem.feed(b"AT+CFUN=1,1\r", NOW)
    assert out(actions) == b"\r\nOK\r\n"
    reboot = modem.on_timer(next(a.timer for a in actions if a.timer), NOW + 1)
    assert out(reboot).startswith(b"\r\nRDY\r\n") and modem.echo is True
