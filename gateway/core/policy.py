"""What happens to a delivery after an attempt: the channel-specific retry decision.

The dispatcher asks the policy of the delivery's channel; policies are
injected by the composition root (the voice one lives in asterisk/).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from gateway.core.channels import DeliveryFailed, SubmitReceipt
from gateway.core.retry import SmsRetryPolicy
from gateway.core.states import DeliveryState


@dataclass(frozen=True)
class Verdict:
    state: DeliveryState                # PENDING to try again, else the final state
    next_attempt_at: dt.datetime | None = None
    charged: bool = True                # counts against the recipient's attempts
    reason: str | None = None           # stored as last_error when set
    # False when nothing reached a line (no trunk free, no route): the claim's
    # submission is given back, so it does not count toward the voice cap.
    placed: bool = True


@dataclass(frozen=True)
class AlertPolicy:
    """The retry policy an alert was created with (stored on the alert row)."""
    max_attempts: int
    deadline: dt.datetime | None
    voice_interval: float = 300.0
    voice_growth: float = 1.5
    voice_cap: int = 8
    stop_on_confirm: bool = True
    sms_fallback: bool = False


class DeliveryPolicy(Protocol):
    def after_success(self, policy: AlertPolicy, attempts: int, submissions: int, receipt: SubmitReceipt,
                      now: dt.datetime) -> Verdict: ...

    def after_failure(self, policy: AlertPolicy, attempts: int, submissions: int, failure: DeliveryFailed,
                      now: dt.datetime) -> Verdict: ...


class SmsPolicy:
    """An accepted SMS is 'sent' (status reports make it 'delivered'); failures retry with backoff."""

    def __init__(self, retry: SmsRetryPolicy) -> None:
        self.retry = retry

    def after_success(self, policy: AlertPolicy, attempts: int, submissions: int, receipt: SubmitReceipt,
                      now: dt.datetime) -> Verdict:
        return Verdict(DeliveryState.SENT)

    def after_failure(self, policy: AlertPolicy, attempts: int, submissions: int, failure: DeliveryFailed,
                      now: dt.datetime) -> Verdict:
        charged = attempts + (1 if failure.charge_attempt else 0)
        if failure.permanent:
            return Verdict(DeliveryState.FAILED, charged=failure.charge_attempt)
        retry = SmsRetryPolicy(max_attempts=min(self.retry.max_attempts, policy.max_attempts),
                               initial_delay=self.retry.initial_delay, max_delay=self.retry.max_delay,
                               backoff=self.retry.backoff)
        next_at = retry.next_attempt(charged, now, deadline=policy.deadline, charged=failure.charge_attempt)
        if next_at is None:
            return Verdict(DeliveryState.FAILED, charged=failure.charge_attempt,
                           reason=f"gave up after {charged} attempts: {failure.reason}")
        return Verdict(DeliveryState.PENDING, next_at, charged=failure.charge_attempt)
