"""Asterisk Gateway Interface framing (FastAGI over TCP): bytes in, values out, and back.

Pure code with no I/O, like ``ami_protocol``: the FastAGI server (and the PBX
simulator, on the other side) owns the socket and feeds what it read here.

Wire rules, as res/res_agi.c of Asterisk 22 speaks them:
- On connect Asterisk sends the environment: ``agi_name: value`` lines ending in
  LF (``agi_request``, ``agi_channel``, ``agi_callerid`` ... ``agi_arg_N``), then
  one empty line. A missing caller ID is sent as ``unknown``.
- The script sends one command a line (``STREAM FILE name "12"``); arguments are
  split on spaces, double quotes group, a backslash escapes the next character.
- Asterisk answers each command with one line: ``200 result=<r>`` and optionally
  `` (<data>)`` and ``key=value`` items (``endpos=8000``); ``510 Invalid or unknown
  command``; ``511 Command Not Permitted on a dead channel or intercept routine``
  once the caller has hung up; ``520`` for bad usage, either one line or a block
  ``520-Invalid command syntax.  Proper usage follows:`` ... ``520 End of proper usage.``
- When the caller hangs up, a FastAGI script is sent one line ``HANGUP`` (unless
  the dialplan set AGISIGHUP=no), unprompted, between replies.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# res_agi reads commands into a 2048-byte buffer (AGI_BUF_LEN); the environment is a
# few dozen short lines. The limits keep a broken or hostile peer from growing our buffers.
MAX_LINE_BYTES = 2048
MAX_ENVIRONMENT_LINES = 200
HANGUP_LINE = b"HANGUP"
DEAD_CHANNEL = "Command Not Permitted on a dead channel or intercept routine"
UNKNOWN_COMMAND = "Invalid or unknown command"
USAGE_START = "Invalid command syntax.  Proper usage follows:"
USAGE_END = "End of proper usage."
_REPLY = re.compile(r"^(\d{3}) result=(\S*)(?: \((.*?)\))?((?: [A-Za-z_]+=\S*)*)\s*$")


class AgiProtocolError(ValueError):
    """The peer sent something that is not AGI; the connection should close."""


def _lines(buffer: bytes, start: int) -> Iterable[tuple[str, int]]:
    """Each complete line from ``start`` (without LF or CR) and where the next begins."""
    pos = start
    while True:
        end = buffer.find(b"\n", pos)
        if end < 0:
            if len(buffer) - pos > MAX_LINE_BYTES:
                raise AgiProtocolError(f"AGI line longer than {MAX_LINE_BYTES} bytes without a line end")
            return
        line = buffer[pos:end].rstrip(b"\r")
        if len(line) > MAX_LINE_BYTES:
            raise AgiProtocolError(f"AGI line of {len(line)} bytes exceeds the limit of {MAX_LINE_BYTES}")
        # Caller names arrive as the trunk sent them: replacing bad bytes keeps one odd name
        # from ending the call.
        yield line.decode("utf-8", errors="replace"), end + 1
        pos = end + 1


# --- the environment ------------------------------------------------------------------

@dataclass(frozen=True)
class AgiEnvironment:
    """The ``agi_*`` block Asterisk sends first; keys without the ``agi_`` prefix."""
    values: dict[str, str]

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    @property
    def caller_id(self) -> str | None:
        """The calling number, None when withheld or absent (res_agi sends 'unknown')."""
        number = self.get("callerid").strip()
        if not number or number.lower() in ("unknown", "anonymous", "restricted", "private"):
            return None
        return number

    @property
    def script(self) -> str:
        """The path of ``agi_request`` (``agi://127.0.0.1:4573/hotline`` -> 'hotline')."""
        request = self.get("request")
        if "://" in request:
            request = request.split("://", 1)[1].partition("/")[2]
        return request.split("?", 1)[0].strip("/")

    @property
    def arguments(self) -> list[str]:
        """``agi_arg_1`` ... in order (the AGI() application's arguments after the URL)."""
        found, index = [], 1
        while f"arg_{index}" in self.values:
            found.append(self.values[f"arg_{index}"])
            index += 1
        return found


def parse_environment(buffer: bytes) -> tuple[AgiEnvironment | None, bytes]:
    """The environment once its empty line has arrived (and the bytes after it), else (None, buffer)."""
    values: dict[str, str] = {}
    for count, (line, next_pos) in enumerate(_lines(buffer, 0), 1):
        if not line:
            return AgiEnvironment(values), buffer[next_pos:]
        if count > MAX_ENVIRONMENT_LINES:
            raise AgiProtocolError(f"AGI environment longer than {MAX_ENVIRONMENT_LINES} lines")
        key, sep, value = line.partition(": ")
        if not sep:
            key, sep, value = line.partition(":")
        if not sep or not key.startswith("agi_"):
            raise AgiProtocolError(f"AGI environment line is not 'agi_name: value': {line[:80]!r}")
        values[key[4:]] = value
    return None, buffer


def format_environment(values: Mapping[str, str]) -> bytes:
    """The environment block as Asterisk sends it (for the simulator); keys without ``agi_``."""
    out = []
    for key, value in values.items():
        for text in (key, value):
            if "\n" in text or "\r" in text:
                raise ValueError(f"AGI environment value with a line break: {key}={value!r}")
        out.append(f"agi_{key}: {value}\n")
    return "".join(out).encode() + b"\n"


# --- commands -------------------------------------------------------------------------

def _quote(word: str) -> str:
    if "\n" in word or "\r" in word:
        raise ValueError(f"AGI argument with a line break: {word!r}")
    if word and not re.search(r'[\s"\\]', word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_command(*words: object) -> bytes:
    """One command line: ``format_command("GET DATA", path, 5000, 1)``.

    The first word is the command as written (it has spaces); every argument is
    quoted when it is empty or has a space, a quote or a backslash, as res_agi's
    parser expects."""
    if not words:
        raise ValueError("an AGI command needs a name")
    name, *args = (str(word) for word in words)
    line = " ".join([name, *(_quote(arg) for arg in args)]).encode()
    if len(line) >= MAX_LINE_BYTES:
        raise ValueError(f"AGI command longer than {MAX_LINE_BYTES} bytes")
    return line + b"\n"


def parse_command(line: str) -> list[str]:
    """Split one command line into words as res_agi's parse_args does (for the simulator)."""
    words: list[str] = []
    current: list[str] = []
    quoted = escaped = started = False
    for char in line.rstrip("\r\n"):
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = started = True
        elif char == '"':
            quoted, started = not quoted, True
        elif char in " \t" and not quoted:
            if started:
                words.append("".join(current))
                current, started = [], False
        else:
            current.append(char)
            started = True
    if started:
        words.append("".join(current))
    return words


def read_commands(buffer: bytes) -> tuple[list[str], bytes]:
    """Complete command lines in ``buffer`` and the unread rest (for the simulator)."""
    lines, consumed = [], 0
    for line, next_pos in _lines(buffer, 0):
        consumed = next_pos
        if line.strip():
            lines.append(line)
    return lines, buffer[consumed:]


# --- replies --------------------------------------------------------------------------

@dataclass(frozen=True)
class AgiReply:
    """One answer to a command. ``result`` is the text after ``result=``; ``data`` the part in
    parentheses; ``extra`` the ``key=value`` items (``endpos``)."""
    code: int
    result: str = ""
    data: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    message: str = ""            # the text of a 5xx line
    usage: tuple[str, ...] = ()  # a 520 block's usage lines

    @property
    def ok(self) -> bool:
        return self.code == 200

    @property
    def dead(self) -> bool:
        """The channel is gone: 511, or a 200 with result -1 (the read or playback was cut short)."""
        return self.code == 511 or (self.code == 200 and self.result == "-1")

    @property
    def digit(self) -> str | None:
        """The key of STREAM FILE / WAIT FOR DIGIT (an ASCII code, 0 for none)."""
        if self.code != 200 or not self.result.isdigit() or self.result == "0":
            return None
        return chr(int(self.result))


@dataclass(frozen=True)
class HangupNotice:
    """The unprompted ``HANGUP`` line: the caller is gone."""


def parse_replies(buffer: bytes) -> tuple[list[AgiReply | HangupNotice], bytes]:
    """Complete replies (and HANGUP notices) in ``buffer``, and the unread rest.

    A 520 block is one reply; while its closing line is still missing nothing of it is returned."""
    out: list[AgiReply | HangupNotice] = []
    consumed = 0
    usage: list[str] | None = None
    for line, next_pos in _lines(buffer, 0):
        if usage is not None:
            if line.startswith("520 "):
                out.append(AgiReply(520, message=USAGE_START, usage=tuple(usage)))
                usage, consumed = None, next_pos
            else:
                usage.append(line)
            continue
        if not line.strip():
            consumed = next_pos
            continue
        if line.strip() == HANGUP_LINE.decode():
            out.append(HangupNotice())
        elif line.startswith("520-"):
            usage = []
            continue
        elif match := _REPLY.match(line):
            code, result, data, extra = match.groups()
            pairs = dict(item.split("=", 1) for item in extra.split())
            out.append(AgiReply(int(code), result, data, pairs))
        elif re.match(r"^5\d\d ", line):
            out.append(AgiReply(int(line[:3]), message=line[4:]))
        else:
            raise AgiProtocolError(f"not an AGI reply: {line[:80]!r}")
        consumed = next_pos
    return out, buffer[consumed:]


def format_reply(result: object, data: str | None = None, **extra: object) -> bytes:
    """``200 result=<result> [(<data>)] [key=value...]`` as res_agi writes it (for the simulator)."""
    line = f"200 result={result}"
    if data is not None:
        line += f" ({data})"
    for key, value in extra.items():
        line += f" {key}={value}"
    return line.encode() + b"\n"


def format_error(code: int, usage: Iterable[str] = ()) -> bytes:
    """510, 511 or 520 (with usage lines, the block form) as res_agi writes them."""
    if code == 510:
        return f"510 {UNKNOWN_COMMAND}\n".encode()
    if code == 511:
        return f"511 {DEAD_CHANNEL}\n".encode()
    if code == 520:
        lines = list(usage)
        if not lines:
            return b"520 Invalid command syntax.  Proper usage not available.\n"
        return ("\n".join([f"520-{USAGE_START}", *lines, f"520 {USAGE_END}"]) + "\n").encode()
    raise ValueError(f"no AGI error {code}")
