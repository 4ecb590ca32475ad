"""Split one AT command line into its commands (ITU-T V.250 5.2 and 5.4).

"AT+CMEE=1;+CLIP=1;+CREG=2" and smstools3's ";"-less "ATE0+CPMS="SM"+CNMI=2,0,0,2,1"
both give a list of Command. Pure code, no state.
"""
from __future__ import annotations

from dataclasses import dataclass

_EXTENDED_PREFIXES = "+^%$#*"


@dataclass(frozen=True)
class Command:
    name: str  # "E", "Z", "&F", "S0", "D", "+CMGS", "^CURC" (upper case)
    op: str  # "" (action), "=" (set), "?" (read), "=?" (test)
    args: str  # text after the operator, quotes kept

    @property
    def text(self) -> str:
        return self.name + self.op + self.args


class CommandSyntaxError(ValueError):
    pass


def parse_command_line(line: str) -> list[Command]:
    """``line`` without its CR. Raises CommandSyntaxError when it does not start with AT."""
    stripped = line.strip()
    if stripped[:2].upper() != "AT":
        raise CommandSyntaxError(f"not an AT command: {line!r}")
    body = stripped[2:]
    commands: list[Command] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char in " ;":
            i += 1
        elif char in _EXTENDED_PREFIXES:
            command, i = _parse_extended(body, i)
            commands.append(command)
        elif char.isalpha() or char == "&":
            command, i = _parse_basic(body, i)
            commands.append(command)
        else:
            raise CommandSyntaxError(f"unexpected {char!r} in {line!r}")
    return commands


def _parse_extended(body: str, start: int) -> tuple[Command, int]:
    i = start + 1
    while i < len(body) and (body[i].isalnum() or body[i] in "_.!%-/:"):
        i += 1
    name = body[start:i].upper()
    if len(name) < 2:
        raise CommandSyntaxError(f"empty command name at {body[start:]!r}")
    if body.startswith("=?", i):
        op, i = "=?", i + 2
    elif body.startswith("=", i):
        op, i = "=", i + 1
    elif body.startswith("?", i):
        op, i = "?", i + 1
    else:
        op = ""
    args_start = i
    in_quotes = False
    while i < len(body):
        char = body[i]
        if char == '"':
            in_quotes = not in_quotes
        elif not in_quotes:
            if char == ";":
                break
            # V.250 wants ';' between extended commands; smstools3 samples omit it.
            if char in _EXTENDED_PREFIXES and i + 1 < len(body) and body[i + 1].isalpha():
                break
        i += 1
    return Command(name, op, body[args_start:i].strip()), i


def _parse_basic(body: str, start: int) -> tuple[Command, int]:
    i = start
    if body[i] == "&":
        i += 1
        if i >= len(body) or not body[i].isalpha():
            raise CommandSyntaxError("'&' without a command letter")
    letter = body[i].upper()
    i += 1
    name = body[start:i].upper()
    if letter == "D" and name == "D":  # dial string runs to the end of the line
        return Command("D", "", body[i:]), len(body)
    if letter == "S" and name == "S":
        number_start = i
        while i < len(body) and body[i].isdigit():
            i += 1
        name = "S" + body[number_start:i]
        if body.startswith("?", i):
            return Command(name, "?", ""), i + 1
        if body.startswith("=", i):
            value_start = i + 1
            i = value_start
            while i < len(body) and body[i].isdigit():
                i += 1
            return Command(name, "=", body[value_start:i]), i
        return Command(name, "", ""), i
    digits_start = i
    while i < len(body) and body[i].isdigit():
        i += 1
    return Command(name, "", body[digits_start:i]), i


def split_args(args: str) -> list[str]:
    """Comma-separated parameters, quotes stripped, empty ones kept as ''."""
    values: list[str] = []
    current: list[str] = []
    in_quotes = False
    for char in args:
        if char == '"':
            in_quotes = not in_quotes
        elif char == "," and not in_quotes:
            values.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    values.append("".join(current).strip())
    return values if args.strip() else []
