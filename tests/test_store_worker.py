"""The engine's database writer thread: retries until a write lands, keeps the order, surfaces bugs;
and a dispatcher whose database is write-locked mid-alert keeps sending and loses nothing."""
import asyncio
import dataclasses
import datetime as dt
import logging
import sqlite3
import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from gateway.core.alerts import AlertRequest, Target
from gateway.core.db import make_engine, make_sessionmaker
from gateway.core.dispatcher import Dispatcher, DispatcherSettings
from gateway.core.models import Attempt, Delivery, InboundSms, SmsPart
from gateway.core.retry import SmsPolicy, SmsRetry
from gateway.core.channels import ReceivedPart
from gateway.core.inbound_store import record_part
from gateway.core.store import Store
from gateway.core.store_worker import AsyncStore, RetrySettings, StoreWorker
from tests.test_dispatcher import FakeChannel


def locked() -> OperationalError:
    return OperationalError("UPDATE deliveries ...", {}, sqlite3.OperationalError("database is locked"))


@pytest.fixture
def worker():
    running = StoreWorker(RetrySettings(first_pause=0.001, max_pause=0.01))
    running.start()
    yield running
    assert running.stop(10)


def test_a_refused_write_is_retried_until_it_lands(worker, caplog):
    failures = [locked(), locked(), locked()]

    def write():
        if failures:
            raise failures.pop()
        return "landed"

    with caplog.at_level(logging.WARNING, logger="gateway.core.store_worker"):
        assert worker.submit(write).result(10) == "landed"
    assert worker.retries == 3
    assert "retrying until it lands" in caplog.text and "landed after" in caplog.text


def test_calls_run_one_at_a_time_in_the_order_they_were_asked(worker):
    seen = []
    threads = set()

    def record(i):
        threads.add(threading.current_thread().name)
        if i % 7 == 0 and seen.count(i) == 0 and i not in retried:
            retried.add(i)
            raise locked()   # a retry does not let the next call overtake this one
        seen.append(i)

    retried = set()
    futures = [worker.submit(record, i) for i in range(200)]
    for future in futures:
        future.result(10)
    assert seen == list(range(200))
    assert threads == {"store-writer"}


def test_a_bug_is_surfaced_through_the_future_not_retried(worker):
    calls = []

    def broken():
        calls.append(1)
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        worker.submit(broken).result(10)
    assert calls == [1] and worker.retries == 0
    assert worker.submit(lambda: "next").result(10) == "next"   # the thread goes on


def test_a_real_sqlite_write_lock_delays_the_write_which_then_lands(services, worker):
    store = Store(make_sessionmaker(make_engine(services.config.database_url, busy_timeout=0.02)))
    holder = sqlite3.connect(services.config.database_url.split("///", 1)[1], isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    part = ReceivedPart(line="m1", sender="+393331234567", text="ISCRIVI", sent_at=dt.datetime(2026, 1, 1))
    future = worker.submit(record_part, store.sessions, part)
    assert wait_for(lambda: worker.retries >= 3)   # refused, again and again, while the lock is held
    assert not future.done()
    holder.execute("ROLLBACK")
    future.result(10)
    holder.close()
    with services.sessions() as s:
        assert s.scalar(select(func.count()).select_from(InboundSms)) == 1


def wait_for(predicate, timeout=10.0):
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return True
        done.wait(0.01)
    return predicate()


class LockingChannel(FakeChannel):
    """Takes a write lock on the database file with its first send (someone else's long
    transaction: a backup, a panel query) and lets it go once ``held_for`` sends went out
    under it and the engine's writer has been refused."""

    def __init__(self, path, held_for, writer):
        super().__init__(lines=("a", "b"))
        self.path = path
        self.held_for = held_for
        self.writer = writer
        self.holder = None
        self.sent_while_locked = 0
        self.releaser = None

    def rate_per_minute(self):
        return 120.0   # 60 claimed ahead with claim_ahead = 30 s

    async def submit(self, message):
        if self.holder is None and not self.sent:
            self.holder = sqlite3.connect(self.path, isolation_level=None)
            self.holder.execute("BEGIN EXCLUSIVE")
            self.releaser = asyncio.create_task(self._release())
        receipt = await super().submit(message)
        if self.holder is not None:
            self.sent_while_locked += 1
        return receipt

    async def _release(self):
        while self.sent_while_locked < self.held_for or self.writer.retries < 3:
            await asyncio.sleep(0.01)
        self.holder.execute("ROLLBACK")
        self.holder.close()
        self.holder = None


def test_a_write_locked_database_mid_alert_stalls_no_send_and_loses_nothing(contacts, caplog):
    contacts.alerts.create(AlertRequest(text="x", target=Target(everyone=True)))
    with contacts.sessions() as s:
        recipients = s.scalar(select(func.count()).select_from(Delivery))
    path = contacts.config.database_url.split("///", 1)[1]
    store = Store(make_sessionmaker(make_engine(contacts.config.database_url, busy_timeout=0.02)))
    writer = StoreWorker(RetrySettings(first_pause=0.005, max_pause=0.02))
    channel = LockingChannel(path, held_for=recipients, writer=writer)
    retry = SmsRetry.from_config(dataclasses.replace(contacts.config.retry, initial_delay=0))
    dispatcher = Dispatcher(AsyncStore(store, writer), [channel], {"sms": SmsPolicy(retry)},
                            DispatcherSettings(poll_interval=0.01, report_timeout=0.3, status_flush_interval=0.05))
    with caplog.at_level(logging.WARNING):
        asyncio.run(dispatcher.run(asyncio.Event(), once=True))
    # The modems went on while the database was held; its writes were refused and retried.
    assert channel.sent_while_locked == recipients and writer.retries >= 3
    assert "never retrieved" not in caplog.text
    with contacts.sessions() as s:
        assert set(s.scalars(select(Delivery.state))) == {"sent"}
        assert s.scalar(select(func.count()).select_from(Attempt).where(Attempt.outcome == "sent")) == recipients
        assert s.scalar(select(func.count()).select_from(SmsPart)) == recipients
        assert not s.scalar(select(func.count()).select_from(Delivery).where(Delivery.possible_duplicate.is_(True)))
    assert len(channel.sent) == recipients


def test_claims_never_sent_go_back_unflagged_at_a_stop(contacts):
    contacts.alerts.create(AlertRequest(text="x", target=Target(everyone=True)))

    class OneThenStop(FakeChannel):
        def free_slots(self):
            return 1

        def rate_per_minute(self):
            return 600.0

        async def submit(self, message):
            stop.set()
            return await super().submit(message)

    stop = asyncio.Event()
    channel = OneThenStop()
    retry = SmsRetry.from_config(dataclasses.replace(contacts.config.retry, initial_delay=0))
    asyncio.run(Dispatcher(contacts.store, [channel], {"sms": SmsPolicy(retry)},
                           DispatcherSettings(poll_interval=0.01)).run(stop))
    with contacts.sessions() as s:
        rows = s.execute(select(Delivery.state, Delivery.submissions, Delivery.possible_duplicate)).all()
        attempts = s.scalar(select(func.count()).select_from(Attempt))
    assert sorted(r.state for r in rows).count("sent") == len(channel.sent) == attempts == 1
    assert {(r.state, r.submissions, r.possible_duplicate) for r in rows if r.state != "sent"} == {("pending", 0, False)}
