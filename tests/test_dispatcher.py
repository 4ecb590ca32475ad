"""Dispatcher and store with an in-process fake channel (unit level; the real path is in test_engine_*)."""
import asyncio
import dataclasses

from sqlalchemy import select

from gateway.core.alerts import AlertRequest, Target
from gateway.core.channels import DeliveryFailed, LineStatus, StatusReport, SubmitReceipt
from gateway.core.dispatcher import Dispatcher, DispatcherSettings, mask_number
from gateway.core.failures import Failure, FailureKind
from gateway.core.models import Attempt, Delivery, Line, SmsPart
from gateway.core.retry import SmsPolicy, SmsRetry
import pytest

# Run on SQLite and on PostgreSQL (conftest.py, tests/pg_support.py).
pytestmark = pytest.mark.both_databases


class FakeChannel:
    name = "sms"

    def __init__(self, script=None, parts=1, lines=("a", "b")):
        self.script = script or {}      # e164 -> list of exceptions to raise in turn
        self.parts = parts
        self.lines = list(lines)
        self.sent = []
        self.events = None
        self.ref = 0
        self.avoided = []

    async def start(self, events):
        self.events = events

    async def stop(self):
        pass

    def free_slots(self):
        return 2

    def rate_per_minute(self):
        return 60.0

    async def submit(self, message):
        await asyncio.sleep(0)
        self.avoided.append((message.number, message.avoid_lines))
        line = next((l for l in self.lines if l not in message.avoid_lines), self.lines[0])
        pending = self.script.get(message.number)
        if pending:
            failure = pending.pop(0)
            failure.line = line
            raise failure
        refs = []
        for _ in range(self.parts):
            self.ref += 1
            refs.append(self.ref)
        self.sent.append((message.number, line, refs))
        return SubmitReceipt(line=line, references=refs)


def make_dispatcher(services, channel, **policy):
    retry = SmsRetry.from_config(dataclasses.replace(services.config.retry, initial_delay=0, **policy))
    return Dispatcher(services.store, [channel], {"sms": SmsPolicy(retry)},
                      DispatcherSettings(poll_interval=0.01, report_timeout=0.3, status_flush_interval=0.05))


def states(services):
    with services.sessions() as s:
        return dict(s.execute(select(Delivery.e164, Delivery.state)).all())


def test_sent_then_delivered_only_when_every_part_is_reported(contacts):
    contacts.alerts.create(AlertRequest(text="x", target=Target(zones=("Fregene",))))
    channel = FakeChannel(parts=2)
    asyncio.run(make_dispatcher(contacts, channel).run(asyncio.Event(), once=True))
    assert set(states(contacts).values()) == {"sent"}
    number, line, refs = channel.sent[0]
    assert contacts.store.record_status_report(line, refs[0], True, "ok")
    assert states(contacts)[number] == "sent"
    assert contacts.store.record_status_report(line, refs[1], True, "ok")
    assert states(contacts)[number] == "delivered"
    # A report nobody is waiting for matches nothing.
    assert not contacts.store.record_status_report(line, 250, True, "ok")


class ReportsFirstChannel(FakeChannel):
    """A modem whose status reports reach the engine before the send's own bookkeeping."""

    async def submit(self, message):
        receipt = await super().submit(message)
        self.events.status_reports(receipt.line, [StatusReport(ref, True, "TP-ST 0x00") for ref in receipt.references])
        return receipt


def test_reports_that_beat_their_send_are_applied_once_its_parts_exist(contacts):
    contacts.alerts.create(AlertRequest(text="x", target=Target(zones=("Fregene",))))
    channel = ReportsFirstChannel(parts=2)
    asyncio.run(make_dispatcher(contacts, channel).run(asyncio.Event(), once=True))
    assert set(states(contacts).values()) == {"delivered"}
    with contacts.sessions() as s:
        assert set(s.scalars(select(SmsPart.status))) == {"delivered"}


def test_transient_failure_retries_on_another_line_permanent_fails_at_once(contacts):
    contacts.alerts.create(AlertRequest(text="x", target=Target(everyone=True)))
    channel = FakeChannel(script={
        "+393331110001": [DeliveryFailed(Failure(FailureKind.CMS, "network out of order", 38))],
        "+393331110002": [DeliveryFailed(Failure(FailureKind.CMS, "unassigned number", 1, permanent=True))],
    })
    asyncio.run(make_dispatcher(contacts, channel).run(asyncio.Event(), once=True))
    final = states(contacts)
    assert final["+393331110001"] == "sent"
    assert final["+393331110002"] == "failed"
    retried = [avoid for number, avoid in channel.avoided if number == "+393331110001"]
    assert retried == [frozenset(), frozenset({"a"})]
    with contacts.sessions() as s:
        failed = s.scalar(select(Delivery).where(Delivery.e164 == "+393331110002"))
        # The failure is rendered once: its code is not repeated after the text.
        assert failed.last_error == "+CMS ERROR 1: unassigned number" and failed.attempts == 1
        assert s.scalar(select(Delivery.attempts).where(Delivery.e164 == "+393331110001")) == 2


def test_gives_up_after_max_attempts(contacts):
    contacts.alerts.create(AlertRequest(text="x", target=Target(numbers=("+393331110001",))))
    failures = [DeliveryFailed(Failure(FailureKind.CMS, "unknown error", 500)) for _ in range(5)]
    channel = FakeChannel(script={"+393331110001": failures})
    asyncio.run(make_dispatcher(contacts, channel, max_attempts=3).run(asyncio.Event(), once=True))
    with contacts.sessions() as s:
        delivery = s.scalar(select(Delivery))
        assert delivery.state == "failed" and delivery.attempts == 3
        assert delivery.last_error == "gave up after 3 attempts: +CMS ERROR 500: unknown error"
        assert len(s.scalars(select(Attempt)).all()) == 3
    assert len(failures) == 2  # exactly three tries


def test_uncharged_failures_do_not_use_attempts(contacts):
    contacts.alerts.create(AlertRequest(text="x", target=Target(numbers=("+393331110001",))))
    gone = [DeliveryFailed(Failure(FailureKind.LINE, "port lost"), charge_attempt=False) for _ in range(4)]
    asyncio.run(make_dispatcher(contacts, FakeChannel(script={"+393331110001": gone}), max_attempts=2)
                .run(asyncio.Event(), once=True))
    with contacts.sessions() as s:
        delivery = s.scalar(select(Delivery))
    assert delivery.state == "sent" and delivery.attempts == 1


def test_interrupted_work_is_resent_and_flagged(contacts):
    contacts.alerts.create(AlertRequest(text="x", target=Target(everyone=True)))
    claimed = contacts.store.claim("sms", 2)   # the engine died right after this
    assert {c.e164 for c in claimed} and all(states(contacts)[c.e164] == "submitting" for c in claimed)
    channel = FakeChannel()
    asyncio.run(make_dispatcher(contacts, channel).run(asyncio.Event(), once=True))
    with contacts.sessions() as s:
        flagged = set(s.scalars(select(Delivery.e164).where(Delivery.possible_duplicate.is_(True))))
        interrupted = s.scalars(select(Attempt).where(Attempt.outcome == "interrupted")).all()
    assert flagged == {c.e164 for c in claimed}
    assert len(interrupted) == 2
    assert sorted(n for n, _, _ in channel.sent) == sorted(states(contacts))
    assert set(states(contacts).values()) == {"sent"}


def test_stop_waits_for_in_flight_sends(contacts):
    contacts.alerts.create(AlertRequest(text="x", target=Target(everyone=True)))

    class Slow(FakeChannel):
        async def submit(self, message):
            stop.set()               # SIGTERM arrives while this send is on the wire
            await asyncio.sleep(0.05)
            return await super().submit(message)

    stop = asyncio.Event()
    channel = Slow()
    asyncio.run(make_dispatcher(contacts, channel).run(stop))
    final = states(contacts)
    assert "submitting" not in final.values()
    assert sum(1 for s in final.values() if s == "sent") == len(channel.sent) >= 1


def test_mask_number():
    # The country code and the last 3 digits, nothing else (the length is not told either).
    assert mask_number("+393331234567") == "+39****567"
    assert mask_number("+12125551234") == "+1****234"
    assert mask_number("+35312345678") == "+353****678"
    assert mask_number("+123") == "****"


def test_every_line_is_rewritten_on_the_heartbeat_even_when_nothing_changed(services):
    # A trunk reports only when its state changes; the panel would take its row for a dead engine.
    class QuietTrunk(FakeChannel):
        name = "voice"

        async def start(self, events):
            self.events = events
            events.line_status(LineStatus(channel="voice", label="trunk-1", state="up"))

        def free_slots(self):
            return 0

    writes = []
    record = services.store.record_line_statuses
    services.store.record_line_statuses = lambda statuses: (writes.append([s.label for s in statuses]),
                                                            record(statuses))

    async def run(heartbeat):
        writes.clear()
        dispatcher = Dispatcher(services.store, [QuietTrunk()], {"voice": None},
                                DispatcherSettings(poll_interval=0.01, status_flush_interval=0.02,
                                                   line_heartbeat=heartbeat))
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.5, stop.set)
        await dispatcher.run(stop)
        return sum(labels.count("trunk-1") for labels in writes)

    assert asyncio.run(run(heartbeat=3600)) == 2     # published once, then 'stopped' at the end
    assert asyncio.run(run(heartbeat=0.1)) >= 4      # rewritten though it never changed
    with services.sessions() as s:
        assert s.scalar(select(Line.state).where(Line.label == "trunk-1")) == "stopped"
