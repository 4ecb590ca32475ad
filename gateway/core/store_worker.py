"""The engine's database work, off the event loop: one writer thread behind the store.

The event loop drives every modem's completions, the AMI events and pings and the
watchdog; a database held by someone else (a backup, a long panel query, a busy
PostgreSQL; SQLite waits up to its busy timeout) must delay bookkeeping, never a
send. So every call the engine makes to the Store runs here, one at a time and in
the order it was asked (a status report cannot overtake the send it belongs to),
and the loop awaits a future.

A call that fails because the database is unavailable (locked, busy, connection
lost: SQLAlchemy's OperationalError) is retried with a growing pause until it
lands, and logged: the Store's methods are one transaction each, rolled back on
failure, so running one again is safe. Any other error is a bug: it is handed
back through the future, never retried.

A database that cannot be reached at all (PostgreSQL stopped or failing over, the network cut:
connection_lost) is a state, not only a slow call: ``unreachable_since`` says since when, for
the dispatcher, which then hands no new work to the lines (what they finish meanwhile is journaled
on disk, outcome_journal.py) until the first call lands again. A SQLite database locked by
another writer is held, not lost: the engine goes on with the work it has claimed.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from gateway.core import inbound_store
from gateway.core.channels import DeliveryFailed, LineStatus, ReceivedPart, StatusReport, SubmitReceipt
from gateway.core.db import utcnow
from gateway.core.retry import RetryVerdict
from gateway.core.states import AttemptOutcome, Channel, DeliveryState
from gateway.core.store import ClaimedDelivery, ReportMatch, Store

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetrySettings:
    first_pause: float = 0.05      # seconds before the first retry of a failed call
    max_pause: float = 5.0         # the pause doubles up to this
    log_every: float = 10.0        # a call still failing is logged again this often


def unavailable(exc: BaseException) -> bool:
    """True for the errors that say the database cannot be reached now, not that the call is wrong."""
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


# SQLSTATEs saying the server is gone or cannot take this session, not that the statement is
# wrong: class 08 (connection exception), 57P01-03 (administrator or crash shutdown, the server
# starting or stopping), 25006 (read-only: a standby, or a demoted primary; see db.py). Errors
# of libpq itself (no server at that address) carry none.
_LOST_SQLSTATE_PREFIXES = ("08", "57P01", "57P02", "57P03", "25006")


def connection_lost(exc: BaseException) -> bool:
    """True when the database cannot be reached (or is no longer the primary), as opposed to held
    (SQLite locked, a PostgreSQL deadlock or lock timeout): the engine then stops handing out work."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if not hasattr(exc.orig, "sqlstate"):
        return False   # not psycopg: SQLite's errors are a busy or locked file, never a lost server
    sqlstate = exc.orig.sqlstate
    return isinstance(exc, OperationalError) and (sqlstate is None or sqlstate.startswith(_LOST_SQLSTATE_PREFIXES))


_STOP = object()


class StoreWorker:
    """One thread that runs database calls in order, retrying each until it lands."""

    def __init__(self, retry: RetrySettings = RetrySettings(), *, name: str = "store-writer",
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.retry = retry
        self._sleep = sleep
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._stopping = threading.Event()
        self.retries = 0           # calls run again after a failure (for the bench and the tests)
        # Set (UTC) when a call finds the database unreachable, cleared when one lands again;
        # read by the event loop (one attribute: no lock needed).
        self.unreachable_since: dt.datetime | None = None
        # The last outage once it is over: (unreachable since, reachable again), UTC.
        self.last_outage: tuple[dt.datetime, dt.datetime] | None = None

    def start(self) -> None:
        self._thread.start()

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        """Queue ``fn(*args, **kwargs)``; the future ends with its result or its (non-retryable) error."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._jobs.put((future, fn, args, kwargs))
        return future

    def stop(self, timeout: float | None = None) -> bool:
        """Finish what is queued (still retrying), then end the thread. False when ``timeout``
        passed first: what is left is abandoned (the next start recovers it from the database)."""
        self._jobs.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._stopping.set()   # stop retrying: the process is going away
            return False
        return True

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            future, fn, args, kwargs = job
            if future.set_running_or_notify_cancel():
                self._run_one(future, fn, args, kwargs)

    def _run_one(self, future: concurrent.futures.Future, fn: Callable, args: tuple, kwargs: dict) -> None:
        pause = self.retry.first_pause
        failing_since = next_log = None
        while True:
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed back through the future
                if not unavailable(exc) or self._stopping.is_set():
                    future.set_exception(exc)
                    return
                if connection_lost(exc) and self.unreachable_since is None:
                    self.unreachable_since = utcnow()
                    log.error("database unreachable since %s UTC (%s): no new work is handed to the lines, "
                              "what they finish is kept on disk; retrying every %g s at most",
                              self.unreachable_since.isoformat(timespec="seconds"), _first_line(exc),
                              self.retry.max_pause)
                now = time.monotonic()
                if failing_since is None:
                    failing_since = next_log = now
                if now >= next_log:
                    next_log = now + self.retry.log_every
                    log.warning("database unavailable for %s (%s): retrying until it lands (%.0f s so far)",
                                getattr(fn, "__name__", fn), _first_line(exc),
                                now - failing_since)
                self.retries += 1
                self._sleep(pause)
                pause = min(pause * 2, self.retry.max_pause)
                continue
            if self.unreachable_since is not None:
                self.last_outage = (self.unreachable_since, utcnow())
                self.unreachable_since = None
                log.warning("database reachable again after %.0f s (unreachable since %s UTC)",
                            (self.last_outage[1] - self.last_outage[0]).total_seconds(),
                            self.last_outage[0].isoformat(timespec="seconds"))
            if failing_since is not None:
                log.warning("database call %s landed after %.1f s of retries", getattr(fn, "__name__", fn),
                            time.monotonic() - failing_since)
            future.set_result(result)
            return


def log_failure(logger: logging.Logger, what: str, exc: BaseException) -> None:
    """A background check that failed: one line when the database is unavailable (the writer
    already says since when), the traceback when it is a bug."""
    if unavailable(exc):
        logger.warning("%s: database unavailable (%s); trying again later", what, _first_line(exc))
    else:
        logger.error(what, exc_info=exc)


def _first_line(exc: BaseException) -> str:
    return (str(getattr(exc, "orig", None) or exc).splitlines() or [type(exc).__name__])[0]


EARLY_REPORT_SECONDS = 120.0


class AsyncStore:
    """The Store as the event loop sees it: each method a coroutine whose work runs on the
    StoreWorker's thread.

    It also keeps the status reports that beat their own send's bookkeeping (the modem
    reports within milliseconds of +CMGS, before the parts are stored): on the worker's
    thread, so a report and the send it belongs to are matched in the order they happened.
    """

    def __init__(self, store: Store, worker: StoreWorker) -> None:
        self.store = store
        self.worker = worker
        # (line, TP-MR) -> (report, monotonic time); touched on the worker thread only.
        self._early: dict[tuple[str, int], tuple[StatusReport, float]] = {}

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        # Shielded: a caller cancelled at a stop does not take back a write already asked for;
        # it still lands, in its turn.
        return await asyncio.shield(asyncio.wrap_future(self.worker.submit(fn, *args, **kwargs)))

    async def recover_interrupted(self, placed_ahead: set[int] | None = None) -> int:
        return await self._call(self.store.recover_interrupted, placed_ahead=placed_ahead)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Any other database work of the engine (the citizens' service, the answers' queue), in its
        turn on the same writer: one transaction each, retried like the store's own."""
        return await self._call(fn, *args, **kwargs)

    async def claim(self, channel: Channel, limit: int, *, ahead: bool = False) -> list[ClaimedDelivery]:
        return await self._call(self.store.claim, channel, limit, ahead=ahead)

    async def release_claims(self, claims: list[ClaimedDelivery]) -> int:
        return await self._call(self.store.release_claims, claims)

    async def record_result(self, claim: ClaimedDelivery, verdict: RetryVerdict, *,
                            receipt: SubmitReceipt | None = None, failure: DeliveryFailed | None = None,
                            ) -> tuple[DeliveryState, list[tuple[StatusReport, ReportMatch]]]:
        """The outcome's state, and the early status reports it let match (for their log lines)."""
        state = await self._call(self.store.record_result, claim, verdict, receipt=receipt, failure=failure)
        matched: list[tuple[StatusReport, ReportMatch]] = []
        if receipt is not None and receipt.references:
            # A call of its own: a retry runs one transaction again, never the result's twice.
            matched = await self._call(self._apply_early_reports, receipt.line, receipt.references)
        return state, matched

    def _apply_early_reports(self, line: str, references: list[int]) -> list[tuple[StatusReport, ReportMatch]]:
        early = [self._early.get((line, ref)) for ref in references]
        reports = [kept[0] for kept in early if kept is not None]
        if not reports:
            return []
        matches = self.store.record_status_reports(line, reports)
        for report in reports:   # landed: no longer early
            self._early.pop((line, report.reference), None)
        return [(r, m) for r, m in zip(reports, matches) if m is not None]

    async def record_status_reports(self, line: str, reports: list[StatusReport]) -> list[ReportMatch | None]:
        return await self._call(self._record_status_reports, line, reports)

    def _record_status_reports(self, line: str, reports: list[StatusReport]) -> list[ReportMatch | None]:
        matches = self.store.record_status_reports(line, reports)
        now = time.monotonic()
        for report, matched in zip(reports, matches):
            if matched is None:
                self._early[(line, report.reference)] = (report, now)
        for key in [k for k, (_, at) in self._early.items() if at < now - EARLY_REPORT_SECONDS]:
            del self._early[key]
            log.info("status report on %s for unknown reference %d", *key)
        return matches

    async def record_part(self, part: ReceivedPart) -> int:
        """Store a received part; the number of whole messages it completed (0 or 1)."""
        return await self._call(inbound_store.record_part, self.store.sessions, part)

    async def assemble_overdue(self, now: dt.datetime, timeout: dt.timedelta) -> int:
        return await self._call(inbound_store.assemble_overdue, self.store.sessions, now, timeout)

    async def record_line_statuses(self, statuses: list[LineStatus]) -> None:
        await self._call(self.store.record_line_statuses, statuses)

    async def work_left(self, channel: Channel) -> tuple[int, int, dt.datetime | None]:
        return await self._call(self.store.work_left, channel)

    async def complete_finished_alerts(self) -> int:
        return await self._call(self.store.complete_finished_alerts)

    async def record_late_call_outcome(self, attempt_id: int, outcome: AttemptOutcome, *, line: str | None,
                                       answered_at: dt.datetime | None, cause: int | None) -> DeliveryState | None:
        return await self._call(self.store.record_late_call_outcome, attempt_id, outcome, line=line,
                                answered_at=answered_at, cause=cause)

    async def unwanted_alerts(self, alert_ids: set[int], channel: Channel = Channel.SMS) -> set[int]:
        return await self._call(self.store.unwanted_alerts, alert_ids, channel)
