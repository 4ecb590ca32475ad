"""The hotline's files, kept ready while the engine runs: prompts rendered, the latest message published.

Both are files in the sounds directory because the dialplan must be able to answer with them
when the engine cannot (asterisk/conf/extensions_allerta.conf, [allerta-hotline]).
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from gateway.core.audio import AudioError, render_tts
from gateway.core.hotline_prompts import Renderer, publish_latest, render_hotline_sounds, render_poll
from gateway.core.hotline_store import HotlineStore

log = logging.getLogger(__name__)


def refresh_hotline_files(store: HotlineStore, sounds_dir: str | Path, *, render: Renderer = render_tts) -> None:
    """Render the prompts and polls missing (a zone added since, a first start, a new poll) and publish
    the latest message."""
    try:
        zones = store.situation(store.languages[0]).zones
        made = render_hotline_sounds(sounds_dir, zones, store.languages, render=render)
        if made:
            log.info("hotline: rendered %d prompts into %s/hotline", made, sounds_dir)
    except (AudioError, OSError) as exc:
        # The menus then skip the missing prompts; the log says why.
        log.error("hotline: cannot render the prompts: %s", exc)
    try:
        for target, question, options in store.polls_without_audio():
            # The alert's own language: the question is read as the operator wrote it.
            render_poll(target, question, options, store.languages[0], render=render)
    except (AudioError, OSError) as exc:
        log.error("hotline: cannot render a poll: %s", exc)
    try:
        audio = store.latest_audio()
        if publish_latest(sounds_dir, audio):
            log.info("hotline: the message played when the engine cannot answer is now %s", audio)
    except OSError as exc:
        log.error("hotline: cannot publish the latest message: %s", exc)


async def keep_hotline_files(store: HotlineStore, sounds_dir: str | Path, *, interval: float = 15.0) -> None:
    while True:
        await asyncio.to_thread(refresh_hotline_files, store, sounds_dir)
        await asyncio.sleep(interval)
