"""The retry rules of both channels (gateway/core/retry.py), fed with real call outcomes.

Voice failures are built from ``classify_call`` the way the voice channel raises them,
so the rules are checked against what Asterisk really reports.
"""
import dataclasses
import datetime as dt

from asterisk.outcomes import CallOutcome, classify_call
from gateway.core.alerts import AlertRequest, Target
from gateway.core.channels import DeliveryFailed, SubmitReceipt
from gateway.core.config import SCHEMA, parse_config
from gateway.core.failures import Failure, FailureKind
from gateway.core.retry import (MAX_CALL_INTERVAL, AlertPolicy, RetryVerdict, SmsPolicy, SmsRetry, VoicePolicy)
from gateway.core.states import AttemptOutcome

NOW = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
BUSY = classify_call(5, 17, None, False)
CONGESTION = classify_call(8, 34, None, False)
REJECTED = classify_call(8, 21, None, False)
INVALID = classify_call(0, 1, None, False)


def alert_policy(**changes) -> AlertPolicy:
    """An alert's policy with the configuration's defaults, as the CLI and the panel fill it."""
    voice = parse_config({}).voice
    values = dict(max_attempts=voice.max_attempts, deadline=None, voice_interval=voice.interval,
                  voice_growth=voice.growth, voice_cap=voice.per_number_cap,
                  stop_on_confirm=voice.stop_on_confirm, sms_fallback=voice.sms_fallback)
    return AlertPolicy(**{**values, **changes})


def failed(outcome: CallOutcome) -> DeliveryFailed:
    """The failure VoiceChannel raises for this outcome."""
    return DeliveryFailed(outcome.failure, outcome=outcome.outcome, line="trunk1",
                          charge_attempt=outcome.charge_attempt, cause=outcome.cause)


def after_call(policy: AlertPolicy, attempts: int, calls: int, outcome: CallOutcome, now=NOW) -> RetryVerdict:
    """``attempts`` charged before this call; ``calls`` placed, this one included."""
    return VoicePolicy().after_failure(policy, attempts, calls, failed(outcome), now)


def seconds_until(verdict: RetryVerdict) -> float:
    assert verdict.retry, verdict
    return (verdict.next_attempt_at - NOW).total_seconds()


# --- voice --------------------------------------------------------------------------
def test_the_configured_per_number_cap_is_the_one_every_alert_gets():
    # Once 10 in asterisk/retry_policy.py, 8 in the schema, the alert row and the README.
    assert SCHEMA["voice"]["per_number_cap"].default == 8
    assert AlertRequest(text="x", target=Target()).voice_cap == 8 == alert_policy().voice_cap


def test_interval_grows():
    policy = alert_policy(voice_interval=300, voice_growth=1.5)
    assert seconds_until(after_call(policy, 0, 1, BUSY)) == 300
    assert seconds_until(after_call(policy, 1, 2, BUSY)) == 450
    assert seconds_until(after_call(policy, 2, 3, BUSY)) == 675


def test_interval_is_capped_at_an_hour():
    policy = alert_policy(max_attempts=50, voice_cap=60, voice_interval=300, voice_growth=3)
    assert seconds_until(after_call(policy, 9, 10, BUSY)) == MAX_CALL_INTERVAL


def test_gives_up_after_max_attempts():
    policy = alert_policy(max_attempts=3)
    assert after_call(policy, 1, 2, BUSY).state == "pending"
    verdict = after_call(policy, 2, 3, BUSY)
    assert verdict.state == "failed" and verdict.charged and verdict.reason.startswith("gave up: busy")


def test_trunk_failure_retried_soon_without_charge():
    verdict = after_call(alert_policy(), 0, 1, CONGESTION)
    assert seconds_until(verdict) == 30 and not verdict.charged and verdict.placed
    # An alert calling back sooner than that retries the trunk as soon, but never in under a second.
    assert seconds_until(after_call(alert_policy(voice_interval=10), 0, 1, CONGESTION)) == 10
    assert seconds_until(after_call(alert_policy(voice_interval=0), 0, 1, CONGESTION)) == 1


def test_hard_cap_on_calls_placed_even_uncharged():
    policy = alert_policy(voice_cap=4)
    assert after_call(policy, 0, 3, CONGESTION).state == "pending"
    assert after_call(policy, 0, 4, CONGESTION).state == "failed"


def test_never_after_deadline():
    policy = alert_policy(deadline=NOW + dt.timedelta(seconds=200))
    assert after_call(policy, 0, 1, BUSY).state == "failed"            # 300 s would pass it
    assert after_call(policy, 0, 1, CONGESTION).state == "pending"     # 30 s fits
    assert after_call(policy, 0, 1, CONGESTION, NOW + dt.timedelta(seconds=200)).state == "failed"


def test_confirmed_and_permanent_stop():
    assert VoicePolicy().after_success(alert_policy(), 0, 1, SubmitReceipt(line="t", outcome="confirmed"),
                                       NOW) == RetryVerdict("confirmed")
    assert after_call(alert_policy(), 0, 1, INVALID).state == "failed"


def test_stop_on_confirm_controls_answered():
    answered = SubmitReceipt(line="trunk1", outcome="answered")
    again = VoicePolicy().after_success(alert_policy(stop_on_confirm=True), 0, 1, answered, NOW)
    assert again.state == "pending" and again.reason == "answered, not confirmed: calling again"
    assert VoicePolicy().after_success(alert_policy(stop_on_confirm=False), 0, 1, answered, NOW).state == "answered"


def test_rejection_retried_at_most_once():
    assert after_call(alert_policy(), 0, 1, REJECTED).state == "pending"
    assert after_call(alert_policy(), 1, 2, REJECTED).state == "failed"


def test_a_negative_interval_calls_back_without_waiting_not_in_the_past():
    assert seconds_until(after_call(alert_policy(voice_interval=-60, voice_growth=0.5), 1, 2, BUSY)) == 0


def test_voice_policy_retries_a_rejected_call_once_from_the_failure_cause():
    policy = alert_policy(voice_interval=60, voice_growth=1.0)
    rejected = DeliveryFailed(Failure(FailureKind.CALL, "call rejected (Q.850 21 call rejected)", 21),
                              line="trunk1")
    first = VoicePolicy().after_failure(policy, 0, 1, rejected, NOW)
    second = VoicePolicy().after_failure(policy, 1, 2, rejected, NOW)
    assert first.state == "pending" and second.state == "failed"
    # Another failure with the same code and no rejection cause is retried as usual.
    other = DeliveryFailed(Failure(FailureKind.CALL, "failed (Q.850 31)", 31), line="trunk1")
    assert VoicePolicy().after_failure(policy, 1, 2, other, NOW).state == "pending"


def test_voice_policy_calls_never_placed_are_neither_charged_nor_capped():
    policy = alert_policy(voice_interval=60, voice_growth=1.0, voice_cap=8)
    never_placed = DeliveryFailed(Failure(FailureKind.NO_LINE, "no voice trunk free"),
                                  outcome=AttemptOutcome.NO_LINE, charge_attempt=True)
    # The claim counted this try as the 8th submission; it placed no call.
    verdict = VoicePolicy().after_failure(policy, 2, 8, never_placed, NOW)
    assert verdict.state == "pending" and not verdict.charged and not verdict.placed
    placed = DeliveryFailed(Failure(FailureKind.CALL, "busy", 17), outcome=AttemptOutcome.BUSY)
    at_cap = VoicePolicy().after_failure(policy, 2, 8, placed, NOW)
    assert at_cap.state == "failed" and at_cap.placed


# --- SMS ----------------------------------------------------------------------------
def sms_policy(**changes) -> SmsPolicy:
    return SmsPolicy(SmsRetry.from_config(dataclasses.replace(parse_config({}).retry, **changes)))


TRANSIENT = DeliveryFailed(Failure(FailureKind.CMS, "network out of order", 38))


def test_sms_retries_back_off_up_to_the_longest_delay():
    policy = sms_policy(initial_delay=30, backoff=2, max_delay=100, max_attempts=10)
    alert = alert_policy(max_attempts=10)
    waits = [seconds_until(policy.after_failure(alert, n, 1, TRANSIENT, NOW)) for n in range(4)]
    assert waits == [30, 60, 100, 100]


def test_sms_gives_up_at_the_fewer_of_the_configured_and_the_alert_attempts():
    alert = alert_policy(max_attempts=2)
    assert sms_policy(max_attempts=5).after_failure(alert, 0, 1, TRANSIENT, NOW).state == "pending"
    verdict = sms_policy(max_attempts=5).after_failure(alert, 1, 2, TRANSIENT, NOW)
    assert verdict.state == "failed" and verdict.reason == f"gave up after 2 attempts: {TRANSIENT.reason}"
    assert sms_policy(max_attempts=1).after_failure(alert_policy(), 0, 1, TRANSIENT, NOW).state == "failed"


def test_sms_failure_on_our_side_is_retried_soon_without_charge():
    gone = DeliveryFailed(Failure(FailureKind.LINE, "modem gone"), charge_attempt=False)
    verdict = sms_policy(initial_delay=30).after_failure(alert_policy(max_attempts=1), 0, 1, gone, NOW)
    assert seconds_until(verdict) == 5 and not verdict.charged


def test_sms_permanent_failure_and_deadline_stop():
    refused = DeliveryFailed(Failure(FailureKind.CMS, "unassigned number", 1, permanent=True))
    assert sms_policy().after_failure(alert_policy(), 0, 1, refused, NOW).state == "failed"
    soon = alert_policy(deadline=NOW + dt.timedelta(seconds=10))
    assert sms_policy(initial_delay=30).after_failure(soon, 0, 1, TRANSIENT, NOW).state == "failed"
    assert sms_policy().after_success(soon, 0, 1, SubmitReceipt(line="m"), NOW) == RetryVerdict("sent")
