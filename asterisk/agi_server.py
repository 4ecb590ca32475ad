"""A FastAGI server on asyncio streams: Asterisk connects for each hotline call.

Our own rather than panoramisk's ``fast_agi``: that one fails on Python 3.11 when a
route is a plain function and must be built inside the running loop (pitfall g in
shared/reference/asterisk-ami.md), it reads replies with no limit, and it does not
tell the unprompted ``HANGUP`` line from a reply. The framing is asterisk/agi_protocol.py;
this module only owns the sockets, each read under a timeout.

Loopback only: AGI carries no authentication, and whoever connects drives a call.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from asterisk.agi_protocol import (AgiEnvironment, AgiProtocolError, AgiReply, HangupNotice, format_command,
                                   parse_environment, parse_replies)

log = logging.getLogger(__name__)
HOST = "127.0.0.1"
ANY_KEY = "0123456789*#"


class CallerGone(Exception):
    """The caller hung up (HANGUP, 511, or a command cut short): nothing more can be played."""


class AgiCall:
    """One FastAGI session: the environment and the commands we use, each awaited for its reply."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 environment: AgiEnvironment, rest: bytes, *, reply_timeout: float) -> None:
        self.environment = environment
        self._reader, self._writer = reader, writer
        self._buffer = rest
        self._replies: list[AgiReply | HangupNotice] = []
        self.reply_timeout = reply_timeout
        self.gone = False

    async def command(self, *words: object, timeout: float | None = None) -> AgiReply:
        """Send one command and return its reply; CallerGone when the channel is dead."""
        if self.gone:
            raise CallerGone()
        self._writer.write(format_command(*words))
        await self._writer.drain()
        reply = await self._reply(self.reply_timeout + (timeout or 0.0))
        if reply.dead:
            self.gone = True
            raise CallerGone()
        if not reply.ok:
            raise AgiProtocolError(f"{words[0]}: {reply.code} {reply.message}")
        return reply

    async def _reply(self, timeout: float) -> AgiReply:
        async with asyncio.timeout(timeout):
            while True:
                while self._replies:
                    item = self._replies.pop(0)
                    if isinstance(item, HangupNotice):
                        # Sent unprompted: the reply to the command in flight still follows.
                        self.gone = True
                        continue
                    return item
                data = await self._reader.read(4096)
                if not data:
                    self.gone = True
                    raise CallerGone()
                items, self._buffer = parse_replies(self._buffer + data)
                self._replies.extend(items)

    async def answer(self) -> None:
        await self.command("ANSWER")

    async def play(self, path: str, *, interruptible: bool) -> str | None:
        """STREAM FILE: the key that stopped it, or None."""
        reply = await self.command("STREAM FILE", path, ANY_KEY if interruptible else "", timeout=600.0)
        return reply.digit

    async def read_key(self, path: str, timeout_ms: int) -> str | None:
        """GET DATA with one digit: the key pressed during or after ``path``, None after ``timeout_ms``."""
        reply = await self.command("GET DATA", path, timeout_ms, 1, timeout=600.0 + timeout_ms / 1000)
        return reply.result[:1] or None

    async def set_variable(self, name: str, value: str) -> None:
        await self.command("SET VARIABLE", name, value)

    async def hangup(self) -> None:
        try:
            await self.command("HANGUP")
        except CallerGone:
            pass


Handler = Callable[[AgiCall], Awaitable[None]]
# Told of each call's channel when it starts (+1) and ends (-1): the voice channel counts
# hotline calls against their trunk's channels.
CallObserver = Callable[[str, int], None]


class FastAgiServer:
    """Accepts Asterisk's connections and runs ``handler`` for each call."""

    def __init__(self, handler: Handler, *, port: int, reply_timeout: float = 10.0,
                 observer: CallObserver | None = None) -> None:
        self.handler = handler
        self.observer = observer
        self.port = port
        self.reply_timeout = reply_timeout
        self.calls_in_progress = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, HOST, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.calls_in_progress += 1
        channel: str | None = None
        try:
            call = await self._open(reader, writer)
            if call is not None:
                channel = call.environment.get("channel")
                if self.observer is not None:
                    self.observer(channel, +1)
                await self.handler(call)
        except CallerGone:
            pass
        except (AgiProtocolError, TimeoutError, ConnectionError) as exc:
            log.warning("hotline call ended early: %s", exc)
        except asyncio.CancelledError:
            pass   # the engine is stopping; Asterisk sees the socket close
        except Exception:   # noqa: BLE001 - one call's failure (the database, a bug) must not go unseen
            # The socket closes without ALLERTA_HOTLINE=done: the dialplan plays its fallback.
            log.exception("hotline call failed; the caller hears the fallback message")
        finally:
            self.calls_in_progress -= 1
            if channel is not None and self.observer is not None:
                self.observer(channel, -1)
            writer.close()

    async def _open(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> AgiCall | None:
        buffer = b""
        async with asyncio.timeout(self.reply_timeout):
            while True:
                data = await reader.read(4096)
                if not data:
                    return None
                environment, rest = parse_environment(buffer + data)
                if environment is not None:
                    return AgiCall(reader, writer, environment, rest, reply_timeout=self.reply_timeout)
                buffer += data
