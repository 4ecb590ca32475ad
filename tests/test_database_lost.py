"""A node that loses its database: the writer says since when, the dispatcher hands nothing new to the
lines, what they finish is journaled on disk (outcome_journal.py) and recorded once when the database
is back or at the next start; then the node goes on by itself, with a database_lost alarm raised and
cleared."""
import asyncio
import dataclasses
import datetime as dt
import json
import logging
import sqlite3

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from gateway.core.alerts import AlertRequest, Target
from gateway.core.channels import DeliveryFailed, SubmitReceipt
from gateway.core.db import make_engine, make_sessionmaker
from gateway.core.dispatcher import DATABASE_LOST, Dispatcher, DispatcherSettings
from gateway.core.failures import Failure, FailureKind
from gateway.core.models import Attempt, Delivery, SmsPart
from gateway.core.outcome_journal import JournaledOutcome, OutcomeJournal, record_once
from gateway.core.retry import AlertPolicy, RetryVerdict, SmsPolicy, SmsRetry
from gateway.core.states import AttemptOutcome, Channel, DeliveryState
from gateway.core.store import ClaimedDelivery, Store
from gateway.core.store_worker import AsyncStore, RetrySettings, StoreWorker, connection_lost
from tests.test_dispatcher import FakeChannel


class ServerGone(Exception):
    """What psycopg raises when no server answers: an OperationalError of libpq's, without SQLSTATE."""
    sqlstate = None


class AdminShutdown(Exception):
    sqlstate = "57P01"


class Deadlock(Exception):
    sqlstate = "40P01"


def lost() -> OperationalError:
    return OperationalError("SELECT 1", {}, ServerGone("connection failed: No such file or directory"))


def test_only_a_server_that_cannot_be_reached_counts_as_lost():
    assert connection_lost(lost())
    assert connection_lost(OperationalError("x", {}, AdminShutdown("terminating connection")))
    assert connection_lost(OperationalError("x", {}, Exception("gone"), connection_invalidated=True))
    # Held, not lost: another writer holds SQLite's lock, a PostgreSQL deadlock is retried.
    assert not connection_lost(OperationalError("x", {}, sqlite3.OperationalError("database is locked")))
    assert not connection_lost(OperationalError("x", {}, Deadlock("deadlock detected")))
    assert not connection_lost(ValueError("a bug"))


def test_the_writer_says_since_when_the_database_is_unreachable_and_when_it_came_back(caplog):
    worker = StoreWorker(RetrySettings(first_pause=0.001, max_pause=0.002))
    failures = [lost(), lost(), lost()]
    seen = []

    def write():
        seen.append(worker.unreachable_since)
        if failures:
            raise failures.pop()
        return "landed"

    worker.start()
    with caplog.at_level(logging.WARNING):
        assert worker.submit(write).result(10) == "landed"
    assert worker.stop(10)
    assert seen[0] is None and seen[1] is not None and seen[1] == seen[-1]
    assert worker.unreachable_since is None
    since, until = worker.last_outage
    assert since == seen[1] and until >= since
    assert caplog.text.count("database unreachable since") == 1
    assert "database reachable again after" in caplog.text


def test_a_locked_sqlite_database_is_held_not_lost():
    worker = StoreWorker(RetrySettings(first_pause=0.001, max_pause=0.002))
    failures = [OperationalError("x", {}, sqlite3.OperationalError("database is locked"))]
    states = []

    def write():
        states.append(worker.unreachable_since)
        if failures:
            raise failures.pop()

    worker.start()
    worker.submit(write).result(10)
    assert worker.stop(10)
    assert states == [None, None] and worker.last_outage is None


# --- the journal -----------------------------------------------------------------------
POLICY = AlertPolicy(max_attempts=3, deadline=dt.datetime(2026, 12, 4, 20, 0), voice_interval=60.0,
                     voice_growth=1.5, voice_cap=3, stop_on_confirm=True, sms_fallback=False)


def claim_of(delivery_id=1, attempt_id=7, channel=Channel.SMS) -> ClaimedDelivery:
    return ClaimedDelivery(delivery_id, attempt_id, 1, 2, channel, "+393331110001", "Allerta: èvacuare 🌊", "it",
                           None, False, 0, 1, POLICY)


def test_outcomes_come_back_from_the_journal_as_they_were_written(tmp_path):
    journal = OutcomeJournal(tmp_path / "outcomes.jsonl")
    sent = JournaledOutcome(claim_of(), RetryVerdict(DeliveryState.SENT),
                            receipt=SubmitReceipt(line="m1", references=[12, 13],
                                                  started_at=dt.datetime(2026, 12, 4, 18, 0, 1)))
    busy = JournaledOutcome(
        claim_of(2, 8, Channel.VOICE),
        RetryVerdict(DeliveryState.PENDING, next_attempt_at=dt.datetime(2026, 12, 4, 18, 5), reason="busy"),
        failure=DeliveryFailed(Failure(FailureKind.CALL, "busy", 17), outcome=AttemptOutcome.BUSY, line="t1",
                               possible_duplicate=True, duplicate_cause="ami_gap",
                               started_at=dt.datetime(2026, 12, 4, 18, 0, 2)))
    journal.append(sent.line, [sent])
    second = journal.append(busy.line, [busy])
    journal.close()
    (line, [back]), (_, [failed]) = OutcomeJournal(journal.path).unlanded()
    assert line == "m1" and back == sent
    assert failed.claim == busy.claim and failed.verdict == busy.verdict
    assert (failed.failure.reason, failed.failure.outcome, failed.failure.cause, failed.failure.line,
            failed.failure.possible_duplicate, failed.failure.duplicate_cause, failed.failure.started_at) == (
        busy.failure.reason, "busy", 17, "t1", True, "ami_gap", dt.datetime(2026, 12, 4, 18, 0, 2))
    assert second == 2


def test_a_line_torn_by_a_crash_is_skipped_and_landed_outcomes_are_not_replayed(tmp_path):
    journal = OutcomeJournal(tmp_path / "outcomes.jsonl")
    first = JournaledOutcome(claim_of(1, 7), RetryVerdict(DeliveryState.SENT), receipt=SubmitReceipt("m1", [1]))
    second = JournaledOutcome(claim_of(2, 8), RetryVerdict(DeliveryState.SENT), receipt=SubmitReceipt("m2", [2]))
    landed = journal.append("m1", [first])
    journal.append("m2", [second])
    journal.landed(landed)
    journal.close()
    with open(journal.path, "a", encoding="utf-8") as torn:   # the crash came in the middle of a write
        torn.write(json.dumps({"batch": 3, "line": "m3", "outcomes": []})[:25])
    assert [items for _, items in OutcomeJournal(journal.path).unlanded()] == [[second]]


def _claimed(contacts) -> list[ClaimedDelivery]:
    contacts.alerts.create(AlertRequest(text="Allerta", target=Target(everyone=True)))
    return contacts.store.claim(Channel.SMS, 2)


def test_replaying_the_journal_records_each_outcome_once(contacts):
    first, second = _claimed(contacts)
    outcome = JournaledOutcome(first, RetryVerdict(DeliveryState.SENT), receipt=SubmitReceipt("m1", [41]))
    assert record_once(contacts.store, outcome) == DeliveryState.SENT
    # Replayed again (the landed mark lost in the crash): nothing changes.
    assert record_once(contacts.store, outcome) is None
    # An attempt ended by the recovery at start (not journaled in time) is not overwritten either.
    contacts.store.recover_interrupted()
    late = JournaledOutcome(second, RetryVerdict(DeliveryState.SENT), receipt=SubmitReceipt("m1", [42]))
    assert record_once(contacts.store, late) is None
    with contacts.sessions() as s:
        assert s.scalar(select(func.count()).select_from(SmsPart)) == 1
        assert s.get(Delivery, first.delivery_id).state == "sent"
        assert s.get(Delivery, second.delivery_id).state == "pending"


def test_an_outcome_journaled_before_a_crash_is_recorded_at_the_next_start_not_resent(contacts, tmp_path):
    first, _ = _claimed(contacts)
    journal = OutcomeJournal(tmp_path / "outcomes.jsonl")
    journal.append("a", [JournaledOutcome(first, RetryVerdict(DeliveryState.SENT), receipt=SubmitReceipt("a", [5]))])
    journal.close()
    channel = FakeChannel()
    retry = SmsRetry.from_config(dataclasses.replace(contacts.config.retry, initial_delay=0))
    asyncio.run(Dispatcher(contacts.store, [channel], {"sms": SmsPolicy(retry)},
                           DispatcherSettings(poll_interval=0.01, report_timeout=0.3, outcome_journal=journal.path)
                           ).run(asyncio.Event(), once=True))
    with contacts.sessions() as s:
        assert s.get(Delivery, first.delivery_id).state == "sent"
        assert not s.get(Delivery, first.delivery_id).possible_duplicate
        recipients = s.scalar(select(func.count()).select_from(Delivery))
        flagged = s.scalar(select(func.count()).select_from(Delivery).where(Delivery.possible_duplicate.is_(True)))
    sent_numbers = [number for number, _line, _refs in channel.sent]
    assert first.e164 not in sent_numbers and len(sent_numbers) == recipients - 1
    assert flagged == 1   # the other claim was in flight, its outcome unknown: resent, flagged
    assert journal.path.read_text() == ""


# --- the dispatcher through an outage ------------------------------------------------------
class RecordingAlarms:
    def __init__(self):
        self.calls = []

    def raise_alarm(self, kind, subject, message):
        self.calls.append(("raise", kind, subject, message))
        return 1

    def clear_alarm(self, kind, subject):
        self.calls.append(("clear", kind, subject))


class OutageChannel(FakeChannel):
    """The database goes away while the second SMS is on the wire, and comes back once the
    dispatcher has gone some rounds without it."""

    def __init__(self, outage, writer):
        super().__init__()
        self.outage = outage
        self.writer = writer
        self.sent_while_lost = 0
        self.ended = None

    async def submit(self, message):
        if self.writer.unreachable_since is not None:
            self.sent_while_lost += 1
        receipt = await super().submit(message)
        if len(self.sent) == 2 and self.ended is None:
            self.outage["lost"] = True
            self.ended = asyncio.ensure_future(self._end_outage())
        return receipt

    async def _end_outage(self):
        while self.writer.unreachable_since is None or self.writer.retries < 20:
            await asyncio.sleep(0.01)
        self.outage["lost"] = False


def test_a_lost_database_stops_new_sends_keeps_the_outcomes_and_resumes_by_itself(contacts, tmp_path, caplog):
    contacts.alerts.create(AlertRequest(text="Allerta", target=Target(everyone=True)))
    with contacts.sessions() as s:
        recipients = s.scalar(select(func.count()).select_from(Delivery))
    engine = make_engine(contacts.config.database_url)
    outage = {"lost": False}

    @event.listens_for(engine, "before_cursor_execute")
    def _gone(*_args):
        if outage["lost"]:
            raise lost()

    writer = StoreWorker(RetrySettings(first_pause=0.002, max_pause=0.01))
    channel = OutageChannel(outage, writer)
    alarms = RecordingAlarms()
    retry = SmsRetry.from_config(dataclasses.replace(contacts.config.retry, initial_delay=0))
    dispatcher = Dispatcher(AsyncStore(Store(make_sessionmaker(engine)), writer), [channel], {"sms": SmsPolicy(retry)},
                            DispatcherSettings(poll_interval=0.01, report_timeout=0.3, status_flush_interval=0.05,
                                               outcome_journal=tmp_path / "outcomes.jsonl", node="sede-a"),
                            alarms=alarms)
    with caplog.at_level(logging.INFO):
        assert asyncio.run(dispatcher.run(asyncio.Event(), once=True)) == 0
    assert channel.ended is not None and channel.ended.done()
    assert channel.sent_while_lost == 0
    sent_numbers = [number for number, _line, _refs in channel.sent]
    assert len(sent_numbers) == len(set(sent_numbers)) == recipients
    with contacts.sessions() as s:
        assert set(s.scalars(select(Delivery.state))) == {"sent"}
        assert not s.scalar(select(func.count()).select_from(Delivery).where(Delivery.possible_duplicate.is_(True)))
        assert s.scalar(select(func.count()).select_from(Attempt)) == recipients
    assert [call[:3] for call in alarms.calls] == [("raise", DATABASE_LOST, "sede-a"), ("clear", DATABASE_LOST, "sede-a")]
    assert "database irraggiungibile dal nodo sede-a" in alarms.calls[0][3]
    assert "database unreachable since" in caplog.text and "database reachable again" in caplog.text
    assert "event=database_lost" in caplog.text and "event=database_back" in caplog.text
    assert (tmp_path / "outcomes.jsonl").read_text() == ""
