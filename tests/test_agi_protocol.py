"""AGI framing, tested with the FastAGI transcript in tests/data (both directions)."""

import pytest

from asterisk.agi_protocol import (AgiProtocolError, AgiReply, HangupNotice, format_command,
                                   format_environment, format_error, format_reply, parse_command,
                                   parse_environment, parse_replies, read_commands)
from tests.support import DATA

TRANSCRIPT = DATA / "fastagi-hotline-transcript.txt"


def side(marker: str) -> bytes:
    """What one side sent, as it went over the wire (LF line ends)."""
    lines = [line[2:] for line in TRANSCRIPT.read_text().splitlines() if line.startswith(marker + " ")
             or line == marker]
    return "".join(line + "\n" for line in lines).encode()


def asterisk_side() -> bytes:
    return side("<")


def test_environment_is_read_up_to_its_empty_line_and_the_rest_is_kept():
    environment, rest = parse_environment(asterisk_side())
    assert environment is not None
    assert environment.caller_id == "+390665123456"
    assert environment.script == "hotline"
    assert environment.get("context") == "allerta-hotline"
    assert environment.get("accountcode") == ""
    assert rest.startswith(b"200 result=0\n")


def test_environment_split_anywhere_waits_for_the_rest():
    data = asterisk_side()
    cut = data.index(b"agi_dnid") + 3
    assert parse_environment(data[:cut]) == (None, data[:cut])


@pytest.mark.parametrize("caller", ["unknown", "", "anonymous", "Restricted"])
def test_withheld_caller_id_is_none(caller):
    environment, _ = parse_environment(f"agi_callerid: {caller}\nagi_arg_1: x\nagi_arg_2: y\n\n".encode())
    assert environment.caller_id is None
    assert environment.arguments == ["x", "y"]


def test_environment_line_without_agi_prefix_is_refused():
    with pytest.raises(AgiProtocolError, match="agi_name"):
        parse_environment(b"Response: Success\n\n")


def test_every_reply_of_the_transcript_is_understood():
    _, rest = parse_environment(asterisk_side())
    replies, left = parse_replies(rest)
    assert left == b""
    answer, played, keyed, timed_out, waited, cut, hangup, dead, usage, unknown = replies
    assert answer == AgiReply(200, "0")
    assert played.extra == {"endpos": "23040"} and played.digit is None
    assert keyed.result == "1"
    assert timed_out.result == "" and timed_out.data == "timeout"
    assert waited.digit == "2"
    assert cut.dead and cut.extra["endpos"] == "4200"
    assert hangup == HangupNotice()
    assert dead.code == 511 and dead.dead
    assert usage.code == 520 and usage.usage == ("Usage: GET DATA <file to be streamed> [timeout] [maxdigits]",)
    assert unknown.code == 510 and unknown.message == "Invalid or unknown command"


def test_a_usage_block_without_its_end_is_not_returned_yet():
    replies, rest = parse_replies(b"200 result=0\n520-Invalid command syntax.  Proper usage follows:\nUsage: X\n")
    assert replies == [AgiReply(200, "0")]
    assert rest == b"520-Invalid command syntax.  Proper usage follows:\nUsage: X\n"


def test_garbage_reply_is_a_protocol_error():
    with pytest.raises(AgiProtocolError):
        parse_replies(b"HTTP/1.1 200 OK\n")


def test_a_line_without_end_longer_than_the_limit_is_refused():
    with pytest.raises(AgiProtocolError, match="longer than"):
        parse_replies(b"2" * 5000)


def test_commands_are_written_as_in_the_transcript():
    sent = side(">")
    assert sent.startswith(format_command("ANSWER")
                           + format_command("STREAM FILE", "/var/lib/allerta/sounds/hotline/it/welcome", "")
                           + format_command("GET DATA", "/var/lib/allerta/sounds/hotline/it/menu-known", 5000, 1))
    assert format_command("STREAM FILE", "a b", 'x"y') == b'STREAM FILE "a b" "x\\"y"\n'


def test_command_with_a_line_break_is_refused():
    with pytest.raises(ValueError, match="line break"):
        format_command("VERBOSE", "two\nlines")


def test_simulator_side_reads_commands_as_res_agi_does():
    commands, rest = read_commands(side(">"))
    assert rest == b""
    assert parse_command(commands[1]) == ["STREAM", "FILE", "/var/lib/allerta/sounds/hotline/it/welcome", ""]
    assert parse_command('SET VARIABLE X "a \\"b\\" c"') == ["SET", "VARIABLE", "X", 'a "b" c']


def test_simulator_side_writes_replies_as_asterisk_does():
    data = asterisk_side()
    environment, rest = parse_environment(data)
    assert data.startswith(format_environment(environment.values))
    assert rest.startswith(format_reply(0) + format_reply(0, endpos=23040) + format_reply(1)
                           + format_reply("", "timeout") + format_reply(50))
    assert format_error(511) in rest and format_error(510) in rest
    assert format_error(520, ["Usage: GET DATA <file to be streamed> [timeout] [maxdigits]"]) in rest
