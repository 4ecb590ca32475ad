"""The voice channel's retry decision: the dispatcher's policy for 'voice' deliveries."""
from __future__ import annotations

import datetime as dt

from asterisk.outcomes import RETRY_AT_MOST_ONCE_CAUSES, CallOutcome
from asterisk.retry_policy import RetryPolicy, next_attempt
from gateway.core.channels import DeliveryFailed, SubmitReceipt
from gateway.core.policy import AlertPolicy, Verdict
from gateway.core.states import AttemptOutcome, DeliveryState

# Outcomes VoiceChannel gives when no call reached the trunk: neither charged to the
# recipient nor counted as a call placed (the per-number cap counts real calls).
_NOT_PLACED = {AttemptOutcome.NO_LINE, AttemptOutcome.NO_ROUTE}


def _retry_policy(policy: AlertPolicy) -> RetryPolicy:
    return RetryPolicy(max_attempts=policy.max_attempts, interval_seconds=policy.voice_interval,
                       growth=max(1.0, policy.voice_growth), per_number_cap=policy.voice_cap,
                       deadline=policy.deadline, stop_on_confirm=policy.stop_on_confirm,
                       trunk_retry_seconds=min(30.0, max(1.0, policy.voice_interval)))


def failure_outcome(failure: DeliveryFailed) -> CallOutcome:
    """The call's outcome again, from what ``DeliveryFailed`` carries across the contract."""
    placed = failure.outcome not in _NOT_PLACED
    return CallOutcome(outcome=failure.outcome, reason=failure.reason, permanent=failure.permanent,
                       charge_attempt=failure.charge_attempt and placed,
                       retry_at_most_once=failure.cause in RETRY_AT_MOST_ONCE_CAUSES, cause=failure.cause)


class VoicePolicy:
    def after_success(self, policy: AlertPolicy, attempts: int, submissions: int, receipt: SubmitReceipt,
                      now: dt.datetime) -> Verdict:
        outcome = CallOutcome(outcome=receipt.outcome, reason=receipt.outcome, cause=receipt.cause)
        if receipt.outcome == AttemptOutcome.CONFIRMED:
            return Verdict(DeliveryState.CONFIRMED)
        next_at = next_attempt(_retry_policy(policy), attempts + 1, submissions, outcome, now)
        if next_at is None:
            # A call that was heard ends the delivery as what it was: answered or voicemail.
            return Verdict(DeliveryState(receipt.outcome))
        return Verdict(DeliveryState.PENDING, next_at, reason=f"{receipt.outcome}, not confirmed: calling again")

    def after_failure(self, policy: AlertPolicy, attempts: int, submissions: int, failure: DeliveryFailed,
                      now: dt.datetime) -> Verdict:
        outcome = failure_outcome(failure)
        placed = failure.outcome not in _NOT_PLACED
        # ``submissions`` counted this try at claim time; a call never placed gives it back.
        calls_placed = submissions if placed else submissions - 1
        charged = outcome.charge_attempt
        next_at = next_attempt(_retry_policy(policy), attempts + (1 if charged else 0), calls_placed, outcome, now)
        if next_at is None:
            return Verdict(DeliveryState.FAILED, charged=charged, reason=f"gave up: {failure.reason}", placed=placed)
        return Verdict(DeliveryState.PENDING, next_at, charged=charged, placed=placed)
