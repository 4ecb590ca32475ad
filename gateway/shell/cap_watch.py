"""The engine's CAP sources: the watched directory ([cap] inbox_dir) and the feeds ([cap] feeds).

Thin: files and HTTP here, every decision in gateway.core.cap_service. The directory is the
USB stick or LAN share someone drops a warning on: each *.xml is imported and moved to done/,
or to failed/ beside a .error file saying why, so the folder itself tells what happened. A
feed that cannot be reached (no internet in a flood) is logged once, not every poll, and
tried again at the next interval.
"""
from __future__ import annotations

import asyncio
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from gateway.core.cap_feed import FeedError, feed_links
from gateway.core.cap_service import CapReceiver, CapRefused
from gateway.core.store_worker import log_failure

log = logging.getLogger(__name__)
FETCH_TIMEOUT = 20.0


class CapInbox:
    def __init__(self, receiver: CapReceiver, directory: Path, *, settle_seconds: float = 2.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.receiver = receiver
        self.directory = directory
        self.settle_seconds = settle_seconds
        self._clock = clock
        self._unreadable = False

    def poll_once(self) -> list[tuple[str, str]]:
        """Import every settled *.xml; (file name, outcome) of each."""
        done = []
        try:
            files = sorted(path for path in self.directory.iterdir() if path.suffix.lower() == ".xml"
                           and path.is_file())
        except OSError as exc:
            # A USB stick not plugged in yet: said once, looked at again every interval.
            if not self._unreadable:
                log.warning("CAP inbox %s cannot be read (looked at again every interval): %s", self.directory, exc)
                self._unreadable = True
            return done
        self._unreadable = False
        for path in files:
            # A file still being copied (a slow share) would look truncated: wait until it settles.
            if self._clock() - path.stat().st_mtime < self.settle_seconds:
                continue
            done.append((path.name, self._import(path)))
        return done

    def _import(self, path: Path) -> str:
        try:
            with path.open("rb") as handle:
                data = handle.read(self.receiver.settings.max_bytes + 1)
            received = self.receiver.receive(data, f"inbox:{path.name}")
        except CapRefused as exc:
            self._move(path, "failed", f"refused, nothing stored: {exc}\n")
            return "refused"
        if received.outcome == "refused":
            self._move(path, "failed", f"received, not made into an alert: {received.detail}\n")
        else:
            self._move(path, "done", None)
        log.info("CAP inbox %s: %s %s", path.name, received.outcome, received.detail)
        return received.outcome

    def _move(self, path: Path, folder: str, error: str | None) -> None:
        target_dir = self.directory / folder
        target_dir.mkdir(exist_ok=True)
        target = target_dir / path.name
        if target.exists():   # the same name dropped again: keep both
            target = target_dir / f"{path.stem}.{int(self._clock() * 1000)}{path.suffix}"
        path.replace(target)
        if error is not None:
            target.with_name(target.name + ".error").write_text(error, encoding="utf-8")


def fetch_url(url: str, max_bytes: int) -> bytes:
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as response:  # noqa: S310 - configured http(s) URLs
        return response.read(max_bytes + 1)


class CapFeeds:
    def __init__(self, receiver: CapReceiver, urls: tuple[str, ...], *,
                 fetch: Callable[[str, int], bytes] = fetch_url) -> None:
        self.receiver = receiver
        self.urls = urls
        self._fetch = fetch
        self._failing: set[str] = set()
        self._imported: set[str] = set()   # documents already handed over (the database is the real guard)

    def poll_once(self) -> list[tuple[str, str]]:
        results = []
        limit = self.receiver.settings.max_bytes
        for url in self.urls:
            try:
                links = feed_links(self._fetch(url, limit), url, max_bytes=limit)
            except (OSError, urllib.error.URLError, FeedError) as exc:
                if url not in self._failing:
                    log.warning("CAP feed %s not read (tried again every interval): %s", url, exc)
                    self._failing.add(url)
                continue
            if url in self._failing:
                log.info("CAP feed %s readable again", url)
                self._failing.discard(url)
            for link in links:
                if link in self._imported:
                    continue
                try:
                    received = self.receiver.receive(self._fetch(link, limit), f"feed:{link}")
                except (OSError, urllib.error.URLError) as exc:
                    log.warning("CAP document %s not fetched: %s", link, exc)
                    continue
                except CapRefused as exc:
                    log.warning("CAP document %s refused: %s", link, exc)
                    received = None
                self._imported.add(link)
                results.append((link, received.outcome if received else "refused"))
        return results


async def run_every(interval: float, poll: Callable[[], object]) -> None:
    """Call ``poll`` off the event loop every ``interval`` seconds; a failure never stops the engine."""
    while True:
        try:
            await asyncio.to_thread(poll)
        except Exception as exc:  # noqa: BLE001 - a CAP source must never stop the engine
            log_failure(log, "CAP source failed", exc)
        await asyncio.sleep(interval)
