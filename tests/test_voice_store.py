"""What the store does around a voice attempt: deadlines, cancellation, calls never placed.

These go through the real Store over a migrated SQLite database; the end-to-end
versions (engine + PBX simulator) are in tests/test_engine_voice.py.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from gateway.core.alerts import AlertRequest, Target
from gateway.core.channels import DeliveryFailed, SubmitReceipt
from gateway.core.db import utcnow
from gateway.core.failures import Failure, FailureKind
from gateway.core.models import Alert, Attempt, Delivery
from gateway.core.retry import RetryVerdict, VoicePolicy
from gateway.core.states import AttemptOutcome
from gateway.core.store import DEADLINE_PASSED, Store
import pytest

# Run on SQLite and on PostgreSQL (conftest.py, tests/pg_support.py).
pytestmark = pytest.mark.both_databases

NOW = dt.datetime(2026, 5, 1, 12, 0)


def voice_alert(services, tmp_path, **overrides) -> int:
    (tmp_path / "msg.wav").write_bytes(b"")
    values = dict(text="Allerta", channels=("voice",), target=Target(everyone=True),
                  audio_path=str(tmp_path / "msg"), audio_seconds=3.0, audio_source="tts", voice_cap=2)
    values.update(overrides)
    alert_id, _ = services.alerts.create(AlertRequest(**values))
    return alert_id


def past_deadline(services, alert_id: int) -> None:
    # The deadline passed while the engine was elsewhere (stopped, busy on other alerts).
    with services.sessions.begin() as s:
        s.execute(update(Alert).where(Alert.id == alert_id).values(deadline=utcnow() - dt.timedelta(minutes=1)))


def deliveries(services, alert_id: int) -> list[Delivery]:
    with services.sessions() as s:
        return list(s.scalars(select(Delivery).where(Delivery.alert_id == alert_id).order_by(Delivery.id)))


def test_deadline_passed_voice_is_not_claimed_and_mobiles_fall_back_to_sms(contacts, tmp_path):
    alert_id = voice_alert(contacts, tmp_path, sms_fallback=True)
    past_deadline(contacts, alert_id)
    store = Store(contacts.sessions)
    assert store.claim("voice", 10) == []
    rows = deliveries(contacts, alert_id)
    voice = [d for d in rows if d.channel == "voice"]
    assert voice and {(d.state, d.last_error) for d in voice} == {("failed", DEADLINE_PASSED)}
    # The mobiles get the SMS version, which the deadline does not stop: it is what is left.
    mobiles = {d.e164 for d in voice if d.e164.startswith("+393")}
    sms = [d for d in rows if d.channel == "sms"]
    assert {d.e164 for d in sms} == mobiles and {d.state for d in sms} == {"pending"}
    assert {c.e164 for c in store.claim("sms", 10)} == mobiles


def test_sms_alert_past_its_deadline_stops_too(contacts):
    alert_id, _ = contacts.alerts.create(AlertRequest(text="x", target=Target(everyone=True)))
    past_deadline(contacts, alert_id)
    assert Store(contacts.sessions).claim("sms", 10) == []
    assert {(d.state, d.last_error) for d in deliveries(contacts, alert_id)} == {("failed", DEADLINE_PASSED)}


def test_deadline_keeps_the_best_outcome_a_number_had(contacts, tmp_path):
    alert_id = voice_alert(contacts, tmp_path, voice_cap=5)
    store = Store(contacts.sessions)
    claim = store.claim("voice", 1)[0]
    receipt = SubmitReceipt(line="trunk1", outcome="answered")
    verdict = VoicePolicy().after_success(claim.policy, claim.attempts, claim.submissions, receipt, utcnow())
    assert store.record_result(claim, verdict, receipt=receipt) == "pending"   # not confirmed: again
    past_deadline(contacts, alert_id)
    assert store.expire_past_deadline() >= 1
    states = {d.id: d.state for d in deliveries(contacts, alert_id)}
    assert states[claim.delivery_id] == "answered"
    assert set(states.values()) == {"answered", "failed"}


def test_call_in_flight_when_the_alert_is_cancelled_ends_cancelled_without_fallback(contacts, tmp_path):
    alert_id = voice_alert(contacts, tmp_path, sms_fallback=True)
    store = Store(contacts.sessions)
    claims = store.claim("voice", 10)
    mobile = next(c for c in claims if c.e164.startswith("+393"))
    contacts.alerts.cancel(alert_id)
    # The call was busy: the policy would call again, and a mobile giving up would get an SMS.
    failure = DeliveryFailed(Failure(FailureKind.CALL, "busy (Q.850 17 user busy)", 17), outcome=AttemptOutcome.BUSY,
                             line="trunk1", started_at=NOW)
    verdict = VoicePolicy().after_failure(mobile.policy, mobile.attempts, mobile.submissions, failure, utcnow())
    assert verdict.state == "pending"
    assert store.record_result(mobile, verdict, failure=failure) == "cancelled"
    gave_up = RetryVerdict("failed", reason="gave up: busy")
    for other in claims:
        if other is not mobile:
            assert store.record_result(other, gave_up, failure=failure) == "cancelled"
    rows = deliveries(contacts, alert_id)
    assert {d.state for d in rows} == {"cancelled"} and not [d for d in rows if d.channel == "sms"]
    with contacts.sessions() as s:
        attempt = s.get(Attempt, mobile.attempt_id)
    assert attempt.outcome == "busy" and attempt.cause == "17"   # the attempt itself stays on record
    assert store.claim("voice", 10) == []


def test_pending_delivery_of_a_cancelled_alert_is_never_claimed(contacts, tmp_path):
    alert_id = voice_alert(contacts, tmp_path)
    contacts.alerts.cancel(alert_id)
    # Whatever put it back to pending (an older engine, a manual fix), the alert says stop.
    with contacts.sessions.begin() as s:
        s.execute(update(Delivery).where(Delivery.alert_id == alert_id).values(state="pending"))
    assert Store(contacts.sessions).claim("voice", 10) == []


def test_failed_attempt_stores_the_q850_cause_and_the_line_times(contacts, tmp_path):
    voice_alert(contacts, tmp_path)
    store = Store(contacts.sessions)
    claim = store.claim("voice", 1)[0]
    answered = NOW + dt.timedelta(seconds=7)
    failure = DeliveryFailed(Failure(FailureKind.LINE, "answered, but the message could not be played"),
                             line="trunk1", charge_attempt=False, cause=16, started_at=NOW, answered_at=answered)
    verdict = VoicePolicy().after_failure(claim.policy, claim.attempts, claim.submissions, failure, utcnow())
    store.record_result(claim, verdict, failure=failure)
    with contacts.sessions() as s:
        attempt = s.get(Attempt, claim.attempt_id)
    assert (attempt.outcome, attempt.cause) == ("failed", "16")
    assert attempt.started_at == NOW and attempt.answered_at == answered


def test_calls_never_placed_do_not_count_toward_the_cap(contacts, tmp_path):
    voice_alert(contacts, tmp_path, voice_cap=2)
    store = Store(contacts.sessions)
    policy = VoicePolicy()
    no_line = DeliveryFailed(Failure(FailureKind.NO_LINE, "no voice trunk free (AMI link down)"),
                             outcome=AttemptOutcome.NO_LINE, charge_attempt=False)
    claim = store.claim("voice", 1)[0]
    # Five rounds without a free trunk: each claim counts a submission, each gives it back.
    for _ in range(5):
        verdict = policy.after_failure(claim.policy, claim.attempts, claim.submissions, no_line, utcnow())
        assert verdict.state == "pending" and not verdict.charged and not verdict.placed
        assert store.record_result(claim, verdict, failure=no_line) == "pending"
        with contacts.sessions.begin() as s:   # due now, not in 30 s
            s.execute(update(Delivery).where(Delivery.id == claim.delivery_id).values(next_attempt_at=None))
        [claim] = [c for c in store.claim("voice", 10) if c.delivery_id == claim.delivery_id]
    assert claim.submissions == 1 and claim.attempts == 0   # this claim is the first real call


def test_a_number_opted_out_while_its_call_was_up_gets_no_fallback_sms(contacts, tmp_path):
    from gateway.core.models import PhoneNumberRow
    alert_id = voice_alert(contacts, tmp_path, sms_fallback=True, voice_cap=1)
    store = Store(contacts.sessions)
    claims = [c for c in store.claim("voice", 10) if c.e164.startswith("+393")]
    assert len(claims) >= 2
    opted, kept = claims[0], claims[1]
    with contacts.sessions.begin() as s:
        s.execute(update(PhoneNumberRow).where(PhoneNumberRow.id == opted.number_id).values(opted_out=True))
    failure = DeliveryFailed(Failure(FailureKind.CALL, "no answer", 19), outcome=AttemptOutcome.NO_ANSWER,
                             line="trunk1")
    for claim in (opted, kept):
        verdict = VoicePolicy().after_failure(claim.policy, claim.attempts, claim.submissions, failure, utcnow())
        store.record_result(claim, verdict, failure=failure)
    sms = {d.e164 for d in deliveries(contacts, alert_id) if d.channel == "sms"}
    assert kept.e164 in sms and opted.e164 not in sms


def test_crash_during_the_last_call_allowed_applies_the_sms_fallback(contacts, tmp_path):
    """The engine died during each number's last call the cap allowed: voice gives up at restart,
    and the mobiles get the SMS version, as when voice gives up while the engine runs."""
    alert_id = voice_alert(contacts, tmp_path, sms_fallback=True, voice_cap=1)
    store = Store(contacts.sessions)
    claims = store.claim("voice", 10)           # every call in flight, each the cap's only one
    answered = next(c for c in claims if c.e164.startswith("+393"))
    with contacts.sessions.begin() as s:
        # An earlier call to this mobile was answered (not confirmed): that outcome is its final word.
        s.add(Attempt(delivery_id=answered.delivery_id, channel="voice", line="trunk1", outcome="answered",
                      cause="16", ended_at=NOW))
    assert store.recover_interrupted() == 0
    rows = deliveries(contacts, alert_id)
    voice = {d.e164: d for d in rows if d.channel == "voice"}
    assert voice[answered.e164].state == "answered"
    assert all(d.state == "failed" for e164, d in voice.items() if e164 != answered.e164)
    assert all(d.possible_duplicate for d in voice.values())
    mobiles = {e164 for e164 in voice if e164.startswith("+393")}
    assert len(mobiles) >= 2 and len(voice) > len(mobiles)   # a landline too: it gets no SMS
    sms = {d.e164: d for d in rows if d.channel == "sms"}
    assert set(sms) == mobiles and {d.state for d in sms.values()} == {"pending"}
    assert {c.e164 for c in store.claim("sms", 10)} == mobiles
    assert store.claim("voice", 10) == []


def test_a_confirmation_learned_late_cancels_the_fallback_sms_not_yet_sent(contacts, tmp_path):
    """The engine died during the cap's last call; voice gave up at restart and wrote the SMS
    fallback; then the call, followed to its end, was confirmed: the SMS is not sent."""
    alert_id = voice_alert(contacts, tmp_path, sms_fallback=True, voice_cap=1)
    store = Store(contacts.sessions)
    claims = store.claim("voice", 10)
    mobiles = [c for c in claims if c.e164.startswith("+393")]
    store.recover_interrupted()
    confirmed, other = mobiles[0], mobiles[1]
    assert store.record_late_call_outcome(confirmed.attempt_id, AttemptOutcome.CONFIRMED) == "confirmed"
    sms = {d.e164: d for d in deliveries(contacts, alert_id) if d.channel == "sms"}
    assert sms[confirmed.e164].state == "cancelled" and "confirmed" in sms[confirmed.e164].last_error
    assert sms[other.e164].state == "pending"
    assert confirmed.e164 not in {c.e164 for c in store.claim("sms", 10)}


def test_crash_with_the_cap_not_reached_and_no_fallback_retries_the_call(contacts, tmp_path):
    alert_id = voice_alert(contacts, tmp_path, sms_fallback=False, voice_cap=1)
    store = Store(contacts.sessions)
    store.claim("voice", 10)
    store.recover_interrupted()
    assert {d.channel for d in deliveries(contacts, alert_id)} == {"voice"}   # no fallback asked for
    alert_id = voice_alert(contacts, tmp_path, voice_cap=3)
    claimed = {c.delivery_id for c in store.claim("voice", 10)}
    assert store.recover_interrupted() == len(claimed)
    assert {d.state for d in deliveries(contacts, alert_id)} == {"pending"}


def test_crash_after_a_cancel_leaves_the_interrupted_rows_cancelled(contacts, tmp_path):
    alert_id = voice_alert(contacts, tmp_path, sms_fallback=True, voice_cap=3)
    sms_id, _ = contacts.alerts.create(AlertRequest(text="Allerta", target=Target(everyone=True)))
    store = Store(contacts.sessions)
    in_flight = store.claim("voice", 10) + store.claim("sms", 10)
    assert in_flight
    contacts.alerts.cancel(alert_id)
    contacts.alerts.cancel(sms_id)
    # The engine died before the attempts ended: the rows were still 'submitting'.
    assert store.recover_interrupted() == 0
    rows = deliveries(contacts, alert_id) + deliveries(contacts, sms_id)
    assert {d.state for d in rows} == {"cancelled"}
    assert not [d for d in deliveries(contacts, alert_id) if d.channel == "sms"]   # no fallback either
    with contacts.sessions() as s:
        outcomes = {s.get(Attempt, c.attempt_id).outcome for c in in_flight}
    assert outcomes == {"interrupted"}     # the attempts stay on record
    assert store.claim("voice", 10) == [] and store.claim("sms", 10) == []


def test_a_confirmation_learned_after_a_crash_at_the_cap_wins_over_failed(contacts, tmp_path):
    """Issue 11 item 11: the confirmed call was the cap's last one and the engine died during it.
    At restart the delivery gives up 'failed'; the call, followed to its end, was confirmed."""
    alert_id = voice_alert(contacts, tmp_path, voice_cap=1)
    store = Store(contacts.sessions)
    claim = store.claim("voice", 1)[0]
    store.recover_interrupted()
    assert {d.id: d.state for d in deliveries(contacts, alert_id)}[claim.delivery_id] == "failed"
    state = store.record_late_call_outcome(claim.attempt_id, AttemptOutcome.CONFIRMED, line="trunk1",
                                           answered_at=NOW, cause=16)
    assert state == "confirmed"
    row = {d.id: d for d in deliveries(contacts, alert_id)}[claim.delivery_id]
    assert row.state == "confirmed" and row.next_attempt_at is None and row.delivered_at is not None
    with contacts.sessions() as s:
        attempt = s.get(Attempt, claim.attempt_id)
        assert (attempt.outcome, attempt.line, attempt.cause) == ("confirmed", "trunk1", "16")
    # Never downgraded by what comes after.
    assert store.record_late_call_outcome(claim.attempt_id, AttemptOutcome.ANSWERED) == "confirmed"
    with contacts.sessions() as s:
        assert s.get(Attempt, claim.attempt_id).outcome == "confirmed"


def test_a_later_call_never_undoes_an_earlier_confirmation(contacts, tmp_path):
    """A confirmation learned late (the retry was already queued) ends the delivery 'confirmed'
    even when the retry's own call went worse."""
    alert_id = voice_alert(contacts, tmp_path, voice_cap=3)
    store = Store(contacts.sessions)
    first = store.claim("voice", 1)[0]
    store.recover_interrupted()                  # the engine died; the delivery is pending again
    assert store.record_late_call_outcome(first.attempt_id, AttemptOutcome.CONFIRMED) == "confirmed"
    assert first.delivery_id not in {c.delivery_id for c in store.claim("voice", 10)}
    # The other way round: the retry was already under way when the confirmation came.
    other_alert = voice_alert(contacts, tmp_path, voice_cap=3)
    first = next(c for c in store.claim("voice", 10) if c.alert_id == other_alert)
    store.recover_interrupted()
    retry = next(c for c in store.claim("voice", 10) if c.delivery_id == first.delivery_id)
    assert store.record_late_call_outcome(first.attempt_id, AttemptOutcome.CONFIRMED) == "submitting"
    failure = DeliveryFailed(Failure(FailureKind.CALL, "busy", code=17), outcome=AttemptOutcome.BUSY, cause=17)
    verdict = VoicePolicy().after_failure(retry.policy, retry.attempts, retry.submissions, failure, utcnow())
    assert verdict.state == "pending"
    assert store.record_result(retry, verdict, failure=failure) == "confirmed"
    row = {d.id: d for d in deliveries(contacts, other_alert)}[first.delivery_id]
    assert row.state == "confirmed" and row.next_attempt_at is None


def test_alert_status_names_why_a_delivery_may_have_gone_twice(contacts, tmp_path, config_path, capsys):
    """A call whose fate was lost with the AMI link is not an 'engine restart' (issue 11 item 5)."""
    from gateway.shell.cli import main
    from gateway.core.states import DuplicateCause
    alert_id = voice_alert(contacts, tmp_path, voice_cap=3)
    store = Store(contacts.sessions)
    claims = store.claim("voice", 10)
    lost = DeliveryFailed(Failure(FailureKind.LINE, "call fate unknown after the AMI link was lost"),
                          charge_attempt=False, possible_duplicate=True,
                          duplicate_cause=DuplicateCause.AMI_LINK_LOST)
    verdict = VoicePolicy().after_failure(claims[0].policy, claims[0].attempts, claims[0].submissions, lost,
                                          utcnow())
    store.record_result(claims[0], verdict, failure=lost)
    store.recover_interrupted()                  # the others: the engine died during their calls
    status = contacts.alerts.status(alert_id)
    assert status["possible_duplicates_by_cause"] == {"ami_link_lost": 1, "engine_restart": len(claims) - 1}
    assert main(["--config", str(config_path), "alert", "status", str(alert_id)]) == 0
    out = capsys.readouterr().out
    assert f"possibly sent twice (1 AMI link lost, {len(claims) - 1} engine restart)" in out
