"""When to try a delivery again (pure)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class SmsRetryPolicy:
    max_attempts: int = 5
    initial_delay: float = 30.0
    max_delay: float = 900.0
    backoff: float = 2.0

    def delay_after(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th transient failure (1-based)."""
        return min(self.max_delay, self.initial_delay * self.backoff ** max(0, failures - 1))

    def next_attempt(self, attempts_charged: int, now: dt.datetime, *, deadline: dt.datetime | None = None,
                     charged: bool = True) -> dt.datetime | None:
        """The time of the next try, or None when the delivery should give up.

        A failure on our side (modem gone, ``charged=False``) is retried soon
        on another line without using up the recipient's attempts.
        """
        if attempts_charged >= self.max_attempts:
            return None
        delay = self.delay_after(attempts_charged) if charged else min(self.initial_delay, 5.0)
        when = now + dt.timedelta(seconds=delay)
        if deadline is not None and when > deadline:
            return None
        return when
