"""Replies with characters outside the BMP ("Ok 👍"): python-gsmmodem-new decodes UCS-2 one 16-bit unit at a
time and cannot encode such characters; the engine and the simulator wrap it at the edge. Byte transcripts."""
from __future__ import annotations

import datetime as dt

import pytest
from gsmmodem.pdu import decodeSmsPdu
from sqlalchemy import select

from gateway.core.models import InboundSms
from gateway.core.sms_text import join_utf16
from modem.simulator.harness import SimulatorProcess
from modem.simulator.pdu_codec import build_deliver, decode_submit
from tests.engine_harness import engine_config, services_for, start_engine, wait_until

REPLY = "Ok 👍 grazie"


def test_the_simulator_delivers_an_emoji_as_a_surrogate_pair():
    hex_pdu, _length = build_deliver("+393331234567", REPLY, "+393359609600",
                                     dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.timezone.utc))
    # U+1F44D is D83D DC4D in UTF-16: the user data carries exactly that.
    assert "004F006B0020D83DDC4D0020" in hex_pdu
    assert join_utf16(decodeSmsPdu(hex_pdu)["text"]) == REPLY


def test_a_submitted_emoji_is_decoded_whole():
    user_data = REPLY.encode("utf-16-be")
    tpdu = bytes([0x01, 0x00, 0x0C, 0x91, 0x93, 0x33, 0x13, 0x32, 0x54, 0x76, 0x00, 0x08, len(user_data)]) + user_data
    decoded = decode_submit("00" + tpdu.hex().upper(), len(tpdu))
    assert decoded.text == REPLY and decoded.encoding == "ucs2"


def test_join_utf16_keeps_plain_text_and_replaces_a_lone_half():
    assert join_utf16("Ciao, tutto bene") == "Ciao, tutto bene"
    assert join_utf16("\ud83d\udc4d") == "👍"
    assert join_utf16("fine \ud83d") == "fine \ufffd"   # a pair split across two parts


@pytest.mark.integration
def test_an_emoji_reply_reaches_the_database_over_a_real_pty(tmp_path):
    with SimulatorProcess(count=1, link_dir=tmp_path / "links", log=tmp_path / "sim.jsonl") as sim:
        config_path = engine_config(tmp_path, [m["link"] for m in sim.modems])
        services = services_for(config_path)
        engine = start_engine(config_path, log_path=tmp_path / "engine.log")
        try:
            sim.control({"cmd": "incoming_sms", "modem": "modem-0", "sender": "+393331234567", "text": REPLY})

            def stored():
                with services.sessions() as s:
                    return [(m.sender, m.text) for m in s.scalars(select(InboundSms))]
            assert wait_until(lambda: stored() != [], 60), (tmp_path / "engine.log").read_text()[-2000:]
            assert stored() == [("+393331234567", REPLY)]
        finally:
            engine.terminate()
            engine.wait(timeout=60)
