"""AT commands on a bare pyserial port, before (or instead of) python-gsmmodem-new.

Used where the library must not run yet: the driver reads the IMEI before the
library's connect() sends the PIN, and the doctor's probe never lets the
library touch a port at all.
"""
from __future__ import annotations

import re
import time

import serial

_IMEI = re.compile(r"^\d{14,17}$")


class NoAnswer(Exception):
    """Silence, ERROR or +CME/+CMS ERROR to one command."""


def at_command(port: serial.Serial, command: str, timeout: float) -> list[str]:
    """Send one AT command; the reply lines up to OK (inclusive). NoAnswer on silence or an error."""
    port.reset_input_buffer()
    port.write(command.encode("ascii") + b"\r")
    deadline = time.monotonic() + timeout
    buffer = b""
    lines: list[str] = []
    while time.monotonic() < deadline:
        buffer += port.read(port.in_waiting or 1)
        while b"\n" in buffer:
            raw, buffer = buffer.split(b"\n", 1)
            line = raw.decode("ascii", "replace").strip()
            if not line or line == command:   # blank or our echo
                continue
            lines.append(line)
            if line == "OK":
                return lines
            if line in ("ERROR", "COMMAND NOT SUPPORT") or line.startswith(("+CME ERROR", "+CMS ERROR")):
                raise NoAnswer(f"{command} answered {line}")
    raise NoAnswer(f"no answer to {command} within {timeout:g} s")


def parse_imei(lines: list[str]) -> str | None:
    """The IMEI in an AT+CGSN reply: bare digits, or '+CGSN: "<digits>"' on some modems.

    Lines that are not 14 to 17 digits (URCs such as Huawei's ^RSSI, a stray OK)
    are skipped rather than taken for the identity.
    """
    for line in lines:
        candidate = line.replace("+CGSN:", "").strip().strip('"')
        if _IMEI.match(candidate):
            return candidate
    return None
