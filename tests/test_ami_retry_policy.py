import datetime as dt

import pytest

from asterisk.outcomes import classify_call
from asterisk.retry_policy import RetryPolicy, next_attempt
from asterisk.voice_policy import VoicePolicy
from gateway.core.channels import DeliveryFailed
from gateway.core.failures import Failure, FailureKind
from gateway.core.policy import AlertPolicy
from gateway.core.states import AttemptOutcome

NOW = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
BUSY = classify_call(5, 17, None, False)
CONGESTION = classify_call(8, 34, None, False)
REJECTED = classify_call(8, 21, None, False)
CONFIRMED = classify_call(4, 16, {"Result": "confirmed", "Digit": "1"}, True)
LISTENED = classify_call(4, 16, {"Result": "listened"}, True)
INVALID = classify_call(0, 1, None, False)


def seconds_until(when):
    return (when - NOW).total_seconds()


def test_interval_grows():
    policy = RetryPolicy(interval_seconds=300, growth=1.5)
    assert seconds_until(next_attempt(policy, 1, 1, BUSY, NOW)) == 300
    assert seconds_until(next_attempt(policy, 2, 2, BUSY, NOW)) == 450
    assert seconds_until(next_attempt(policy, 3, 3, BUSY, NOW)) == 675


def test_interval_is_capped():
    policy = RetryPolicy(max_attempts=50, per_number_cap=60, interval_seconds=300, growth=3,
                         max_interval_seconds=1000)
    assert seconds_until(next_attempt(policy, 10, 10, BUSY, NOW)) == 1000


def test_gives_up_after_max_attempts():
    policy = RetryPolicy(max_attempts=3)
    assert next_attempt(policy, 2, 2, BUSY, NOW) is not None
    assert next_attempt(policy, 3, 3, BUSY, NOW) is None


def test_trunk_failure_retried_soon_without_charge():
    policy = RetryPolicy(trunk_retry_seconds=30)
    assert seconds_until(next_attempt(policy, 0, 1, CONGESTION, NOW)) == 30


def test_hard_cap_on_calls_placed_even_uncharged():
    policy = RetryPolicy(per_number_cap=4)
    assert next_attempt(policy, 0, 3, CONGESTION, NOW) is not None
    assert next_attempt(policy, 0, 4, CONGESTION, NOW) is None


def test_never_after_deadline():
    policy = RetryPolicy(deadline=NOW + dt.timedelta(seconds=200))
    assert next_attempt(policy, 1, 1, BUSY, NOW) is None          # 300 s would pass it
    assert next_attempt(policy, 0, 1, CONGESTION, NOW) is not None  # 30 s fits
    assert next_attempt(policy, 0, 1, CONGESTION, NOW + dt.timedelta(seconds=200)) is None


def test_confirmed_and_permanent_stop():
    policy = RetryPolicy()
    assert next_attempt(policy, 1, 1, CONFIRMED, NOW) is None
    assert next_attempt(policy, 1, 1, INVALID, NOW) is None


def test_stop_on_confirm_controls_answered():
    assert next_attempt(RetryPolicy(stop_on_confirm=True), 1, 1, LISTENED, NOW) is not None
    assert next_attempt(RetryPolicy(stop_on_confirm=False), 1, 1, LISTENED, NOW) is None


def test_rejection_retried_at_most_once():
    policy = RetryPolicy()
    assert next_attempt(policy, 1, 1, REJECTED, NOW) is not None
    assert next_attempt(policy, 2, 2, REJECTED, NOW) is None


def test_invalid_policy_refused():
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(growth=0.5)


# --- VoicePolicy: the decision rebuilt from what DeliveryFailed carries ---------------
ALERT = AlertPolicy(max_attempts=5, deadline=None, voice_interval=60, voice_growth=1.0, voice_cap=8)


def test_voice_policy_retries_a_rejected_call_once_from_the_failure_cause():
    rejected = DeliveryFailed(Failure(FailureKind.CALL, "call rejected (Q.850 21 call rejected)", 21),
                              line="trunk1")
    first = VoicePolicy().after_failure(ALERT, 0, 1, rejected, NOW)
    second = VoicePolicy().after_failure(ALERT, 1, 2, rejected, NOW)
    assert first.state == "pending" and second.state == "failed"
    # Another failure with the same code and no rejection cause is retried as usual.
    other = DeliveryFailed(Failure(FailureKind.CALL, "failed (Q.850 31)", 31), line="trunk1")
    assert VoicePolicy().after_failure(ALERT, 1, 2, other, NOW).state == "pending"


def test_voice_policy_calls_never_placed_are_neither_charged_nor_capped():
    never_placed = DeliveryFailed(Failure(FailureKind.NO_LINE, "no voice trunk free"),
                                  outcome=AttemptOutcome.NO_LINE, charge_attempt=True)
    # The claim counted this try as the 8th submission; it placed no call.
    verdict = VoicePolicy().after_failure(ALERT, 2, 8, never_placed, NOW)
    assert verdict.state == "pending" and not verdict.charged and not verdict.placed
    placed = DeliveryFailed(Failure(FailureKind.CALL, "busy", 17), outcome=AttemptOutcome.BUSY)
    at_cap = VoicePolicy().after_failure(ALERT, 2, 8, placed, NOW)
    assert at_cap.state == "failed" and at_cap.placed
