"""Inbound calls to the town's number: a scripted caller, our hotline context, and AGI as res_agi runs it.

``{"cmd": "incoming_call", "caller": "+390665123456", "keys": "3 2 1", "hangup_after": 40}``
runs [allerta-hotline] of our rendered dialplan on a new channel; its ``AGI(agi://...)``
connects to the engine's FastAGI server and answers each command as Asterisk 22's
res_agi does (asterisk/agi_protocol.py frames both sides):

- the environment first (``agi_callerid: unknown`` for a withheld number);
- ANSWER ``200 result=0``; STREAM FILE ``200 result=<ascii key or 0> endpos=<samples>``;
  GET DATA ``200 result=<digits>`` or ``200 result= (timeout)``; WAIT FOR DIGIT ``200 result=<ascii>``;
  SET VARIABLE / VERBOSE ``200 result=1``; GET VARIABLE ``200 result=1 (value)`` or ``200 result=0``;
  HANGUP ``200 result=1``; unknown commands 510, missing arguments 520 with the usage block;
- the caller presses the scripted keys one per question (GET DATA, WAIT FOR DIGIT), ``-`` being
  a silence; a STREAM FILE plays to its end (the caller listens). When the keys run out the
  caller stays silent until ``hangup_after`` (virtual seconds after answer);
- at ``hangup_after`` the command under way ends with ``200 result=-1``, an unprompted ``HANGUP``
  follows, and every later command but the dead-channel ones gets 511, until the script closes.
"""
from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from asterisk.agi_protocol import (HANGUP_LINE, AgiProtocolError, format_environment, format_error, format_reply,
                                   parse_command, read_commands)

SAMPLES_PER_SECOND = 8000
PROMPT_SECONDS = 1.0                   # a file whose length the simulator cannot read
KEY_AFTER_SECONDS = 1.0                # a scripted key comes this long into its question
SCRIPT_TIMEOUT_SECONDS = 60.0          # real seconds: a silent AGI script is given up
# Commands res_agi still runs on a dead channel (their 'dead' flag in res_agi.c's table).
DEAD_ALLOWED = {"SET VARIABLE", "GET VARIABLE", "GET FULL VARIABLE", "VERBOSE", "HANGUP", "NOOP",
                "DATABASE GET", "DATABASE PUT", "DATABASE DEL"}
USAGE = {
    "STREAM FILE": (2, "Usage: STREAM FILE <filename> <escape digits> [sample offset]"),
    "GET DATA": (1, "Usage: GET DATA <file to be streamed> [timeout] [maxdigits]"),
    "WAIT FOR DIGIT": (1, "Usage: WAIT FOR DIGIT <timeout>"),
    "SET VARIABLE": (2, "Usage: SET VARIABLE <variablename> <value>"),
    "GET VARIABLE": (1, "Usage: GET VARIABLE <variablename>"),
    "VERBOSE": (1, "Usage: VERBOSE <message> <level>"),
    "ANSWER": (0, ""), "HANGUP": (0, ""), "NOOP": (0, ""),
}


@dataclass
class InboundScript:
    caller: str | None                     # None: withheld
    keys: list[str]                        # one per question; '-' is a silence
    hangup_after: float | None = None      # virtual seconds after answer

    @classmethod
    def from_request(cls, request: dict) -> "InboundScript":
        caller = request.get("caller")
        if caller is not None and (not isinstance(caller, str) or not caller.strip()
                                   or any(c in caller for c in "\r\n")):
            raise ValueError("caller must be a number, or null for a withheld one")
        keys = str(request.get("keys", "")).split()
        for key in keys:
            if key != "-" and (len(key) != 1 or key not in "0123456789*#"):
                raise ValueError(f"keys: {key!r} is not a key (0-9, *, #) or '-' for a silence")
        hangup_after = request.get("hangup_after")
        if hangup_after is not None and float(hangup_after) <= 0:
            raise ValueError("hangup_after must be positive seconds")
        return cls(caller, keys, None if hangup_after is None else float(hangup_after))


@dataclass
class InboundCall:
    """What happened on one inbound call, for the controls and the tests."""
    id: int
    trunk: str
    script: InboundScript
    channel: str
    uniqueid: str
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    agi_status: str | None = None
    commands: list[str] = field(default_factory=list)
    played: list[str] = field(default_factory=list)          # every file played, AGI or dialplan
    first_prompt_seconds: float | None = None                # real seconds from AGI start to first play
    hung_up_by: str | None = None                            # caller | script | dialplan
    ended: bool = False
    ended_at: dt.datetime | None = None
    # When refused: the callers already on the trunk (a refusal with fewer than the reserve is ours).
    inbound_on_trunk: int | None = None

    def log_record(self) -> dict[str, object]:
        return {"id": self.id, "trunk": self.trunk, "caller": self.script.caller, "channel": self.channel,
                "agi_status": self.agi_status, "commands": self.commands, "played": self.played,
                "first_prompt_seconds": self.first_prompt_seconds, "hung_up_by": self.hung_up_by,
                "ended": self.ended, "inbound_on_trunk": self.inbound_on_trunk, "start": self.started_at.isoformat(),
                "end": self.ended_at.isoformat() if self.ended_at else None}


class CallerHungUp(Exception):
    pass


class AgiSession:
    """res_agi's side of one FastAGI connection, on a channel run by the dialplan interpreter."""

    def __init__(self, call: InboundCall, run, environment: dict[str, str]) -> None:  # noqa: ANN001 - ChannelRun
        self.call, self.run, self.environment = call, run, environment
        self.keys = list(call.script.keys)
        self.dead = False
        self._started = 0.0

    async def serve(self, url: str) -> str:
        """Run the session; AGISTATUS (SUCCESS, FAILURE, HANGUP)."""
        parts = urlsplit(url)
        try:
            reader, writer = await asyncio.open_connection(parts.hostname or "127.0.0.1", parts.port or 4573)
        except OSError:
            self.run.runtime.note(f"Connecting to '{url}' failed")
            return "FAILURE"
        loop = asyncio.get_running_loop()
        self._started = loop.time()
        writer.write(format_environment({"network": "yes", "network_script": parts.path.lstrip("/"),
                                         "request": url, **self.environment}))
        buffer = b""
        try:
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(4096), SCRIPT_TIMEOUT_SECONDS)
                except (asyncio.TimeoutError, ConnectionError):
                    break
                if not data:
                    break
                lines, buffer = read_commands(buffer + data)
                for line in lines:
                    writer.write(await self._execute(line))
                await writer.drain()
        except (AgiProtocolError, ConnectionError):
            pass
        finally:
            writer.close()
        return "HANGUP" if self.dead else "SUCCESS"

    # --- time and the caller ---------------------------------------------------------

    def _hangup_at(self) -> float:
        after = self.call.script.hangup_after
        return float("inf") if after is None else after

    async def _spend(self, seconds: float) -> None:
        """Let ``seconds`` of the call pass; CallerHungUp when the caller hangs up meanwhile."""
        until = self.run.now + seconds
        if until >= self._hangup_at():
            await self.run._advance(max(self._hangup_at(), self.run.now))
            raise CallerHungUp()
        await self.run._advance(until)

    def _seconds(self, path: str) -> float:
        if not self.run.runtime.file_exists(path + ".wav"):
            return -1.0
        return self.run.runtime.file_seconds(path + ".wav") or PROMPT_SECONDS

    def _played(self, path: str) -> None:
        if self.call.first_prompt_seconds is None:
            self.call.first_prompt_seconds = asyncio.get_running_loop().time() - self._started
        self.call.played.append(path)

    def _next_key(self) -> str | None:
        return self.keys.pop(0) if self.keys else None

    # --- commands ------------------------------------------------------------------------

    async def _execute(self, line: str) -> bytes:
        self.call.commands.append(line)
        words = parse_command(line)
        name, args = self._split(words)
        if name is None:
            return format_error(510)
        minimum, usage = USAGE[name]
        if len(args) < minimum:
            return format_error(520, [usage] if usage else [])
        notice = b""
        if not self.dead and self.run.now >= self._hangup_at():
            # The caller hung up between commands: the notice went out then, before this reply.
            self._caller_hung_up()
            notice = HANGUP_LINE + b"\n"
        if self.dead:
            return notice + (await self._dead_allowed(name, args) if name in DEAD_ALLOWED else format_error(511))
        try:
            return await self._live(name, args)
        except CallerHungUp:
            self._caller_hung_up()
            # The command under way is cut short, then the unprompted notice.
            reply = format_reply(-1, endpos=0) if name == "STREAM FILE" else format_reply(-1)
            return reply + HANGUP_LINE + b"\n"

    @staticmethod
    def _split(words: list[str]) -> tuple[str | None, list[str]]:
        for size in (3, 2, 1):
            name = " ".join(words[:size]).upper()
            if name in USAGE:
                return name, words[size:]
        return None, words

    def _caller_hung_up(self) -> None:
        self.dead = True
        self.call.hung_up_by = self.call.hung_up_by or "caller"

    async def _dead_allowed(self, name: str, args: list[str]) -> bytes:
        if name == "HANGUP":
            self.dead = True
            self.call.hung_up_by = self.call.hung_up_by or "script"
            return format_reply(1)
        if name == "SET VARIABLE":
            self.run.variables[args[0]] = " ".join(args[1:])
            return format_reply(1)
        if name == "GET VARIABLE":
            value = self.run.variables.get(args[0])
            return format_reply(1, value) if value is not None else format_reply(0)
        return format_reply(1)

    async def _live(self, name: str, args: list[str]) -> bytes:
        if name == "ANSWER":
            return format_reply(0)
        if name in DEAD_ALLOWED:
            reply = await self._dead_allowed(name, args)
            return reply + (HANGUP_LINE + b"\n" if name == "HANGUP" else b"")
        if name == "STREAM FILE":
            seconds = self._seconds(args[0])
            if seconds < 0:
                return format_reply(-1, endpos=0)      # res_agi: the file could not be opened
            self._played(args[0])
            await self._spend(seconds)
            return format_reply(0, endpos=int(seconds * SAMPLES_PER_SECOND))
        if name == "GET DATA":
            seconds = max(self._seconds(args[0]), 0.0)
            timeout = float(args[1]) / 1000 if len(args) > 1 and args[1] else 2.0
            if seconds:
                self._played(args[0])
            key = self._next_key()
            if key is None or key == "-":
                await self._spend(seconds + timeout)
                return format_reply("", "timeout")
            await self._spend(min(seconds, KEY_AFTER_SECONDS))
            self.run.runtime.emit_dtmf(key)
            return format_reply(key)
        if name == "WAIT FOR DIGIT":
            key = self._next_key()
            timeout = float(args[0]) / 1000
            if key is None or key == "-":
                await self._spend(max(timeout, 0.0))
                return format_reply(0)
            await self._spend(KEY_AFTER_SECONDS)
            self.run.runtime.emit_dtmf(key)
            return format_reply(ord(key))
        return format_reply(0)   # NOOP
