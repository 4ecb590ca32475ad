"""Every row of the Q.850 policy table and every OriginateResponse Reason."""
import pytest

from asterisk.outcomes import OUTCOMES, classify_call
from asterisk.q850 import Q850_CAUSES, cause_text, originate_reason_for_cause

# cause -> (outcome, permanent, charge_attempt, retry_at_most_once)
TABLE = {
    1: ("invalid_number", True, True, False),
    17: ("busy", False, True, False),
    18: ("no_answer", False, True, False),
    19: ("no_answer", False, True, False),
    21: ("failed", False, True, True),
    27: ("failed", False, True, False),
    28: ("invalid_number", True, True, False),
    31: ("failed", False, True, False),
    34: ("congestion", False, False, False),
    38: ("failed", False, False, False),
    41: ("congestion", False, False, False),
    42: ("congestion", False, False, False),
}


@pytest.mark.parametrize("cause", sorted(TABLE))
def test_policy_table_row(cause):
    outcome = classify_call(originate_reason_for_cause(cause), cause, None, answered=False)
    expected = TABLE[cause]
    assert (outcome.outcome, outcome.permanent, outcome.charge_attempt,
            outcome.retry_at_most_once) == expected
    assert f"Q.850 {cause} {cause_text(cause).lower()}" in outcome.reason
    assert outcome.cause == cause
    assert outcome.outcome in OUTCOMES


@pytest.mark.parametrize("cause", [34, 38, 41, 42])
def test_trunk_side_causes_are_marked(cause):
    outcome = classify_call(None, cause, None, False)
    assert outcome.trunk_side and not outcome.charge_attempt


def test_busy_reason_string():
    assert classify_call(0, 17, None, False).reason == "busy (Q.850 17 user busy)"


def test_cause_16_done_if_answered_else_as_31():
    assert classify_call(4, 16, None, True).outcome == "answered"
    unanswered = classify_call(0, 16, None, False)
    assert unanswered.outcome == "failed" and unanswered.charge_attempt and not unanswered.permanent


def test_pjsip_busy_reason_0_with_cause_17_is_busy():
    # The reference: decide from the Hangup cause, not from Reason alone.
    assert classify_call(0, 17, None, False).outcome == "busy"


@pytest.mark.parametrize("reason,outcome,charge", [
    (0, "failed", False),        # channel request failed: never left us
    (1, "failed", True),
    (3, "no_answer", True),
    (4, "answered", True),
    (5, "busy", True),
    (8, "congestion", False),
])
def test_reason_without_cause(reason, outcome, charge):
    result = classify_call(reason, None, None, answered=False)
    assert result.outcome == outcome
    assert result.charge_attempt is charge
    assert not result.permanent


def test_cause_0_falls_back_to_reason():
    # Local channels: ;1 hangs up with cause 0 while ;2 carries 17 (transcript).
    assert classify_call(5, 0, None, False).outcome == "busy"


def test_nothing_known_is_failed():
    assert classify_call(None, None, None, False).outcome == "failed"


@pytest.mark.parametrize("result,outcome", [("confirmed", "confirmed"), ("listened", "answered"),
                                            ("voicemail", "voicemail")])
def test_user_event_results(result, outcome):
    classified = classify_call(4, 16, {"Result": result, "Digit": "1"}, True)
    assert classified.outcome == outcome
    assert classified.delivered


def test_confirmed_reason_names_digit():
    assert "pressing 1" in classify_call(4, 16, {"Result": "confirmed", "Digit": "1"}, True).reason


def test_playback_error_is_a_failure_on_our_side_not_a_delivery():
    # The dialplan's Result: error means the callee answered and heard silence.
    classified = classify_call(4, 16, {"Result": "error", "Digit": ""}, True)
    assert classified.outcome == "failed" and not classified.delivered
    assert not classified.permanent and not classified.charge_attempt
    assert classified.line_fault and not classified.trunk_side
    assert "could not be played" in classified.reason


def test_unknown_user_event_result_uses_answer():
    assert classify_call(4, 16, {"Result": "something-new"}, True).outcome == "answered"


def test_originate_reason_matches_pbx_c():
    assert originate_reason_for_cause(17) == 5
    assert originate_reason_for_cause(19) == 3
    for cause in (21, 27, 34, 38, 41, 42):
        assert originate_reason_for_cause(cause) == 8
    for cause in (1, 3, 18, 28, 16):
        assert originate_reason_for_cause(cause) == 0
    assert originate_reason_for_cause(16, answered=True) == 4


def test_cause_names_match_asterisk_transcript():
    assert Q850_CAUSES[16] == "Normal Clearing"
    assert Q850_CAUSES[17] == "User busy"
    assert Q850_CAUSES[19] == "User alerting, no answer"
    assert Q850_CAUSES[0] == "Unknown"
    assert cause_text(250) == "Cause 250"
