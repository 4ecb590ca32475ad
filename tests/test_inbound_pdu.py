"""Incoming SMS at the byte level: what the simulated network sends (modem/simulator/incoming.py,
pdu_codec.py) and how the engine reads it (modem/deliver_pdu.py), without a pty."""
from __future__ import annotations

import datetime as dt

import pytest
from gsmmodem.pdu import decodeSmsPdu

from modem.deliver_pdu import UndecodablePdu, decode_deliver
from modem.simulator.incoming import ACK_TIMEOUT, compose
from modem.simulator.pdu_codec import Concat, build_deliver, build_status_report, split_for_delivery
from modem.simulator.sms import network_time
from tests.test_modem_simulator_engine import NOW, make_modem, out, talk

CET = dt.timezone(dt.timedelta(hours=1))
WHEN = dt.datetime(2026, 12, 4, 12, 30, 15, tzinfo=CET)


def test_an_alphanumeric_sender_and_the_smsc_time_in_utc():
    pdu, _ = build_deliver("Comune", "Prova sirene", "+393359609600", WHEN)
    part = decode_deliver(pdu, "m0")
    assert (part.sender, part.alphanumeric, part.text) == ("Comune", True, "Prova sirene")
    assert part.sent_at == dt.datetime(2026, 12, 4, 11, 30, 15)
    assert (part.reference, part.parts, part.seq) == (0, 1, 1)
    assert not decode_deliver(build_deliver("+393331234567", "x", None, WHEN)[0]).alphanumeric


def test_a_gsm7_part_after_a_16_bit_reference_keeps_its_first_character():
    pdu, _ = build_deliver("+393331234567", "Siamo in tre", None, WHEN, concat=Concat(0x1234, 2, 2, wide=True))
    # python-gsmmodem-new takes fill bits that are not there and drops the first character.
    assert decodeSmsPdu(pdu)["text"] == "iamo in tre"
    part = decode_deliver(pdu)
    assert (part.text, part.reference, part.parts, part.seq) == ("Siamo in tre", 0x1234, 2, 2)


@pytest.mark.parametrize("wide", [False, True])
def test_every_part_of_a_long_text_decodes_to_the_original(wide):
    text = "Acqua alta [via del Faro] €5 " * 12 + "Ok 👍 grazie " * 3
    for original in (text, "".join(c for c in text if c not in "👍€[]")):
        encoding, parts = split_for_delivery(original, wide)
        pdus = [build_deliver("+393331234567", p, None, WHEN, encoding=encoding,
                              concat=Concat(300 if wide else 7, len(parts), seq, wide))[0]
                for seq, p in enumerate(parts, start=1)]
        decoded = [decode_deliver(pdu) for pdu in pdus]
        assert "".join(p.text for p in decoded) == original
        assert {(p.reference, p.parts) for p in decoded} == {(300 if wide else 7, len(parts))}


def test_an_emoji_arrives_whole_and_a_lone_half_stays_a_half():
    assert decode_deliver(build_deliver("+393331234567", "Ok 👍", None, WHEN)[0]).text == "Ok 👍"
    assert decode_deliver(build_deliver("+393331234567", "fine \ud83d", None, WHEN)[0]).text == "fine \ud83d"


def test_a_bad_pdu_is_an_error_and_a_status_report_is_not_a_part():
    for bad in ("07919333950669", "zz", "0791933395066900040C9193"):
        with pytest.raises(UndecodablePdu):
            decode_deliver(bad)
    report, _ = build_status_report(5, "+393331234567", "+393359609600", WHEN, WHEN)
    assert decode_deliver(report) is None


# --- the simulated modem's side --------------------------------------------------------------
def arrive(modem, text="Ok", sender="+393331234567", **options):
    return modem.incoming_sms(compose(sender, text, modem.smsc, network_time(NOW), **options), NOW)


def test_parts_arrive_in_the_order_given_and_a_part_left_out_never_arrives():
    modem = make_modem()
    talk(modem, b"ATE0\r")
    actions = modem.incoming_sms(compose("+393331234567", None, modem.smsc, network_time(NOW),
                                         parts=["a", "b", "c"], reference=9), NOW, order=[3, 1], gap=0.5)
    assert out(actions) == b'\r\n+CMTI: "SM",1\r\n'
    [later] = [a.timer for a in actions if a.timer]
    assert out(modem.on_timer(later, NOW + 0.5)) == b'\r\n+CMTI: "SM",2\r\n'
    stored = [decode_deliver(m.pdu) for _, m in modem.store.listing("SM", 4)]
    assert [(p.seq, p.text) for p in stored] == [(3, "c"), (1, "a")]


def test_a_full_memory_makes_the_network_hold_messages_until_a_delete():
    modem = make_modem()
    talk(modem, b"ATE0\r")
    for number in range(30):
        arrive(modem, f"r{number}")
    held = arrive(modem, "trentunesimo")
    assert out(held) == b"" and held[0].event["held"] == "SM memory full"
    assert modem.status()["held_by_network"] == 1
    later = [a for a in modem.feed(b"AT+CMGD=4,0\r", NOW) if a.timer]
    assert out(modem.on_timer(later[0].timer, NOW)) == b'\r\n+CMTI: "SM",4\r\n'
    assert modem.status()["held_by_network"] == 0 and modem.store.high_water["SM"] == 30


def test_routed_sms_wait_for_their_acknowledgement_in_phase_2_plus():
    modem = make_modem()
    talk(modem, b"ATE0;+CMEE=1\r")
    # Phase 2: the modem acknowledges by itself, AT+CNMA is an error.
    talk(modem, b"AT+CNMI=2,2,0,1,0\r")
    first = out(arrive(modem, "uno"))
    assert first.startswith(b"\r\n+CMT: ,") and decode_deliver(first.split(b"\r\n")[2].decode()).text == "uno"
    assert talk(modem, b"AT+CNMA\r") == b"\r\n+CMS ERROR: 340\r\n"
    # Phase 2+: the next +CMT only after AT+CNMA.
    assert talk(modem, b"AT+CSMS=1\r") == b"\r\n+CSMS: 1,1,1\r\n\r\nOK\r\n"
    assert out(arrive(modem, "due")).startswith(b"\r\n+CMT: ")
    assert out(arrive(modem, "tre")) == b""
    acknowledged = modem.feed(b"AT+CNMA\r", NOW)
    assert [a.event["event"] for a in acknowledged if a.event] == ["incoming_acknowledged"]
    resend = [a.timer for a in acknowledged if a.timer]
    assert b"+CMT: " in out(modem.on_timer(resend[0], NOW))
    assert modem.store.counts()["SM"] == 0


def test_a_missing_acknowledgement_stops_routing_and_the_network_sends_it_again_to_memory():
    modem = make_modem()
    talk(modem, b"ATE0;+CSMS=1;+CNMI=2,2,0,1,0\r")
    actions = arrive(modem, "senza risposta")
    [timeout] = [a for a in actions if a.timer]
    assert timeout.delay == ACK_TIMEOUT
    gave_up = modem.on_timer(timeout.timer, NOW + ACK_TIMEOUT)
    assert modem.cnmi[1] == 0 and modem.cnmi[3] == 0
    [resend] = [a.timer for a in gave_up if a.timer]
    # Routing is off (mt 0): stored without a +CMTI, for a sweep to find.
    assert out(modem.on_timer(resend, NOW + ACK_TIMEOUT + 2)) == b""
    assert modem.store.counts()["SM"] == 1


def test_a_class_2_style_memory_target_is_stored_and_announced_even_when_routing():
    modem = make_modem()
    talk(modem, b"ATE0;+CNMI=2,2,0,1,0\r")
    assert out(arrive(modem, "nel telefono", memory="ME")) == b'\r\n+CMTI: "ME",1\r\n'
