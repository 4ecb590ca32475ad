"""When to call a recipient again, if at all. Pure code.

The numbers follow what diallers do (Asterisk call files retry every 300 s,
Newfies-Dialer grows the interval) with two rules of our own: a hard cap on
calls placed per number, whether charged or not, so a broken trunk cannot
make us ring one person forever; and trunk-side failures retried soon
without using up the recipient's attempts.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from asterisk.outcomes import CallOutcome


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5              # charged attempts per recipient
    interval_seconds: float = 300.0    # wait after the first charged failure
    growth: float = 1.5                # each later wait is this much longer
    per_number_cap: int = 10           # calls placed, charged or not: hard cap
    deadline: dt.datetime | None = None
    stop_on_confirm: bool = True       # True: only a confirmation ends the calls;
                                       # False: any answer (or voicemail) does
    trunk_retry_seconds: float = 30.0  # retry after a trunk-side failure
    max_interval_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.per_number_cap < 1:
            raise ValueError("max_attempts and per_number_cap must be at least 1")
        if self.interval_seconds < 0 or self.trunk_retry_seconds < 0 or self.growth < 1:
            raise ValueError("intervals must not be negative and growth must be >= 1")


def next_attempt(policy: RetryPolicy, attempts_charged: int, calls_placed: int,
                 outcome: CallOutcome, now: dt.datetime) -> dt.datetime | None:
    """When to call again after ``outcome``, or None to give up.

    ``attempts_charged`` and ``calls_placed`` already include the call that
    produced ``outcome``.
    """
    if outcome.outcome == "confirmed":
        return None
    if outcome.delivered and not policy.stop_on_confirm:
        return None
    if outcome.permanent or calls_placed >= policy.per_number_cap:
        return None
    if policy.deadline is not None and now >= policy.deadline:
        return None
    # A rejection on the first attempt earns one more call; a rejection after
    # that means the person does not want the call (or the number is barred).
    if outcome.retry_at_most_once and attempts_charged >= 2:
        return None
    if attempts_charged >= policy.max_attempts:
        return None
    if not outcome.charge_attempt:
        delay = policy.trunk_retry_seconds
    else:
        steps = max(attempts_charged - 1, 0)
        delay = min(policy.interval_seconds * policy.growth ** steps,
                    policy.max_interval_seconds)
    when = now + dt.timedelta(seconds=delay)
    if policy.deadline is not None and when > policy.deadline:
        return None
    return when
