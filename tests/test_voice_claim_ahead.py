"""Calls claimed ahead of the free trunk channels (DispatcherSettings.voice_claim_ahead): their
attempts are 'claimed' until their result; the engine lists each in its PlacingJournal just before
the call, and a restart gives back unflagged, without counting it toward the cap, what the journal
does not list. Claims whose alert is cancelled or passes its deadline while they wait are given back.

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
from gateway.core.placing_journal import PlacingJournal
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
    # The first went to a line (the journal says so), then the engine died.
    assert store.recover_interrupted(placed_ahead={claims[0].attempt_id}) == 0   # at the cap: gives up
    rows = {d.id: d for d in deliveries(contacts, alert_id)}
    placed = rows.pop(claims[0].delivery_id)
    assert (placed.state, placed.possible_duplicate, placed.submissions) == ("failed", True, 1)
    assert {(d.state, d.possible_duplicate, d.duplicate_cause, d.submissions) for d in rows.values()} == {
        ("pending", False, None, 0)}
    assert attempt_outcomes(contacts, alert_id) == {"interrupted": 1}   # nothing tried, nothing on record
    again = store.claim("voice", 10)
    assert {c.delivery_id for c in again} == set(rows)
    assert {(c.submissions, c.possible_duplicate) for c in again} == {(1, False)}   # the cap's one call


def test_without_the_journal_every_call_claimed_ahead_counts_as_placed(contacts, tmp_path):
    alert_id = voice_alert(contacts, tmp_path, voice_cap=3)
    store = Store(contacts.sessions)
    claims = store.claim("voice", 10, ahead=True)
    assert store.recover_interrupted(placed_ahead=None) == len(claims)
    assert {(d.state, d.possible_duplicate, d.submissions) for d in deliveries(contacts, alert_id)} == {
        ("pending", True, 1)}
    assert attempt_outcomes(contacts, alert_id) == {"interrupted": len(claims)}


def test_the_journal_lists_whole_lines_only_and_no_file_says_nothing(tmp_path):
    journal = PlacingJournal(tmp_path / "data" / "voice-placed.log")
    assert journal.placed_ids() is None
    journal.start()
    journal.placing(7)
    journal.placing(12)
    journal.close()
    with open(journal.path, "ab") as f:
        f.write(b"13")             # cut mid-line: that call had not started
    assert journal.placed_ids() == {7, 12}
    journal.start()                # the next run starts empty
    assert journal.placed_ids() == set()
    journal.close()


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


def dispatcher(services, trunk, tmp_path) -> Dispatcher:
    return Dispatcher(services.store, [trunk], {"voice": VoicePolicy()},
                      DispatcherSettings(poll_interval=0.01, report_timeout=0.3, status_flush_interval=0.05,
                                         placing_journal=tmp_path / "voice-placed.log"))


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


def one_call_up_then(services, tmp_path, alert_id, change, given_back_as=None, stop=None) -> FakeTrunk:
    """Run the engine's dispatcher over a one-line trunk: once its call is up and every other number
    claimed ahead, ``change()``; the call ends once those are given back as ``given_back_as``."""
    total = len(deliveries(services, alert_id))
    trunk = FakeTrunk(channels=1, outcome=AttemptOutcome.CONFIRMED)
    trunk.hold.clear()

    async def meanwhile():
        await until(lambda: trunk.up == 1 and count_states(services, alert_id, "submitting") == total)
        change()
        if given_back_as:   # within a second, whether or not anything is being claimed
            await until(lambda: count_states(services, alert_id, given_back_as) == total - 1)
        trunk.hold.set()

    async def main():
        task = asyncio.create_task(meanwhile())
        await dispatcher(services, trunk, tmp_path).run(stop or asyncio.Event(), once=stop is None)
        await task

    asyncio.run(main())
    return trunk


def test_calls_claimed_ahead_of_an_alert_cancelled_meanwhile_are_never_placed(contacts, tmp_path):
    alert_id = voice_alert(contacts, tmp_path)
    trunk = one_call_up_then(contacts, tmp_path, alert_id, lambda: contacts.alerts.cancel(alert_id), "cancelled")
    assert len(trunk.calls) == 1
    states = Counter(d.state for d in deliveries(contacts, alert_id))
    assert states == {"confirmed": 1, "cancelled": len(deliveries(contacts, alert_id)) - 1}
    assert attempt_outcomes(contacts, alert_id) == {"confirmed": 1}


def test_calls_claimed_ahead_of_a_voice_alert_past_its_deadline_are_never_placed(contacts, tmp_path):
    alert_id = voice_alert(contacts, tmp_path)     # voice only: its deadline stops every call
    trunk = one_call_up_then(contacts, tmp_path, alert_id, lambda: past_deadline(contacts, alert_id), "failed")
    assert len(trunk.calls) == 1
    rows = [d for d in deliveries(contacts, alert_id) if d.e164 != trunk.calls[0]]
    assert {(d.state, d.last_error, d.submissions) for d in rows} == {("failed", DEADLINE_PASSED, 0)}
    assert attempt_outcomes(contacts, alert_id) == {"confirmed": 1}


def test_calls_claimed_ahead_respect_the_cap_on_calls_per_number(contacts, tmp_path):
    # Nobody answers; calls again at once, up to 2 calls per number, with many claimed ahead.
    alert_id = voice_alert(contacts, tmp_path, voice_cap=2, max_attempts=5, voice_interval=0)
    trunk = FakeTrunk(channels=3)
    asyncio.run(dispatcher(contacts, trunk, tmp_path).run(asyncio.Event(), once=True))
    per_number = Counter(trunk.calls)
    assert set(per_number.values()) == {2} and len(per_number) == len(deliveries(contacts, alert_id))
    assert {(d.state, d.submissions) for d in deliveries(contacts, alert_id)} == {("failed", 2)}
    assert attempt_outcomes(contacts, alert_id) == {"no_answer": 2 * len(per_number)}


def test_a_stop_gives_back_the_calls_claimed_ahead_unflagged(contacts, tmp_path):
    alert_id = voice_alert(contacts, tmp_path)
    stop = asyncio.Event()
    trunk = one_call_up_then(contacts, tmp_path, alert_id, stop.set, stop=stop)   # the call up ends as it stops
    assert len(trunk.calls) == 1
    rows = [d for d in deliveries(contacts, alert_id) if d.e164 != trunk.calls[0]]
    assert {(d.state, d.possible_duplicate, d.submissions) for d in rows} == {("pending", False, 0)}
    assert attempt_outcomes(contacts, alert_id) == {"confirmed": 1}
