"""A small interpreter of our rendered extensions_allerta.conf, for the PBX simulator.

The simulator used to play what we believed the dialplan does; a real Asterisk
then showed AMD() throwing keys away. Now the simulator runs the file we ship,
application by application, against a simulated callee (when they talk, when
they press a key), so a change to the dialplan changes what the simulator does.

Only what our dialplans use is implemented, with the behaviour of Asterisk 22:
Answer, NoOp, Set (CHANNEL(hangup_handler_push), DB()), Goto, GotoIf, Wait,
Read, Playback, BackgroundDetect, WaitForSilence, AMD, UserEvent, Hangup,
Return, AGI (asterisk/pbx_simulator/inbound.py); functions STAT, DB, DIALPLAN_EXISTS, CALLERID(num); ``$[...]`` with = != < > <= >=
& | + -. An application whose module is missing hangs the call up, as in
Asterisk; a function whose module is missing evaluates to nothing.

Time is virtual seconds since answer; ``Runtime.sleep`` makes it pass.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Protocol

from asterisk.dialplan_modules import APPLICATION_MODULES, FUNCTION_MODULES

_CONTEXT = re.compile(r"^\[([^\]]+)\]")
_EXTEN = re.compile(r"^exten\s*=>\s*([^,]+),\s*([^,]+),(.*)$")
_SAME = re.compile(r"^same\s*=>\s*([^,]+),(.*)$")
_PRIORITY = re.compile(r"^(n|\d+)(?:\(([^)]+)\))?$")
# What our dialplan names the poll asked after the message (gateway.core.audio.POLL_SUFFIX).
POLL_PROMPT_SUFFIX = "-poll"
_APP = re.compile(r"^\s*([A-Za-z]+)\((.*)\)\s*$")


class DialplanError(ValueError):
    """The dialplan text cannot be read; the message names the line."""


@dataclass
class Step:
    priority: int
    label: str | None
    application: str
    data: str


@dataclass
class Dialplan:
    contexts: dict[str, dict[str, list[Step]]] = field(default_factory=dict)

    def exists(self, context: str, exten: str) -> bool:
        return exten in self.contexts.get(context, {})

    def find(self, context: str, exten: str, target: str) -> int:
        """Index of priority number or label ``target`` in context/exten; KeyError if none."""
        steps = self.contexts[context][exten]
        for index, step in enumerate(steps):
            if step.label == target or str(step.priority) == target:
                return index
        raise KeyError(f"{context},{exten},{target}")


def parse_dialplan(text: str) -> Dialplan:
    plan = Dialplan()
    context: str | None = None
    exten: str | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(";", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if match := _CONTEXT.match(line):
            context, exten = match.group(1), None
            plan.contexts.setdefault(context, {})
            continue
        if (match := _EXTEN.match(line)) and context is not None:
            exten, priority, rest = match.group(1).strip(), match.group(2).strip(), match.group(3)
        elif (match := _SAME.match(line)) and context is not None and exten is not None:
            priority, rest = match.group(1).strip(), match.group(2)
        else:
            raise DialplanError(f"dialplan line {number}: cannot read {raw.strip()!r}")
        steps = plan.contexts[context].setdefault(exten, [])
        pmatch, amatch = _PRIORITY.match(priority), _APP.match(rest)
        if pmatch is None or amatch is None:
            raise DialplanError(f"dialplan line {number}: cannot read {raw.strip()!r}")
        value = len(steps) + 1 if pmatch.group(1) == "n" else int(pmatch.group(1))
        steps.append(Step(value, pmatch.group(2), amatch.group(1), amatch.group(2)))
    return plan


# --- expressions ------------------------------------------------------------------

def _split_args(data: str) -> list[str]:
    """Split on commas outside parentheses and brackets, as pbx.c does for arguments."""
    args, depth, current = [], 0, ""
    for char in data:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == "," and depth == 0:
            args.append(current)
            current = ""
        else:
            current += char
    args.append(current)
    return args


_TOKEN = re.compile(r'\s*("[^"]*"|<=|>=|!=|[=<>&|+\-()]|[^\s=<>!&|+\-()"]+)')


def evaluate_expression(expression: str) -> str:
    """Asterisk's ``$[...]`` for the operators we use; an empty expression is ''."""
    tokens = [t for t in _TOKEN.findall(expression) if t.strip()]
    if not tokens:
        return ""
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def number(value: str) -> int | None:
        return int(value) if re.fullmatch(r"-?\d+", value) else None

    def atom() -> str:
        token = take()
        if token == "(":
            value = either()
            take()
            return value
        return token[1:-1] if token.startswith('"') else token

    def additive() -> str:
        value = atom()
        while peek() in ("+", "-"):
            op, right = take(), atom()
            left_n, right_n = number(value), number(right)
            if left_n is None or right_n is None:
                value = ""
            else:
                value = str(left_n + right_n if op == "+" else left_n - right_n)
        return value

    def comparison() -> str:
        value = additive()
        while peek() in ("=", "!=", "<", ">", "<=", ">="):
            op, right = take(), additive()
            left_n, right_n = number(value), number(right)
            a, b = (left_n, right_n) if left_n is not None and right_n is not None else (value, right)
            result = {"=": a == b, "!=": a != b, "<": a < b, ">": a > b,  # type: ignore[operator]
                      "<=": a <= b, ">=": a >= b}[op]  # type: ignore[operator]
            value = "1" if result else "0"
        return value

    def truthy(value: str) -> bool:
        return value not in ("", "0")

    def conjunction() -> str:
        value = comparison()
        while peek() == "&":
            take()
            right = comparison()
            value = right if truthy(value) and truthy(right) else "0"
        return value

    def either() -> str:
        value = conjunction()
        while peek() == "|":
            take()
            right = conjunction()
            value = value if truthy(value) else (right if truthy(right) else "0")
        return value

    return either()


def _matching(text: str, start: int, opening: str, closing: str) -> int:
    depth = 0
    for index in range(start, len(text)):
        if text[index] == opening:
            depth += 1
        elif text[index] == closing:
            depth -= 1
            if depth == 0:
                return index
    raise DialplanError(f"unbalanced {opening}{closing} in {text!r}")


# --- the callee ---------------------------------------------------------------------

@dataclass
class Callee:
    """What the far end does, in seconds since answer."""
    presses: list[tuple[float, str]] = field(default_factory=list)   # (time, digit), in order
    talk: list[tuple[float, float]] = field(default_factory=list)    # (start, end) of speech
    message_seconds: float = 10.0      # how long a message plays when its length is unknown
    # The keys pressed for a poll (a Read of "<message>-poll"), one per time it is asked, each this
    # long after the question starts: scripted by the prompt, since when it comes depends on the call.
    votes: list[str] = field(default_factory=list)
    vote_after: float = 2.0



class Runtime(Protocol):
    """What the interpreter needs from the simulator."""

    def emit_user_event(self, name: str, pairs: list[tuple[str, str]]) -> None: ...

    def emit_dtmf(self, digit: str) -> None: ...

    async def sleep(self, seconds: float) -> None: ...

    def module_loaded(self, module: str) -> bool: ...

    def file_exists(self, path: str) -> bool: ...

    def file_seconds(self, path: str) -> float | None: ...

    astdb: dict[tuple[str, str], str]

    def note(self, text: str) -> None: ...

    def played(self, path: str) -> None: ...


class _Hangup(Exception):
    def __init__(self, cause: int) -> None:
        self.cause = cause


@dataclass
class ChannelRun:
    """One channel running through the dialplan."""
    plan: Dialplan
    runtime: Runtime
    callee: Callee
    variables: dict[str, str]
    context: str
    exten: str = "s"
    now: float = 0.0
    hangup_handler: tuple[str, str, str] | None = None
    hangup_cause: int = 16
    applications: list[str] = field(default_factory=list)   # what ran, for tests and logs
    _index: int = 0
    _pending: list[tuple[float, str]] = field(default_factory=list)

    # --- running ----------------------------------------------------------------

    async def run(self) -> int:
        """Run from context,exten,1 until a hangup; the Q.850 cause. The hangup handler
        runs apart (``run_hangup_handler``), after the soft hangup, as in Asterisk."""
        self._pending = sorted(self.callee.presses)
        try:
            if not self.plan.exists(self.context, self.exten):
                self.runtime.note(f"no extension {self.exten} in context {self.context}: hangup")
                raise _Hangup(16)
            while True:
                steps = self.plan.contexts[self.context][self.exten]
                if self._index >= len(steps):
                    raise _Hangup(16)   # fell off the end: pbx.c hangs up
                step = steps[self._index]
                self._index += 1
                await self._execute(step.application, self.substitute(step.data))
        except _Hangup as hangup:
            self.hangup_cause = hangup.cause
        return self.hangup_cause

    async def run_hangup_handler(self) -> None:
        if self.hangup_handler is None:
            return
        if not self.runtime.module_loaded("app_stack"):
            # Hangup handlers run as a Gosub: "The app_stack module is not available."
            self.runtime.note("cannot run the hangup handler: app_stack is not loaded")
            return
        self.variables["HANGUPCAUSE"] = str(self.hangup_cause)
        self.context, self.exten, label = self.hangup_handler
        if not self.plan.exists(self.context, self.exten):
            return
        self._index = self.plan.find(self.context, self.exten, label)
        try:
            while self._index < len(self.plan.contexts[self.context][self.exten]):
                step = self.plan.contexts[self.context][self.exten][self._index]
                self._index += 1
                if step.application == "Return":
                    return
                await self._execute(step.application, self.substitute(step.data))
        except _Hangup:
            return

    def goto(self, target: str) -> None:
        parts = [p.strip() for p in target.split(",")]
        if len(parts) == 1:
            context, exten, label = self.context, self.exten, parts[0]
        elif len(parts) == 2:
            context, exten, label = self.context, parts[0], parts[1]
        else:
            context, exten, label = parts[0], parts[1], parts[2]
        try:
            self._index = self.plan.find(context, exten, label)
        except KeyError:
            self.runtime.note(f"Goto to nowhere: {target}: hangup")
            raise _Hangup(16) from None
        self.context, self.exten = context, exten

    # --- substitution -------------------------------------------------------------

    def substitute(self, text: str) -> str:
        """Replace ${...} and $[...] innermost first, as pbx_substitute_variables does."""
        while True:
            start = max(text.rfind("${"), text.rfind("$["))
            if start < 0:
                return text
            opening, closing = ("{", "}") if text[start + 1] == "{" else ("[", "]")
            end = _matching(text, start + 1, opening, closing)
            inner = text[start + 2:end]
            value = self._variable(inner) if opening == "{" else evaluate_expression(inner)
            text = text[:start] + value + text[end + 1:]

    def _variable(self, name: str) -> str:
        call = re.fullmatch(r"([A-Z_]+)\((.*)\)", name, re.DOTALL)
        if call is None:
            if name == "EPOCH" and name not in self.variables:
                return str(int(time.time()))   # a builtin of Asterisk: the wall clock, for AstDB
            return self.variables.get(name, "")
        function, args = call.group(1), _split_args(call.group(2))
        module = FUNCTION_MODULES.get(function)
        if module is None or not self.runtime.module_loaded(module):
            self.runtime.note(f"Function {function} not registered")
            return ""
        if function == "STAT" and args[0] == "e":
            return "1" if self.runtime.file_exists(args[1]) else "0"
        if function == "DB":
            family, _, key = args[0].partition("/")
            return self.runtime.astdb.get((family, key), "")
        if function == "CALLERID" and args[0] in ("num", "number"):
            return self.variables.get("CALLERID(num)", "")
        return ""

    # --- time and the callee -----------------------------------------------------

    async def _advance(self, until: float) -> None:
        if until > self.now:
            await self.runtime.sleep(until - self.now)
            self.now = until

    def _next_press(self, until: float) -> tuple[float, str] | None:
        if self._pending and self._pending[0][0] < until:
            return self._pending[0]
        return None

    def _consume_press(self) -> str:
        _, digit = self._pending.pop(0)
        self.runtime.emit_dtmf(digit)
        return digit

    async def _ignore_keys_until(self, until: float) -> None:
        """Wait(), Playback(), AMD(), WaitForSilence(): a key pressed meanwhile is lost."""
        while (press := self._next_press(until)) is not None:
            await self._advance(press[0])
            self._consume_press()
        await self._advance(until)

    async def _keys_or_until(self, until: float) -> str | None:
        """A key pressed before ``until`` stops the wait and is returned."""
        press = self._next_press(until)
        if press is not None:
            await self._advance(max(press[0], self.now))
            return self._consume_press()
        await self._advance(until)
        return None

    def _play_seconds(self, path: str) -> float | None:
        """How long ``path`` plays; None if Asterisk could not open it."""
        if not self.runtime.file_exists(path + ".wav"):
            return None
        seconds = self.runtime.file_seconds(path + ".wav")
        if seconds is not None:
            return seconds
        # A length we cannot read: our message (ALLERTA_AUDIO) lasts what the callee model says;
        # anything else (the confirmation, a stock prompt such as "beep") a second.
        return self.callee.message_seconds if path == self.variables.get("ALLERTA_AUDIO", "") else 1.0

    # --- applications -------------------------------------------------------------

    async def _execute(self, application: str, data: str) -> None:
        self.applications.append(application)
        module = APPLICATION_MODULES.get(application)
        handler: Callable[[list[str]], Awaitable[None]] | None = getattr(self, f"_app_{application.lower()}", None)
        if module is None or handler is None or not self.runtime.module_loaded(module):
            # pbx.c: "No application 'X' for extension": the channel is hung up.
            self.runtime.note(f"No application '{application}': hangup")
            raise _Hangup(16)
        await handler(_split_args(data))

    async def _app_noop(self, args: list[str]) -> None:
        return None

    async def _app_answer(self, args: list[str]) -> None:
        return None      # the originated channel is already up

    async def _app_set(self, args: list[str]) -> None:
        name, _, value = ",".join(args).partition("=")
        call = re.fullmatch(r"([A-Z_]+)\((.*)\)", name.strip())
        if call is None:
            self.variables[name.strip()] = value
            return
        function, fargs = call.group(1), call.group(2)
        module = FUNCTION_MODULES.get(function)
        if module is None or not self.runtime.module_loaded(module):
            self.runtime.note(f"Function {function} not registered")
            return
        if function == "CHANNEL" and fargs == "hangup_handler_push":
            parts = (value.split(",") + ["s", "1"])[:3]
            self.hangup_handler = (parts[0], parts[1] or "s", parts[2] or "1")
        elif function == "DB":
            family, _, key = fargs.partition("/")
            self.runtime.astdb[(family, key)] = value

    async def _app_goto(self, args: list[str]) -> None:
        self.goto(",".join(args))

    async def _app_gotoif(self, args: list[str]) -> None:
        condition, _, branches = ",".join(args).partition("?")
        when_true, _, when_false = branches.partition(":")
        target = when_true if condition.strip() not in ("", "0") else when_false
        if target:
            self.goto(target)

    async def _app_wait(self, args: list[str]) -> None:
        await self._ignore_keys_until(self.now + float(args[0] or 0))

    async def _app_hangup(self, args: list[str]) -> None:
        raise _Hangup(int(args[0]) if args and args[0].isdigit() else 16)

    async def _app_return(self, args: list[str]) -> None:
        return None

    async def _app_userevent(self, args: list[str]) -> None:
        pairs = []
        for item in args[1:]:
            key, _, value = item.partition(":")
            pairs.append((key.strip(), value.strip()))
        self.runtime.emit_user_event(args[0].strip(), pairs)

    async def _app_playback(self, args: list[str]) -> None:
        seconds = self._play_seconds(args[0])
        self.variables["PLAYBACKSTATUS"] = "FAILED" if seconds is None else "SUCCESS"
        if seconds is None:
            self.runtime.note(f"Playback failed on {args[0]}")
            return
        self.runtime.played(args[0])
        await self._ignore_keys_until(self.now + seconds)

    async def _app_read(self, args: list[str]) -> None:
        args = args + [""] * 6
        variable, path, timeout = args[0], args[1], float(args[5] or 0)
        if path.endswith(POLL_PROMPT_SUFFIX) and self.callee.votes:
            # The callee answers the question it hears (unless it pressed a key already pending).
            self._pending.append((self.now + self.callee.vote_after, self.callee.votes.pop(0)))
            self._pending.sort()
        # app_read: a file it cannot open is skipped without a word; the key still counts.
        seconds = self._play_seconds(path) if path else None
        digit = None
        if seconds:
            digit = await self._keys_or_until(self.now + seconds)
        if digit is None:
            digit = await self._keys_or_until(self.now + timeout)
        self.variables[variable] = digit or ""
        self.variables["READSTATUS"] = "OK" if digit else "TIMEOUT"

    async def _app_backgrounddetect(self, args: list[str]) -> None:
        args = args + [""] * 5
        path = args[0]
        silence = float(args[1] or 1000) / 1000
        shortest = float(args[2] or 100) / 1000
        longest = float(args[3]) / 1000 if args[3] else float("inf")
        window = float(args[4]) / 1000 if args[4] else float("inf")
        seconds = self._play_seconds(path)
        if seconds is None:
            # app_talkdetect: ast_streamfile fails and the application returns -1.
            self.runtime.note(f"ast_streamfile failed on {path}")
            raise _Hangup(16)
        start, end = self.now, self.now + seconds
        detected = self._talk_token(start, end, silence, shortest, longest, start + window)
        stop = detected if detected is not None else end
        while (press := self._next_press(stop)) is not None:
            await self._advance(max(press[0], self.now))
            digit = self._consume_press()
            # Only a digit that starts an extension of this context interrupts.
            if self.plan.exists(self.context, digit):
                self.context, self.exten, self._index = self.context, digit, 0
                return
        await self._advance(stop)
        if detected is not None and self.plan.exists(self.context, "talk"):
            self.exten, self._index = "talk", 0

    def _talk_token(self, start: float, end: float, silence: float, shortest: float,
                    longest: float, window_end: float) -> float | None:
        """When app_talkdetect jumps to 'talk': a token of speech (pauses shorter than
        ``silence`` inside it) longer than ``shortest``, followed by ``silence``."""
        tokens: list[list[float]] = []
        for talk_start, talk_end in sorted(self.callee.talk):
            talk_start, talk_end = max(talk_start, start), min(talk_end, end)
            if talk_end <= talk_start:
                continue
            if tokens and talk_start - tokens[-1][1] < silence:
                tokens[-1][1] = talk_end
            else:
                tokens.append([talk_start, talk_end])
        for token_start, token_end in tokens:
            at = token_end + silence
            if shortest < token_end - token_start < longest and at <= min(end, window_end):
                return at
        return None

    async def _app_waitforsilence(self, args: list[str]) -> None:
        """Until ``silence`` seconds without talk, counted from the application's start."""
        args = args + [""] * 3
        silence = float(args[0] or 1000) / 1000
        deadline = self.now + (float(args[2]) if args[2] else float("inf"))
        quiet_from = self.now
        while quiet_from < deadline:
            ongoing = [end for start, end in self.callee.talk if start <= quiet_from < end]
            starting = [start for start, _ in self.callee.talk if quiet_from < start < quiet_from + silence]
            if ongoing:
                quiet_from = max(ongoing)
            elif starting:
                quiet_from = min(starting)
            else:
                break
        await self._ignore_keys_until(min(quiet_from + silence, deadline))

    async def _app_agi(self, args: list[str]) -> None:
        """res_agi: run the script; AGISTATUS SUCCESS, FAILURE (no connection) or HANGUP, which
        ends the dialplan as a hangup does."""
        agi = getattr(self.runtime, "agi", None)
        status = "FAILURE" if agi is None else await agi(args[0], self)
        self.variables["AGISTATUS"] = status
        if status == "HANGUP":
            raise _Hangup(16)

    async def _app_amd(self, args: list[str]) -> None:
        """app_amd with its defaults: 2.5 s of initial silence or a greeting longer than
        1.5 s is a MACHINE; a short word then 0.8 s of silence is HUMAN. Keys are lost."""
        start = self.now
        talking = [(max(s, start), e) for s, e in self.callee.talk if e > start]
        if not talking or talking[0][0] - start >= 2.5:
            status, until = "MACHINE", start + 2.5
        elif talking[0][1] - talking[0][0] > 1.5:
            status, until = "MACHINE", talking[0][0] + 1.5
        else:
            status, until = "HUMAN", talking[0][1] + 0.8
        await self._ignore_keys_until(min(until, start + 5.0))
        self.variables["AMDSTATUS"] = status

