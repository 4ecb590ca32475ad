"""Calls claimed ahead of the free trunk channels (dispatcher.voice_claim_ahead): a claim goes to a
line only once Store.mark_placing has seen its alert still wanting it and written it 'in_flight';
a restart gives back unflagged what was claimed and never placed, without counting it toward the cap.

Store and dispatcher over a migrated database with an in-process fake trunk; the engine and the
PBX simulator through a kill -9 are in tests/test_engine_voice_restart.py.
"""
from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from sqlalchemy import func, select

from gateway.core.channels import DeliveryFailed, SubmitReceipt
from gateway.core.dispatcher import Dispatcher, DispatcherSettings
from gateway.core.failures import Failure, FailureKind
from gateway.core.models import Attempt, Delivery
from gateway.core.retry import VoicePolicy
from gateway.core.states import AttemptOutcome
from gateway.core.store import DEADLINE_PASSED, Store
from tests.test_voice_store import deliveries, past_deadline, voice_alert

# Run on SQLite and on PostgreSQL (conftest.py, tests/pg_support.py).
pytestmark = pytest.mark.both_databases


def attempt_outcomes(services, alert_id: int) -> Counter:
    with services.sessions() as s:
        return Counter(s.scalars(select(Attempt.outcome).join(Delivery, Delivery.id == Attempt.delivery_id)
                                 .where(Delivery.alert_id == alert_id)))


# --- the store ----------------------------------------------------------------------

def test_a_crash_gives_back_unflagged_the_calls_claimed_ahead_and_never_placed(contacts, tmp_path):
    # The cap of one call each: a claim never placed must not use it up.
    alert_id = voice_alert(contacts, tmp_path, voice_cap=1)
    store = Store(contacts.sessions)
    claims = store.claim("voice", 10, ahead=True)
    assert len(claims) >= 3
    placing = store.mark_placing(claims[:1])      # the first goes to a line, then the engine dies
    assert placing == claims[:1]
    assert store.recover_interrupted() == 0       # the one at the cap gives up, the rest never left
    rows = {d.id: d for d in deliveries(contacts, alert_id)}
    placed = rows.pop(claims[0].delivery_id)
    assert (placed.state, placed.possible_duplicate, placed.submissions) == ("failed", True, 1)
    assert {(d.state, d.possible_duplicate, d.duplicate_cause, d.submissions) for d in rows.values()} == {
        ("pending", False, None, 0)}
    assert attempt_outcomes(contacts, alert_id) == {"interrupted": 1}   # nothing tried, nothing on record
    again = store.claim("voice", 10)
    assert {c.delivery_id for c in again} == set(rows)
    assert {(c.submissions, c.possible_duplicate) for c in again} == {(1, False)}   # the cap's one call


def test_a_claim_ahead_of_an_alert_cancelled_meanwhile_is_given_back_not_placed(contacts, tmp_path):
    alert_id = voice_alert(contacts, tmp_path)
    store = Store(contacts.sessions)
    claims = store.claim("voice", 10, ahead=True)
    contacts.alerts.cancel(alert_id)
    assert store.mark_placing(claims) == []
    assert {(d.state, d.possible_duplicate) for d in deliveries(contacts, alert_id)} == {("cancelled", False)}
    assert attempt_outcomes(contacts, alert_id) == {}
    assert store.recover_interrupted() == 0


def test_a_claim_ahead_of_an_alert_past_its_deadline_is_given_back_and_closed(contacts, tmp_path):
    alert_id = voice_alert(contacts, tmp_path, sms_fallback=True)
    store = Store(contacts.sessions)
    claims = store.claim("voice", 10, ahead=True)
    past_deadline(contacts, alert_id)
    assert store.mark_placing(claims) == []
    assert store.claim("voice", 10) == []         # the sweep closes them as the deadline's others
    voice = [d for d in deliveries(contacts, alert_id) if d.channel == "voice"]
    assert {(d.state, d.last_error, d.submissions) for d in voice} == {("failed", DEADLINE_PASSED, 0)}
    assert {d.e164 for d in deliveries(contacts, alert_id) if d.channel == "sms"} == {
        d.e164 for d in voice if d.e164.startswith("+393")}


# --- the dispatcher -----------------------------------------------------------------

class FakeTrunk:
    """A voice channel of ``channels`` lines: each call ends as ``outcome`` when the test lets it."""
    name = "voice"

    def __init__(self, channels=2, outcome=AttemptOutcome.NO_ANSWER):
        self.channels = channels
        self.outcome = outcome
        self.up = 0
        self.calls = []               # numbers, in the order called
        self.hold = asyncio.Event()   # set: calls end at once
        self.hold.set()
        self.events = None

    async def start(self, events):
        self.events = events

    async def stop(self):
        self.hold.set()

    def free_slots(self):
        return self.channels - self.up

    def rate_per_minute(self):
        return 600.0      # with voice_claim_ahead = 5 s: 50 calls claimed ahead

    async def submit(self, message):
        self.up += 1
        self.calls.append(message.number)
        try:
            await self.hold.wait()
        finally:
            self.up -= 1
        if self.outcome == AttemptOutcome.CONFIRMED:
            return SubmitReceipt(line="trunk1", outcome=self.outcome)
        raise DeliveryFailed(Failure(FailureKind.CALL, "no answer", 19), outcome=self.outcome, line="trunk1")


def dispatcher(services, trunk) -> Dispatcher:
    return Dispatcher(services.store, [trunk], {"voice": VoicePolicy()},
                      DispatcherSettings(poll_interval=0.01, report_timeout=0.3, status_flush_interval=0.05))


def count_states(services, alert_id, *states) -> int:
    with services.sessions() as s:
        return s.scalar(select(func.count()).select_from(Delivery).where(
            Delivery.alert_id == alert_id, Delivery.state.in_(states)))


async def until(predicate, tries=3000):
    for _ in range(tries):
        if await asyncio.to_thread(predicate):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never came to pass")


def test_calls_claimed_ahead_of_an_alert_cancelled_meanwhile_are_never_placed(contacts, tmp_path):
    alert_id = voice_alert(contacts, tmp_path)
    total = len(deliveries(contacts, alert_id))
    trunk = FakeTrunk(channels=1, outcome=AttemptOutcome.CONFIRMED)
    trunk.hold.clear()

    async def cancel_once_claimed_ahead():
        # The one line is busy, every other number claimed ahead: then the alert is cancelled.
        await until(lambda: trunk.up == 1 and count_states(contacts, alert_id, "submitting") == total)
        await asyncio.to_thread(contacts.alerts.cancel, alert_id)
        trunk.hold.set()

    async def main():
        task = asyncio.create_task(cancel_once_claimed_ahead())
        await dispatcher(contacts, trunk).run(asyncio.Event(), once=True)
        await task

    asyncio.run(main())
    assert len(trunk.calls) == 1
    states = Counter(d.state for d in deliveries(contacts, alert_id))
    assert states == {"confirmed": 1, "cancelled": total - 1}
    assert attempt_outcomes(contacts, alert_id) == {"confirmed": 1}


def test_calls_claimed_ahead_respect_the_cap_on_calls_per_number(contacts, tmp_path):
    # Nobody answers; calls again at once, up to 2 calls per number, with many claimed ahead.
    alert_id = voice_alert(contacts, tmp_path, voice_cap=2, max_attempts=5, voice_interval=0)
    trunk = FakeTrunk(channels=3)
    asyncio.run(dispatcher(contacts, trunk).run(asyncio.Event(), once=True))
    per_number = Counter(trunk.calls)
    assert set(per_number.values()) == {2} and len(per_number) == len(deliveries(contacts, alert_id))
    assert {(d.state, d.submissions) for d in deliveries(contacts, alert_id)} == {("failed", 2)}
    assert attempt_outcomes(contacts, alert_id) == {"no_answer": 2 * len(per_number)}


def test_a_stop_gives_back_the_calls_claimed_ahead_unflagged(contacts, tmp_path):
    alert_id = voice_alert(contacts, tmp_path)
    total = len(deliveries(contacts, alert_id))
    trunk = FakeTrunk(channels=1, outcome=AttemptOutcome.CONFIRMED)
    trunk.hold.clear()
    stop = asyncio.Event()

    async def stop_once_claimed_ahead():
        await until(lambda: trunk.up == 1 and count_states(contacts, alert_id, "submitting") == total)
        stop.set()
        trunk.hold.set()      # the call up ends as the engine stops

    async def main():
        task = asyncio.create_task(stop_once_claimed_ahead())
        await dispatcher(contacts, trunk).run(stop)
        await task

    asyncio.run(main())
    assert len(trunk.calls) == 1
    rows = [d for d in deliveries(contacts, alert_id) if d.e164 != trunk.calls[0]]
    assert {(d.state, d.possible_duplicate, d.submissions) for d in rows} == {("pending", False, 0)}
    assert attempt_outcomes(contacts, alert_id) == {"confirmed": 1}
