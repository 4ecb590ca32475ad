"""Which stored status reports (+CDSI) a modem must read, and which it may delete.

Reading each report the moment its +CDSI arrives cost two AT exchanges per
SMS (AT+CMGR, then AT+CMGD once the database had it) on a line that could be
sending instead: at 0.5 s per AT+CMGS that was 3 to 4% of every modem's time
(measured on the simulator's byte trace at 64 modems). Instead the modem's
worker collects them between two sends: one AT+CMGL=4 lists every report
waiting in the status-report memory, and the deletes of the reports the
engine has committed since ride on the same command line.

While sends are queued a collection waits until a report has waited
``interval`` seconds or ``batch`` of them are announced (at most a quarter of
the memory, which on real modems holds 20 to 50); an idle modem collects at
once, so the last reports of an alert are not kept waiting, and lists its
memory once after its sends stop even without a +CDSI (SWEEP_AFTER).

A report is deleted only once the engine committed it: a crash in between
leaves it stored, and the next session reads it again (harmlessly: the part it
would mark is no longer waiting for a report).

The memory must never fill: a modem drops the reports that do not fit. In
the steady state it holds about three batches (one announced, one handed
over, one awaiting its delete); when what is stored reaches three quarters of
its capacity (``full``: the engine is more than a batch behind with its
commits) the worker collects before its next send, and waits for the commits
if it must. With the old one-report-at-a-time reads the memory held one or
two; with batches it could otherwise fill while a loaded engine lagged.

Pure state behind one lock, no I/O: ``announce`` runs on the library's read
thread, the rest on the worker's; the driver does the AT commands.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

COLLECT_INTERVAL = 2.0
COLLECT_BATCH = 6
# A modem idle this long after its last send lists its report memory even without a
# +CDSI: a URC lost on the line (or held back, see driver.py) must not leave a report
# unread until the next one arrives, which after an alert's last SMS is never.
SWEEP_AFTER = 5.0
# After the engine could not record a batch (database locked, disk full), its reports are
# read again this much later, not at once: an idle modem would otherwise list and hand
# them over in a tight loop for as long as the database fails.
RETRY_AFTER = 5.0
# What a modem's report memory holds when its AT+CPMS reply has not said yet (real
# ones hold 20 to 50; the smallest we plan for).
DEFAULT_CAPACITY = 10
# The memory AT+CNMI=...,2 stores reports in. Only reports live there, so it is
# listed whole; a report announced in another memory (SM, ME: some modems) is
# read by its index, since listing those would also return incoming SMS.
REPORT_MEMORY = "SR"


@dataclass
class Collection:
    """One memory's work for one pass: delete these, then list the memory (``list_all``)
    or read the ``announced`` indexes one by one."""
    memory: str
    deletes: list[int] = field(default_factory=list)
    list_all: bool = False
    announced: list[int] = field(default_factory=list)


class StoredReports:
    def __init__(self, interval: float = COLLECT_INTERVAL, batch: int = COLLECT_BATCH,
                 capacity: int = DEFAULT_CAPACITY) -> None:
        self.interval = interval
        self.batch = batch
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self.capacity = capacity
        self._announced: dict[str, set[int]] = {}
        self._waiting_since: float | None = None
        self._scan: set[str] = set()
        self._in_flight: set[tuple[str, int]] = set()    # handed to the engine, commit pending
        self._committed: dict[str, set[int]] = {}         # in the database: to delete
        self._committed_since: float | None = None
        self._unlistable: set[str] = set()                # AT+CMGL refused there: read by index
        self._last_send = 0.0
        self._swept_since_send = True
        self._hold_until = 0.0                            # no announced-only pass before (RETRY_AFTER)

    # --- what arrives --------------------------------------------------------
    def announce(self, memory: str, index: int, now: float) -> None:
        """A +CDSI: a report is stored at ``memory``/``index``."""
        with self._lock:
            self._announced.setdefault(memory, set()).add(index)
            if self._waiting_since is None:
                self._waiting_since = now

    def sent(self, now: float) -> None:
        """An SMS went out: its report is due some time, and a sweep after the sends stop."""
        with self._lock:
            self._last_send = now
            self._swept_since_send = False

    def scan(self, memory: str = REPORT_MEMORY) -> None:
        """List ``memory`` whole at the next pass (at open: what came while nobody listened)."""
        with self._lock:
            if memory not in self._unlistable:
                self._scan.add(memory)

    def learn_capacity(self, total: int) -> None:
        """The modem said how many reports its memory holds (AT+CPMS)."""
        if total > 0:
            self.capacity = total

    def _held(self) -> int:
        return (sum(len(i) for i in self._announced.values()) + len(self._in_flight)
                + sum(len(i) for i in self._committed.values()))

    def full(self) -> bool:
        """Three quarters of the memory hold reports: no send before some are deleted."""
        with self._lock:
            return self._held() >= max(1, self.capacity * 3 // 4)

    def wait_for_commit(self, timeout: float) -> None:
        """Until a hand-over's commit ends, or ``timeout`` (also when none is pending: the
        caller loops on this, and must not spin)."""
        with self._lock:
            self._settled.wait(timeout)

    def listing_refused(self, memory: str) -> None:
        """The modem cannot list ``memory``: from now on its reports are read by index."""
        with self._lock:
            self._unlistable.add(memory)
            self._scan.discard(memory)

    # --- when --------------------------------------------------------------------
    def due(self, now: float, idle: bool) -> bool:
        with self._lock:
            if idle and not self._swept_since_send and now - self._last_send >= SWEEP_AFTER:
                self._swept_since_send = True
                if REPORT_MEMORY not in self._unlistable:
                    self._scan.add(REPORT_MEMORY)
            if self._scan:
                return True
            waiting = sum(len(indexes) for indexes in self._announced.values())
            if waiting and now >= self._hold_until and (idle or waiting >= min(self.batch, max(1, self.capacity // 4))
                            or now - self._waiting_since >= self.interval):
                return True
            return bool(self._committed) and (idle or now - self._committed_since >= self.interval)

    # --- a pass --------------------------------------------------------------------
    def take(self) -> list[Collection]:
        """The work of one pass, by memory; what it holds is no longer pending here."""
        with self._lock:
            memories = set(self._announced) | set(self._committed) | self._scan
            work = []
            for memory in sorted(memories):
                announced = self._announced.pop(memory, set())
                list_all = memory not in self._unlistable and (
                    memory in self._scan or (memory == REPORT_MEMORY and bool(announced)))
                work.append(Collection(memory=memory, deletes=sorted(self._committed.pop(memory, set())),
                                       list_all=list_all, announced=sorted(announced)))
            self._scan.clear()
            self._waiting_since = None
            self._committed_since = None
            return work

    def give_back(self, work: Collection, now: float) -> None:
        """A pass failed (timeout, port trouble): its deletes and reads wait for the next one."""
        with self._lock:
            if work.deletes:
                self._committed.setdefault(work.memory, set()).update(work.deletes)
                self._committed_since = self._committed_since or now
            pending = set(work.announced)
            if work.list_all:
                self._scan.add(work.memory)
            if pending:
                self._announced.setdefault(work.memory, set()).update(pending)
                self._waiting_since = self._waiting_since or now

    def wanted(self, memory: str, index: int) -> bool:
        """False for a listed report already handed over (its commit is pending) or
        about to be deleted: it must not be handed over twice."""
        with self._lock:
            return (memory, index) not in self._in_flight and index not in self._committed.get(memory, ())

    def handed_over(self, memory: str, indexes: list[int]) -> None:
        with self._lock:
            self._in_flight.update((memory, index) for index in indexes)

    def settled(self, memory: str, indexes: list[int], committed: bool, now: float) -> None:
        """The engine's commit of these reports ended: delete them, or (it failed) read them again."""
        with self._lock:
            self._in_flight.difference_update((memory, index) for index in indexes)
            self._settled.notify_all()
            if committed:
                self._to_delete(memory, indexes, now)
            else:
                self._announced.setdefault(memory, set()).update(indexes)
                self._waiting_since = self._waiting_since or now
                self._hold_until = now + RETRY_AFTER

    def forget(self, memory: str, indexes: list[int], now: float) -> None:
        """Delete these without handing them over (interim reports, unreadable slots)."""
        with self._lock:
            self._to_delete(memory, indexes, now)

    def _to_delete(self, memory: str, indexes: list[int], now: float) -> None:
        if indexes:
            self._committed.setdefault(memory, set()).update(indexes)
            if self._committed_since is None:
                self._committed_since = now

    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)
