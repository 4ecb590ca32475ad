"""The FastAGI session's reading of replies, without a socket: a HANGUP line between replies, a
dead channel, a usage error (the server over TCP is in tests/test_hotline_agi.py)."""
from __future__ import annotations

import asyncio

import pytest

from asterisk.agi_protocol import AgiEnvironment, AgiProtocolError
from asterisk.agi_server import AgiCall, CallerGone


class _Writer:
    def __init__(self) -> None:
        self.sent = b""

    def write(self, data: bytes) -> None:
        self.sent += data

    async def drain(self) -> None:
        return None


def session(replies: bytes) -> tuple[AgiCall, _Writer]:
    reader = asyncio.StreamReader()
    reader.feed_data(replies)
    reader.feed_eof()
    writer = _Writer()
    return AgiCall(reader, writer, AgiEnvironment({"callerid": "unknown"}), b"", reply_timeout=1.0), writer


def test_a_key_stops_a_prompt_and_a_silence_is_none():
    async def scenario():
        call, writer = session(b"200 result=50 endpos=1200\n200 result= (timeout)\n")
        key = await call.play("/s/hotline/it/welcome", interruptible=True)
        silence = await call.read_key("/s/hotline/it/menu-known", 5000)
        return key, silence, writer.sent
    key, silence, sent = asyncio.run(scenario())
    assert (key, silence) == ("2", None)
    assert sent == b'STREAM FILE /s/hotline/it/welcome 0123456789*#\nGET DATA /s/hotline/it/menu-known 5000 1\n'


def test_hangup_notice_between_replies_ends_the_call_after_the_reply_under_way():
    async def scenario():
        call, _ = session(b"HANGUP\n200 result=0 endpos=8000\n511 Command Not Permitted on a dead channel "
                          b"or intercept routine\n")
        await call.play("/s/a", interruptible=False)     # answered before the notice is acted on
        assert call.gone
        with pytest.raises(CallerGone):
            await call.play("/s/b", interruptible=False)
    asyncio.run(scenario())


def test_a_cut_short_command_and_a_511_are_a_hangup():
    async def scenario():
        call, _ = session(b"200 result=-1\n")
        with pytest.raises(CallerGone):
            await call.read_key("/s/menu", 5000)
        call, _ = session(b"511 Command Not Permitted on a dead channel or intercept routine\n")
        with pytest.raises(CallerGone):
            await call.answer()
    asyncio.run(scenario())


def test_a_usage_error_is_a_protocol_error_naming_the_command():
    async def scenario():
        call, _ = session(b"520-Invalid command syntax.  Proper usage follows:\nUsage: GET DATA <file>\n"
                          b"520 End of proper usage.\n")
        with pytest.raises(AgiProtocolError, match="GET DATA: 520"):
            await call.read_key("/s/menu", 5000)
    asyncio.run(scenario())
