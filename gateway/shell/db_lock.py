"""Someone else's long write transaction on the SQLite file (a backup, a long panel query),
for the bench and the tests: a thread that, once asked, holds BEGIN EXCLUSIVE for a while."""
from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable


class WriteLockHolder:
    """Waits until ``when()`` is true, then write-locks the database file for ``seconds``.

    ``held`` is the (start, end) of the lock in wall-clock time (time.time(), as the
    simulator's event log), None until it was released."""

    def __init__(self, path: str, seconds: float, when: Callable[[], bool], *, poll: float = 0.05) -> None:
        self.path = path
        self.seconds = seconds
        self._when = when
        self._poll = poll
        self._cancel = threading.Event()
        self.held: tuple[float, float] | None = None
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="db-lock-holder", daemon=True)

    def __enter__(self) -> "WriteLockHolder":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._cancel.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._when():
            if self._cancel.wait(self._poll):
                return
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            conn.execute("BEGIN EXCLUSIVE")
        except sqlite3.Error as exc:
            self.error = str(exc)
            return
        started = time.time()
        self._cancel.wait(self.seconds)   # a stop ends the lock early; `held` says how long it was
        conn.execute("ROLLBACK")
        conn.close()
        self.held = (started, time.time())
