"""Parsers for the AT replies the health check reads (pure)."""
from __future__ import annotations

import re

_CSQ = re.compile(r"^\+CSQ:\s*(\d+),")
_COPS = re.compile(r'^\+COPS:\s*\d+(?:\s*,\s*\d+\s*,\s*"([^"]*)")?')
_CPIN = re.compile(r'^\+CPIN:\s*"?([^"]+?)"?\s*$')

REGISTRATION = {"0": "unregistered", "1": "home", "2": "searching", "3": "denied", "4": "unknown", "5": "roaming"}


def _first(lines: list[str], pattern: re.Pattern[str]) -> re.Match[str] | None:
    for line in lines:
        match = pattern.match(line.strip())
        if match:
            return match
    return None


def parse_csq(lines: list[str]) -> int | None:
    match = _first(lines, _CSQ)
    return int(match.group(1)) if match else None


def parse_creg(lines: list[str]) -> str | None:
    """'+CREG: 0,1' (n,stat) or '+CREG: 1' (URC form) -> 'home' etc."""
    for line in lines:
        line = line.strip()
        if not line.startswith("+CREG:"):
            continue
        fields = [f.strip() for f in line[6:].split(",")]
        # With n,stat[,lac,ci] the status is the second field; the URC has it first.
        stat = fields[1] if len(fields) >= 2 and fields[0].isdigit() and fields[1].isdigit() else fields[0]
        return REGISTRATION.get(stat, "unknown")
    return None


def parse_cops(lines: list[str]) -> str | None:
    match = _first(lines, _COPS)
    return match.group(1) if match and match.group(1) else None


def parse_cpin(lines: list[str]) -> str | None:
    match = _first(lines, _CPIN)
    return match.group(1) if match else None


def parse_cpms_first(lines: list[str]) -> tuple[int, int] | None:
    """The (used, total) of the first memory in a +CPMS reply: the set form answers
    '+CPMS: 3,20,5,30,5,30', the read form '+CPMS: "SR",3,20,...'."""
    for line in lines:
        line = line.strip()
        if line.startswith("+CPMS:"):
            fields = [f.strip().strip('"') for f in line[6:].split(",")]
            numbers = [f for f in fields if f.isdigit()]
            if len(numbers) >= 2:
                return int(numbers[0]), int(numbers[1])
    return None


def parse_csca(lines: list[str]) -> str | None:
    """'+CSCA: "+393359609600",145' -> the SMS centre number; "" when the SIM has none
    ('+CSCA: "",129'); None when there is no +CSCA line at all."""
    for line in lines:
        line = line.strip()
        if line.startswith("+CSCA:"):
            return line[6:].split(",")[0].strip().strip('"')
    return None


def split_notifications(lines: list[str]) -> list[list[str]]:
    """Split a burst of unsolicited lines into one group per notification.

    python-gsmmodem-new hands its handler every line that arrived together and
    the handler acts on the first one only, so a second +CDSI in the same
    burst was silently dropped. Multi-line URCs stay together: +CDS and +CMT
    with their PDU line, and RING/+CRING with the +CLIP that follows.
    """
    groups: list[list[str]] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        group = [line]
        following = lines[index + 1] if index + 1 < len(lines) else None
        if line.startswith(("+CDS:", "+CMT:")) and following is not None:
            group.append(following)
        elif (line.startswith("+CRING") or line == "RING") and following is not None \
                and following.startswith("+CLIP"):
            group.append(following)
        groups.append(group)
        index += len(group)
    return groups


def parse_cmgl(lines: list[str]) -> list[tuple[int, str]]:
    """PDU-mode AT+CMGL reply -> [(index, pdu hex)]."""
    stored = []
    index: int | None = None
    for line in lines:
        line = line.strip()
        if line.startswith("+CMGL:"):
            first = line[6:].split(",")[0].strip()
            index = int(first) if first.isdigit() else None
        elif index is not None and line and line != "OK":
            stored.append((index, line))
            index = None
    return stored
