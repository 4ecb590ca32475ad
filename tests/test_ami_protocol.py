"""AMI framing, tested with byte transcripts cut from the Asterisk 22 session."""

import pytest

from asterisk.ami_protocol import (MAX_HEADERS, AmiMessage, AmiProtocolError, parse_messages,
                                   serialize)
from tests.support import DATA

TRANSCRIPT = DATA / "asterisk-22-ami-transcript.txt"

LOGIN_EXCHANGE = (b"Asterisk Call Manager/11.0.0\r\n"
                  b"Response: Success\r\nActionID: L1\r\nMessage: Authentication accepted\r\n\r\n"
                  b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 7\r\nLastReload: 7\r\n"
                  b"Status: Fully Booted\r\n\r\n")

BUSY_HANGUP = (b"Event: Hangup\r\nPrivilege: call,all\r\n"
               b"Channel: Local/33171111@pstn-sim-00000001;2\r\nChannelState: 7\r\n"
               b"ChannelStateDesc: Busy\r\nCallerIDNum: <unknown>\r\nCallerIDName: <unknown>\r\n"
               b"ConnectedLineNum: <unknown>\r\nConnectedLineName: <unknown>\r\nLanguage: en\r\n"
               b"AccountCode: \r\nContext: pstn-sim\r\nExten: 33171111\r\nPriority: 1\r\n"
               b"Uniqueid: 1795892981.3\r\nLinkedid: 1795892981.2\r\nCause: 17\r\n"
               b"Cause-txt: User busy\r\n\r\n")


def transcript_bytes() -> bytes:
    """The recorded server side as it went over the wire: CRLF, no comment lines."""
    lines = [line for line in TRANSCRIPT.read_text().splitlines() if not line.startswith("#")]
    text = "\n".join(lines).lstrip("\n")
    return text.replace("\n", "\r\n").encode() + b"\r\n"


def test_greeting_is_its_own_item_without_blank_line():
    messages, rest = parse_messages(LOGIN_EXCHANGE)
    assert rest == b""
    assert messages[0].greeting == "Asterisk Call Manager/11.0.0"
    assert messages[0].kind == "greeting"
    assert messages[1]["Message"] == "Authentication accepted"
    assert messages[1].kind == "response"
    assert messages[2]["Event"] == "FullyBooted" and messages[2]["Status"] == "Fully Booted"


def test_whole_transcript_parses():
    messages, rest = parse_messages(transcript_bytes())
    assert rest == b""
    assert messages[0].greeting == "Asterisk Call Manager/11.0.0"
    events = [m["Event"] for m in messages if m.kind == "event"]
    assert events.count("OriginateResponse") == 3
    assert events.count("Hangup") == 6
    reasons = [m["Reason"] for m in messages if m.get("Event") == "OriginateResponse"]
    assert reasons == ["5", "4", "3"]


def test_empty_value_and_colon_in_value():
    messages, _ = parse_messages(BUSY_HANGUP)
    hangup = messages[0]
    assert hangup["AccountCode"] == ""
    assert hangup["Cause-txt"] == "User busy"
    assert hangup.get("cause") == "17"  # keys are case-insensitive, like manager.c
    raw = b"Response: Success\r\nTimestamp: 12:30:00\r\n\r\n"
    assert parse_messages(raw)[0][0]["Timestamp"] == "12:30:00"


def test_bare_lf_accepted():
    messages, rest = parse_messages(BUSY_HANGUP.replace(b"\r\n", b"\n"))
    assert rest == b"" and messages[0]["Uniqueid"] == "1795892981.3"


def test_partial_message_is_kept_for_next_read():
    data = LOGIN_EXCHANGE + BUSY_HANGUP
    for cut in (5, 31, 40, len(LOGIN_EXCHANGE) - 1, len(LOGIN_EXCHANGE) + 100, len(data) - 1):
        first, rest = parse_messages(data[:cut])
        second, rest = parse_messages(rest + data[cut:])
        assert rest == b""
        together = first + second
        assert len(together) == 4
        assert together[-1]["Cause"] == "17"


def test_byte_by_byte_feed():
    rest, got = b"", []
    for byte in BUSY_HANGUP:
        messages, rest = parse_messages(rest + bytes([byte]))
        got += messages
    assert len(got) == 1 and got[0]["Channel"].endswith(";2")


def test_repeated_keys_in_order():
    raw = (b"Response: Success\r\nMessage: Command output follows\r\n"
           b"Output: line one\r\nOutput: line two\r\nOutput: 3 calls processed\r\n\r\n")
    message = parse_messages(raw)[0][0]
    assert message.get_all("Output") == ["line one", "line two", "3 calls processed"]
    assert message["Output"] == "line one"
    assert message.get_all("Missing") == []
    with pytest.raises(KeyError):
        message["Missing"]


def test_line_too_long_is_refused():
    with pytest.raises(AmiProtocolError, match="1024"):
        parse_messages(b"Event: X\r\nData: " + b"x" * 1100 + b"\r\n\r\n")
    with pytest.raises(AmiProtocolError, match="1024"):
        parse_messages(b"Event: X\r\nData: " + b"x" * 2000)  # no line end yet


def test_too_many_headers_refused():
    raw = b"Event: X\r\n" + b"".join(b"K%d: v\r\n" % i for i in range(MAX_HEADERS)) + b"\r\n"
    with pytest.raises(AmiProtocolError, match="128 headers"):
        parse_messages(raw)


def test_line_without_colon_refused():
    with pytest.raises(AmiProtocolError, match="Key: Value"):
        parse_messages(b"garbage line\r\n\r\n")


def test_serialize_round_trip_keeps_repeats():
    pairs = [("Action", "Originate"), ("Variable", "ALLERTA_DELIVERY=12"),
             ("Variable", "ALLERTA_AUDIO=d12"), ("Async", "true")]
    data = serialize(pairs)
    assert data.endswith(b"\r\n\r\n")
    assert data.startswith(b"Action: Originate\r\n")
    message = parse_messages(data)[0][0]
    assert message.pairs == pairs
    assert serialize(message) == data


def test_serialize_refuses_header_injection():
    with pytest.raises(ValueError, match="line break"):
        serialize([("Channel", "PJSIP/1@t\r\nAction: Command")])
    with pytest.raises(ValueError):
        serialize([("Bad:Key", "x")])
    assert isinstance(AmiMessage(), AmiMessage)
