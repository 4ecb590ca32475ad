"""The voice channel's retry decision: the dispatcher's policy for 'voice' deliveries."""
from __future__ import annotations

import datetime as dt

from asterisk.outcomes import CallOutcome
from asterisk.retry_policy import RetryPolicy, next_attempt
from gateway.channels import DeliveryFailed, SubmitReceipt
from gateway.policy import AlertPolicy, Verdict

# Codes VoiceChannel uses when no call reached the trunk.
_NOT_PLACED = {"no_line", "no_route"}


def _retry_policy(policy: AlertPolicy) -> RetryPolicy:
    return RetryPolicy(max_attempts=policy.max_attempts, interval_seconds=policy.voice_interval,
                       growth=max(1.0, policy.voice_growth), per_number_cap=policy.voice_cap,
                       deadline=policy.deadline, stop_on_confirm=policy.stop_on_confirm,
                       trunk_retry_seconds=min(30.0, max(1.0, policy.voice_interval)))


class VoicePolicy:
    def after_success(self, policy: AlertPolicy, attempts: int, submissions: int, receipt: SubmitReceipt,
                      now: dt.datetime) -> Verdict:
        outcome = CallOutcome(outcome=receipt.outcome, reason=receipt.outcome)
        if receipt.outcome == "confirmed":
            return Verdict("confirmed")
        next_at = next_attempt(_retry_policy(policy), attempts + 1, submissions, outcome, now)
        if next_at is None:
            return Verdict(receipt.outcome)
        return Verdict("pending", next_at, reason=f"{receipt.outcome}, not confirmed: calling again")

    def after_failure(self, policy: AlertPolicy, attempts: int, submissions: int, failure: DeliveryFailed,
                      now: dt.datetime) -> Verdict:
        charged = failure.charge_attempt and failure.code not in _NOT_PLACED
        outcome = CallOutcome(outcome=failure.code or "failed", reason=failure.reason, permanent=failure.permanent,
                              charge_attempt=charged)
        next_at = next_attempt(_retry_policy(policy), attempts + (1 if charged else 0), submissions, outcome, now)
        if next_at is None:
            return Verdict("failed", charged=charged, reason=f"gave up: {failure.reason}")
        return Verdict("pending", next_at, charged=charged)
