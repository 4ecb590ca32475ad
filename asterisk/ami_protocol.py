"""Asterisk Manager Interface framing: bytes in, messages out, and back.

Pure code with no I/O, in the manner of h11 and wazo-amid's parser: the
client or the simulator owns the socket and feeds whatever it read to
``parse_messages``; what is not yet a whole message is handed back to be
prepended to the next read.

Wire rules (main/manager.c, and the Asterisk 22 transcript in
shared/reference): ``Key: Value`` lines end in CRLF (a bare LF is accepted),
keys may repeat (``Variable:``, ``Output:``), a blank line ends a message.
Right after connecting the server sends one greeting line
``Asterisk Call Manager/11.0.0`` with no blank line after it.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

# manager.c refuses more than this (AST_MAX_MANAGER_HEADERS / line buffer);
# enforcing the same limits here means a broken or hostile peer cannot grow
# our buffer without bound.
MAX_HEADERS = 128
MAX_LINE_BYTES = 1024
GREETING_PREFIX = b"Asterisk Call Manager/"


class AmiProtocolError(ValueError):
    """The peer sent something that is not AMI; the connection should close."""


@dataclass
class AmiMessage:
    """One AMI message: an ordered list of (key, value) pairs.

    Keys are looked up case-insensitively, as Asterisk does (``astman_get_header``
    uses strncasecmp). The greeting is an ``AmiMessage`` with no pairs and
    ``greeting`` set to the whole line.
    """

    pairs: list[tuple[str, str]] = field(default_factory=list)
    greeting: str | None = None

    def get(self, key: str, default: str | None = None) -> str | None:
        """The first value for ``key``, or ``default``."""
        wanted = key.lower()
        for name, value in self.pairs:
            if name.lower() == wanted:
                return value
        return default

    def get_all(self, key: str) -> list[str]:
        """Every value for a repeated key, in the order received."""
        wanted = key.lower()
        return [value for name, value in self.pairs if name.lower() == wanted]

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.pairs)

    def keys(self) -> list[str]:
        return [name for name, _ in self.pairs]

    @property
    def kind(self) -> str:
        """'greeting', 'response', 'event' or 'action', for dispatching."""
        if self.greeting is not None:
            return "greeting"
        # Asterisk always puts Response/Event/Action first; clients do too.
        first = self.pairs[0][0].lower() if self.pairs else ""
        return first if first in ("response", "event", "action") else "unknown"


def _split_line(buffer: bytes, start: int) -> tuple[bytes, int] | None:
    """The line starting at ``start`` without its terminator, and where the next begins."""
    end = buffer.find(b"\n", start)
    if end < 0:
        if len(buffer) - start > MAX_LINE_BYTES:
            raise AmiProtocolError(
                f"AMI line longer than {MAX_LINE_BYTES} bytes without a line end")
        return None
    line = buffer[start:end]
    if line.endswith(b"\r"):
        line = line[:-1]
    if len(line) > MAX_LINE_BYTES:
        raise AmiProtocolError(
            f"AMI line of {len(line)} bytes exceeds the limit of {MAX_LINE_BYTES}")
    return line, end + 1


def _decode(line: bytes) -> str:
    # Asterisk passes channel variables through as raw bytes; replacing
    # undecodable bytes keeps one odd CallerIDName from killing the session.
    return line.decode("utf-8", errors="replace")


def parse_messages(buffer: bytes) -> tuple[list[AmiMessage], bytes]:
    """Split ``buffer`` into complete messages and the unconsumed remainder.

    Raises ``AmiProtocolError`` for a line over 1024 bytes, a message with more
    than 128 headers, or a line with no ``:`` separator.
    """
    messages: list[AmiMessage] = []
    pos = 0
    message_start = 0
    pairs: list[tuple[str, str]] = []
    while True:
        split = _split_line(buffer, pos)
        if split is None:
            break
        line, next_pos = split
        if not pairs and line.startswith(GREETING_PREFIX):
            messages.append(AmiMessage(greeting=_decode(line)))
            pos = message_start = next_pos
            continue
        if not line:
            if pairs:
                messages.append(AmiMessage(pairs=pairs))
                pairs = []
            # Stray blank lines between messages are harmless; skip them.
            pos = message_start = next_pos
            continue
        text = _decode(line)
        key, sep, value = text.partition(":")
        if not sep:
            raise AmiProtocolError(f"AMI line without 'Key: Value' form: {text[:80]!r}")
        if len(pairs) >= MAX_HEADERS:
            raise AmiProtocolError(f"AMI message with more than {MAX_HEADERS} headers")
        # One space after the colon is the separator; anything after it is
        # value (AccountCode arrives as 'AccountCode: ' with an empty value).
        pairs.append((key.strip(), value[1:] if value.startswith(" ") else value))
        pos = next_pos
    return messages, buffer[message_start:]


def _check_field(text: str, what: str) -> None:
    if "\r" in text or "\n" in text:
        raise ValueError(f"AMI {what} contains a line break: {text!r}")


def serialize(pairs: Iterable[tuple[str, object]] | AmiMessage) -> bytes:
    """Encode pairs as one AMI message ending with the blank line.

    Values are converted with ``str``; a CR or LF in a key or value would
    start a new header on the wire, so it is refused with ``ValueError``.
    """
    if isinstance(pairs, AmiMessage):
        pairs = pairs.pairs
    out: list[bytes] = []
    for key, value in pairs:
        text = str(value)
        _check_field(key, "key")
        _check_field(text, "value")
        if not key or ":" in key:
            raise ValueError(f"invalid AMI key: {key!r}")
        line = f"{key}: {text}".encode("utf-8")
        if len(line) > MAX_LINE_BYTES:
            raise ValueError(f"AMI header {key!r} is longer than {MAX_LINE_BYTES} bytes")
        out.append(line + b"\r\n")
    if len(out) > MAX_HEADERS:
        raise ValueError(f"AMI message with {len(out)} headers; the limit is {MAX_HEADERS}")
    return b"".join(out) + b"\r\n"
