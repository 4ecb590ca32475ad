"""How a modem's thread hands work to the event loop.

Everything the loop reads is written on the loop thread, so the thread never
changes shared state itself: it schedules a function there with
``call_soon_threadsafe`` (the pattern of Home Assistant's sms integration).
A loop already closed (shutdown) is not an error for a fire-and-forget call.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any


def _settle_from(done: concurrent.futures.Future, ended: asyncio.Future) -> None:
    if ended.cancelled():
        done.cancel()
    elif ended.exception() is not None:
        done.set_exception(ended.exception())
    else:
        done.set_result(None)


class LoopBridge:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn`` on the loop, without waiting."""
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed during shutdown
            pass

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future:
        """Run ``fn`` on the loop without waiting; the future ends when it returned (or, when it
        returned an asyncio future, e.g. the engine's task recording reports, when that ended)."""
        done: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            try:
                result = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed back through the future
                done.set_exception(exc)
                return
            if isinstance(result, asyncio.Future):
                # The engine records on its database thread: done once that committed.
                result.add_done_callback(lambda ended: _settle_from(done, ended))
            else:
                done.set_result(None)
        try:
            self._loop.call_soon_threadsafe(run)
        except RuntimeError as exc:  # loop closed during shutdown
            done.set_exception(exc)
        return done

    def resolve(self, future: asyncio.Future, *, result: Any = None, error: BaseException | None = None) -> None:
        """End a loop future from the thread (unless it ended already, e.g. cancelled)."""
        def settle() -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
        self.call(settle)
