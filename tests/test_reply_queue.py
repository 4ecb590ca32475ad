"""Answers to citizens: queued below alerts, sent through the SMS channel, never lost in a crash."""
import asyncio

import pytest
from sqlalchemy import select, update

from gateway.core.alerts import AlertRequest, Target
from gateway.core.channels import DeliveryFailed
from gateway.core.citizens import CitizenService, CitizenSettings
from gateway.core.dispatcher import Dispatcher, DispatcherSettings
from gateway.core.failures import Failure, FailureKind
from gateway.core.models import Delivery, InboundSms
from gateway.core.models_citizens import SmsReply
from gateway.core.replies import queue_reply
from gateway.core.reply_queue import MAX_ATTEMPTS, ReplyQueue
from gateway.core.retry import SmsPolicy, SmsRetry
from gateway.core.states import ReplyReason, ReplyState
from tests.test_dispatcher import FakeChannel

pytestmark = pytest.mark.both_databases

CITIZEN = "+393339990001"


def queued(services, e164=CITIZEN, text="Iscrizione fatta."):
    with services.sessions.begin() as s:
        reply = queue_reply(s, e164, text, ReplyReason.REGISTERED)
        s.flush()
        return reply.id


def reply_row(services, reply_id):
    with services.sessions() as s:
        return s.get(SmsReply, reply_id)


def dispatcher(services, channel, citizens=None):
    return Dispatcher(services.store, [channel], {"sms": SmsPolicy(SmsRetry.from_config(services.config.retry))},
                      DispatcherSettings(poll_interval=0.01, report_timeout=0.3, status_flush_interval=0.05,
                                         inbound_poll=0.05),
                      citizens=citizens)


async def run_until(dispatcher_, done, timeout=20.0):
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher_.run(stop))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done() and loop.time() < deadline:
        await asyncio.sleep(0.02)
    stop.set()
    await task


def test_no_answer_is_claimed_while_an_alert_sms_waits(contacts):
    reply_id = queued(contacts)
    contacts.alerts.create(AlertRequest(text="Allerta", target=Target(zones=("Fregene",))))
    queue = ReplyQueue(contacts.sessions)
    assert queue.claim(5) == []
    with contacts.sessions.begin() as s:
        s.execute(update(Delivery).values(state="sent"))
    [claimed] = queue.claim(5)
    assert claimed.reply_id == reply_id and reply_row(contacts, reply_id).state == ReplyState.SUBMITTING


def test_information_held_by_quiet_hours_does_not_hold_the_answers(contacts):
    import datetime as dt

    from gateway.core.quiet_hours import QuietHours
    reply_id = queued(contacts)
    contacts.alerts.create(AlertRequest(text="Acqua sospesa domani", category="information",
                                        target=Target(zones=("Fregene",))))
    night = dt.datetime(2027, 1, 15, 23, 30)     # 00:30 in Rome: quiet
    noon = dt.datetime(2027, 1, 15, 11, 0)
    quiet = QuietHours(dt.time(21), dt.time(8))
    assert ReplyQueue(contacts.sessions, quiet).claim(5, now=noon) == []   # by day the information goes first
    [claimed] = ReplyQueue(contacts.sessions, quiet).claim(5, now=night)
    assert claimed.reply_id == reply_id


def test_the_engine_sends_the_answer_after_the_alerts_sms(contacts):
    queued(contacts)
    contacts.alerts.create(AlertRequest(text="Allerta", target=Target(zones=("Fregene", "Isola Sacra"))))
    channel = FakeChannel()
    asyncio.run(run_until(dispatcher(contacts, channel), lambda: any(n == CITIZEN for n, _, _ in channel.sent)))
    numbers = [number for number, _, _ in channel.sent]
    assert numbers[-1] == CITIZEN and len(numbers) == 5
    row = reply_row(contacts, 1)
    assert (row.state, row.line, row.attempts) == (ReplyState.SENT, "a", 1) and row.sent_at is not None


def test_a_drain_with_once_sends_no_answer(contacts):
    reply_id = queued(contacts)
    contacts.alerts.create(AlertRequest(text="Allerta", target=Target(zones=("Fregene",))))
    channel = FakeChannel()
    asyncio.run(dispatcher(contacts, channel).run(asyncio.Event(), once=True))
    assert CITIZEN not in [n for n, _, _ in channel.sent]
    assert reply_row(contacts, reply_id).state == ReplyState.PENDING


def test_an_answer_in_flight_at_a_crash_goes_again_flagged(contacts):
    reply_id = queued(contacts)
    queue = ReplyQueue(contacts.sessions)
    assert queue.claim(1)
    assert queue.recover_interrupted() == 1
    row = reply_row(contacts, reply_id)
    assert (row.state, row.possible_duplicate) == (ReplyState.PENDING, True)


def test_transient_failures_are_retried_a_few_times_permanent_ones_not(contacts):
    queue = ReplyQueue(contacts.sessions)
    transient, permanent = queued(contacts), queued(contacts, "+393339990002")
    for attempt in range(1, MAX_ATTEMPTS + 1):
        with contacts.sessions.begin() as s:
            s.execute(update(SmsReply).where(SmsReply.id == transient).values(next_attempt_at=None))
        claims = {c.reply_id: c for c in queue.claim(5)}
        state = queue.record_failed(claims[transient], "+CMS ERROR 38", permanent=False, charged=True)
        assert state == (ReplyState.FAILED if attempt == MAX_ATTEMPTS else ReplyState.PENDING)
        if permanent in claims:
            assert queue.record_failed(claims[permanent], "+CMS ERROR 1", permanent=True,
                                       charged=True) == ReplyState.FAILED
    assert reply_row(contacts, transient).last_error == "+CMS ERROR 38"


def test_a_failed_send_through_the_channel_is_recorded(contacts):
    reply_id = queued(contacts)
    channel = FakeChannel(script={CITIZEN: [DeliveryFailed(Failure(FailureKind.CMS, "+CMS ERROR 1", permanent=True))]})
    asyncio.run(run_until(dispatcher(contacts, channel),
                          lambda: reply_row(contacts, reply_id).state == ReplyState.FAILED))
    assert reply_row(contacts, reply_id).state == ReplyState.FAILED


def test_a_message_committed_before_a_crash_is_acted_on_at_start_once(contacts):
    with contacts.sessions.begin() as s:
        s.add(InboundSms(line="a", sender=CITIZEN, text="ISCRIVI Fregene"))
    citizens = CitizenService(contacts.sessions, CitizenSettings(comune="Fiumicino"))
    for _ in range(2):   # the second start finds nothing more to do
        channel = FakeChannel()
        asyncio.run(run_until(dispatcher(contacts, channel, citizens),
                              lambda: all(r.state == ReplyState.SENT for r in _replies(contacts)) and
                              _replies(contacts)))
    with contacts.sessions() as s:
        [message] = s.scalars(select(InboundSms)).all()
    assert message.handled and message.kind == "command"
    assert [r.reason for r in _replies(contacts)] == [ReplyReason.REGISTERED]


def _replies(services):
    with services.sessions() as s:
        return s.scalars(select(SmsReply)).all()
