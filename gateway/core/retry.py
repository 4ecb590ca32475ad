"""When to try a delivery again, for every channel: one verdict, the SMS rules and the voice rules. Pure code.

The dispatcher asks the policy of the delivery's channel after each attempt and the
store records the ``RetryVerdict``. The numbers come from two places only: the alert's
own row (``AlertPolicy``: attempts, deadline, the voice interval and per-number cap,
filled by the CLI, the panel and the API from the [voice] and [retry] sections) and the
[retry] section (``SmsRetry``: the SMS backoff). Their defaults live in the
configuration schema (gateway/core/config.py) and nowhere else.

The voice numbers follow what diallers do (Asterisk call files retry every 300 s,
Newfies-Dialer grows the interval) with two rules of our own: a hard cap on calls
placed per number, charged or not, so a broken trunk cannot make us ring one person
forever; and failures on our side (trunk congestion, a modem gone) retried soon
without using up the recipient's attempts.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from gateway.core.channels import DeliveryFailed, SubmitReceipt
from gateway.core.config import RetryConfig
from gateway.core.states import AttemptOutcome, DeliveryState

# Q.850 21, the callee rejected the call: one more call at most (shared/reference/asterisk-ami.md).
RETRY_AT_MOST_ONCE_CAUSES = frozenset({21})
# Outcomes a channel gives when nothing reached a line (no trunk free, none allowed to dial
# the number): neither charged to the recipient nor counted toward the per-number cap.
NOT_PLACED = frozenset({AttemptOutcome.NO_LINE, AttemptOutcome.NO_ROUTE})
# However the interval grows, a number is called again within the hour.
MAX_CALL_INTERVAL = 3600.0
# A trunk-side failure says nothing about the recipient: call again this soon
# (or sooner, when the alert's own interval is shorter).
TRUNK_RETRY_SECONDS = 30.0
# A failure on our side of an SMS (modem gone) is retried this soon, on another line.
UNCHARGED_SMS_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class RetryVerdict:
    """What happens to a delivery after one attempt."""
    state: DeliveryState                # PENDING to try again, else the final state
    next_attempt_at: dt.datetime | None = None
    charged: bool = True                # the attempt counts against the recipient's attempts
    reason: str | None = None           # stored as last_error when set
    # False when nothing reached a line (no trunk free, no route): the claim's
    # submission is given back, so it does not count toward the voice cap.
    placed: bool = True

    @property
    def retry(self) -> bool:
        return self.state == DeliveryState.PENDING


@dataclass(frozen=True)
class AlertPolicy:
    """The retry policy an alert was created with (stored on the alert row)."""
    max_attempts: int                   # attempts charged to a recipient
    deadline: dt.datetime | None        # nothing is tried after it
    voice_interval: float               # seconds before the second call; later ones wait longer
    voice_growth: float                 # each later wait is this much longer
    voice_cap: int                      # calls placed per number, charged or not: a hard cap
    stop_on_confirm: bool               # True: only a confirmation ends the calls; False: any answer does
    sms_fallback: bool                  # a mobile still unconfirmed when voice gives up gets the SMS


@dataclass(frozen=True)
class SmsRetry:
    """The [retry] section: how SMS retries space out."""
    max_attempts: int
    initial_delay: float
    max_delay: float
    backoff: float

    @classmethod
    def from_config(cls, retry: RetryConfig) -> SmsRetry:
        """From the configuration's [retry] section (``Config.retry``)."""
        return cls(max_attempts=retry.max_attempts, initial_delay=retry.initial_delay,
                   max_delay=retry.max_delay, backoff=retry.backoff)

    def delay_after(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th transient failure (1-based)."""
        return min(self.max_delay, self.initial_delay * self.backoff ** max(0, failures - 1))


def _in_time(now: dt.datetime, when: dt.datetime, deadline: dt.datetime | None) -> dt.datetime | None:
    """``when``, or None when the deadline has passed or would pass before it."""
    if deadline is not None and (now >= deadline or when > deadline):
        return None
    return when


def next_sms_attempt(retry: SmsRetry, policy: AlertPolicy, attempts: int, now: dt.datetime, *,
                     charged: bool = True) -> dt.datetime | None:
    """When to send again after a transient failure, or None to give up.

    ``attempts`` (charged to the recipient) already includes this one. The fewer of the
    [retry] section's and the alert's max_attempts applies. A failure on our side
    (``charged=False``) is retried soon on another line.
    """
    if attempts >= min(retry.max_attempts, policy.max_attempts):
        return None
    delay = retry.delay_after(attempts) if charged else min(retry.initial_delay, UNCHARGED_SMS_RETRY_SECONDS)
    return _in_time(now, now + dt.timedelta(seconds=delay), policy.deadline)


def next_call(policy: AlertPolicy, attempts: int, calls_placed: int, now: dt.datetime, *, heard: bool = False,
              permanent: bool = False, charged: bool = True, rejected: bool = False) -> dt.datetime | None:
    """When to call a number again, or None to give up.

    ``attempts`` (charged to the recipient) and ``calls_placed`` already include this
    call. ``heard``: a person or a mailbox heard the message without confirming;
    ``rejected``: the callee rejected the call (Q.850 21).
    """
    if heard and not policy.stop_on_confirm:
        return None
    if permanent or calls_placed >= policy.voice_cap:
        return None
    # A rejection on the first attempt earns one more call; a rejection after
    # that means the person does not want the call (or the number is barred).
    if (rejected and attempts >= 2) or attempts >= policy.max_attempts:
        return None
    # Clamped, not trusted (the CLI's --interval is not checked): a negative interval means
    # no wait rather than a time in the past, and a growth below 1 never shrinks the waits.
    interval, growth = max(0.0, policy.voice_interval), max(1.0, policy.voice_growth)
    if charged:
        delay = min(interval * growth ** max(attempts - 1, 0), MAX_CALL_INTERVAL)
    else:
        delay = min(TRUNK_RETRY_SECONDS, max(1.0, interval))
    return _in_time(now, now + dt.timedelta(seconds=delay), policy.deadline)


class DeliveryPolicy(Protocol):
    def after_success(self, policy: AlertPolicy, attempts: int, submissions: int, receipt: SubmitReceipt,
                      now: dt.datetime) -> RetryVerdict: ...

    def after_failure(self, policy: AlertPolicy, attempts: int, submissions: int, failure: DeliveryFailed,
                      now: dt.datetime) -> RetryVerdict: ...


class SmsPolicy:
    """An accepted SMS is 'sent' (status reports make it 'delivered'); failures retry with backoff."""

    def __init__(self, retry: SmsRetry) -> None:
        self.retry = retry

    def after_success(self, policy: AlertPolicy, attempts: int, submissions: int, receipt: SubmitReceipt,
                      now: dt.datetime) -> RetryVerdict:
        return RetryVerdict(DeliveryState.SENT)

    def after_failure(self, policy: AlertPolicy, attempts: int, submissions: int, failure: DeliveryFailed,
                      now: dt.datetime) -> RetryVerdict:
        charged = failure.charge_attempt
        if failure.permanent:
            return RetryVerdict(DeliveryState.FAILED, charged=charged)
        attempts += 1 if charged else 0
        next_at = next_sms_attempt(self.retry, policy, attempts, now, charged=charged)
        if next_at is None:
            return RetryVerdict(DeliveryState.FAILED, charged=charged,
                                reason=f"gave up after {attempts} attempts: {failure.reason}")
        return RetryVerdict(DeliveryState.PENDING, next_at, charged=charged)


class VoicePolicy:
    """A confirmed call ends it; an answer without confirmation, or a failure, calls again under the rules above.

    ``attempts`` and ``submissions`` are the claim's: ``submissions`` already counts
    this try, which gives its count back when it placed no call.
    """

    def after_success(self, policy: AlertPolicy, attempts: int, submissions: int, receipt: SubmitReceipt,
                      now: dt.datetime) -> RetryVerdict:
        if receipt.outcome == AttemptOutcome.CONFIRMED:
            return RetryVerdict(DeliveryState.CONFIRMED)
        # A receipt means someone (or a mailbox) heard the message: answered or voicemail.
        next_at = next_call(policy, attempts + 1, submissions, now, heard=True)
        if next_at is None:
            # The delivery ends as what the call was: answered or voicemail.
            return RetryVerdict(DeliveryState(receipt.outcome))
        return RetryVerdict(DeliveryState.PENDING, next_at, reason=f"{receipt.outcome}, not confirmed: calling again")

    def after_failure(self, policy: AlertPolicy, attempts: int, submissions: int, failure: DeliveryFailed,
                      now: dt.datetime) -> RetryVerdict:
        placed = failure.outcome not in NOT_PLACED
        charged = failure.charge_attempt and placed
        next_at = next_call(policy, attempts + (1 if charged else 0), submissions if placed else submissions - 1,
                            now, permanent=failure.permanent, charged=charged,
                            rejected=failure.cause in RETRY_AT_MOST_ONCE_CAUSES)
        if next_at is None:
            return RetryVerdict(DeliveryState.FAILED, charged=charged, reason=f"gave up: {failure.reason}",
                                placed=placed)
        return RetryVerdict(DeliveryState.PENDING, next_at, charged=charged, placed=placed)
