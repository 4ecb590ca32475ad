"""The sends handed from the event loop to one modem's thread.

The loop counts what it handed over and what is done (``queued``,
``queued_parts``: written on the loop only); the queue between the two
threads also carries the wake-ups of an idle thread and the stop.
"""
from __future__ import annotations

import asyncio
import queue
import time
from dataclasses import dataclass, field

from gateway.core.sms_text import SubmitPdu

# Sends a modem may hold: the one on the wire and one waiting behind it. The
# waiting one goes out the moment +CMGS answers, without a round trip through
# the event loop and the database (which cost each modem ~10% of its time at
# 64 modems). It is 'submitting' in the database from the moment it is handed
# over, so a crash resends it as a possible duplicate, like the one on the wire.
PIPELINE_DEPTH = 2
# Put in the queue to wake an idle thread: stored status reports wait to be collected.
_WAKE = object()
# Put in the queue by ``stop``: the thread takes nothing after it.
_STOP = object()


@dataclass(frozen=True)
class SendJob:
    pdus: list[SubmitPdu]
    future: asyncio.Future[list[int]]     # resolved on the loop with the TP-MRs, or the failure
    # When the loop handed it over (monotonic): a send that waited longer than send_timeout behind a
    # silent modem (a health read that hangs) goes back unsent rather than late.
    handed_at: float = field(default_factory=time.monotonic)


class SendQueue:
    def __init__(self, depth: int = PIPELINE_DEPTH) -> None:
        self.depth = depth
        self._jobs: queue.Queue = queue.Queue()
        self._idle = False          # thread side: waiting for a job (a wake-up is worth sending)
        self.queued = 0             # loop side: sends handed over and not done
        self.queued_parts = 0

    # --- loop side ---------------------------------------------------------------
    def has_room(self) -> bool:
        return self.queued < self.depth

    def hand_over(self, job: SendJob) -> None:
        """Counted from this very call, so the next free-slot count sees it."""
        self.queued += 1
        self.queued_parts += len(job.pdus)
        self._jobs.put(job)

    def done(self, parts: int) -> None:
        """A send handed over ended, sent or not."""
        self.queued -= 1
        self.queued_parts -= parts

    def stop(self) -> None:
        self._jobs.put(_STOP)

    # --- either side -----------------------------------------------------------------
    def wake(self) -> None:
        """Let an idle thread look at its stored status reports now, not at its next timeout."""
        if self._idle:
            self._jobs.put(_WAKE)

    # --- thread side -----------------------------------------------------------------
    def empty(self) -> bool:
        return self._jobs.empty()

    def take(self, timeout: float) -> SendJob | None:
        """The next send, or None after ``timeout``, a wake-up or the stop."""
        self._idle = True
        try:
            job = self._jobs.get(timeout=timeout)
        except queue.Empty:
            return None
        finally:
            self._idle = False
        return job if isinstance(job, SendJob) else None

    def drain(self) -> list[SendJob]:
        """Every send still waiting (they are to be failed), emptying the queue."""
        jobs = []
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return jobs
            if isinstance(job, SendJob):
                jobs.append(job)
