"""Log output: one line per event on stdout; journal priorities when stdout is the journal.

systemd sets JOURNAL_STREAM to "<device>:<inode>" of the stream it connected to
the journal. When our stdout is that stream, each line starts with the
syslog priority in angle brackets (sd-daemon(3)), so `journalctl -p warning`
shows our warnings and errors, and a traceback is kept on its one line (newlines
escaped): the journal would otherwise make each of its lines an entry of its own,
at the default priority.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from typing import TextIO

import phonenumbers

FORMAT = "%(levelname)s %(name)s: %(message)s"
# Run by hand (a terminal, a file, docker logs): each line says when. The journal stamps its
# entries itself, so there the line stays as it was.
TIMESTAMPED_FORMAT = "%(asctime)s " + FORMAT
TIMESTAMP = "%Y-%m-%d %H:%M:%S%z"


def journal_priority(levelno: int) -> int:
    """syslog priority of a logging level: err 3, warning 4, info 6, debug 7."""
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class JournalFormatter(logging.Formatter):
    """``<6>INFO name: message``, the whole record (traceback included) on one line."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"<{journal_priority(record.levelno)}>" + text.replace("\\", "\\\\").replace("\n", "\\n")


def is_journal(stream: TextIO, environ=os.environ) -> bool:
    """Whether ``stream`` is the one systemd connected to the journal (JOURNAL_STREAM)."""
    device, _, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (info.st_dev, info.st_ino) == (int(device), int(inode))


def formatter_for(stream: TextIO, environ=os.environ) -> logging.Formatter:
    """Journal priorities under journald; local time with its offset on every line otherwise."""
    if is_journal(stream, environ):
        return JournalFormatter(FORMAT)
    return logging.Formatter(TIMESTAMPED_FORMAT, TIMESTAMP)


def configure_logging(verbose: bool, stream: TextIO = sys.stdout) -> None:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter_for(stream))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    logging.getLogger("gsmmodem").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def mask_number(e164: str) -> str:
    """Logs never carry a full phone number at info level: the country code and the last
    3 digits only (+39****567), enough to tell two recipients apart in a support call."""
    digits = e164.lstrip("+")
    if not digits.isdigit() or len(digits) < 7:
        return "****"
    # Country codes are prefix-free (ITU E.164): the first 1 to 3 digits that form one.
    code = next((digits[:n] for n in (1, 2, 3)
                 if phonenumbers.region_code_for_country_code(int(digits[:n])) != "ZZ"), "")
    return f"+{code}****{digits[-3:]}"


# Always present in a delivery event line, '-' when unknown, so every line has the same columns.
EVENT_FIELDS = ("alert", "delivery", "channel", "line", "to", "outcome")


def event_line(event: str, **fields: object) -> str:
    """One delivery event as key=value pairs, for the journal and grep: values with
    spaces or quotes are double-quoted (JSON escaping); a missing optional field is left out."""
    parts = [f"event={event}"]
    for key, value in fields.items():
        if value is None and key not in EVENT_FIELDS:
            continue
        text = "-" if value is None else str(value)
        if not text or any(c in text for c in ' "=\\') or not text.isprintable():
            text = json.dumps(text, ensure_ascii=False)
        parts.append(f"{key}={text}")
    return " ".join(parts)
