"""One hotline call over FastAGI: the state machine of gateway.core.hotline, played and keyed.

Each step's effects are recorded (in a worker thread: the database blocks) before the
step plays, so what the caller hears ("confirmed", "registered") is already true.
At the end the channel variable ALLERTA_HOTLINE is set to ``done``: the dialplan plays
its own fallback (the latest message, "call again") only to a caller the engine did not
see to the end (engine down, restarting, or gone mid-call).
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Protocol

from asterisk.agi_server import AgiCall
from gateway.core.hotline import Caller, Effect, HotlineCall, Register, SetLanguage, Situation, Step
from gateway.core.hotline_prompts import sound_path

log = logging.getLogger(__name__)
DONE_VARIABLE = "ALLERTA_HOTLINE"


class Directory(Protocol):
    """What a call needs from the database (gateway.core.hotline_store.HotlineStore)."""

    def caller(self, caller_id: str | None) -> Caller: ...

    def situation(self, language: str) -> Situation: ...

    def record(self, caller: Caller, effect: Effect) -> None: ...


class HotlineSession:
    """The FastAGI handler: ``FastAgiServer(HotlineSession(...))``."""

    def __init__(self, directory: Directory, sounds_dir: str | Path, *, key_timeout_ms: int = 5000,
                 check_files: bool = True) -> None:
        self.directory = directory
        self.sounds_dir = Path(sounds_dir)
        self.key_timeout_ms = key_timeout_ms
        # Asterisk and the engine share sounds_dir: a file missing here would make STREAM FILE
        # answer -1, which reads as a hangup, so a missing prompt is skipped (and logged).
        self.check_files = check_files

    async def __call__(self, call: AgiCall) -> None:
        caller = await asyncio.to_thread(self.directory.caller, call.environment.caller_id)
        situation = await asyncio.to_thread(self.directory.situation, caller.language)
        machine = HotlineCall(caller, situation)
        await call.answer()
        step = machine.start()
        while True:
            for effect in step.effects:
                await asyncio.to_thread(self.directory.record, machine.caller, effect)
                if isinstance(effect, (Register, SetLanguage)):
                    machine.situation = await asyncio.to_thread(self.directory.situation, machine.caller.language)
            key = await self._play(call, step)
            if step.hangup:
                await call.set_variable(DONE_VARIABLE, "done")
                await call.hangup()
                return
            step = machine.on_key(key)

    def _paths(self, step: Step) -> list[str]:
        paths = []
        for sound in step.play:
            path = sound_path(self.sounds_dir, sound, step.language)
            if self.check_files and not Path(path + ".wav").is_file():
                log.warning("hotline: no sound %s.wav (render the hotline sounds)", path)
                continue
            paths.append(path)
        return paths

    async def _play(self, call: AgiCall, step: Step) -> str | None:
        """Play the step; with ``wants_key``, a key stops it and is returned (None: silence)."""
        paths = self._paths(step)
        if not step.wants_key:
            for path in paths:
                await call.play(path, interruptible=False)
            return None
        for path in paths[:-1]:
            key = await call.play(path, interruptible=True)
            if key is not None:
                return key
        return await call.read_key(paths[-1] if paths else "silence/1", self.key_timeout_ms)
