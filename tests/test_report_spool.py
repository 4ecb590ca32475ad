"""Status reports are fsync'd to a spool before a modem may delete them, so a held database
does not fill the modems' report memories; what a crash leaves in the spool is recorded at the
next start."""
import asyncio
import dataclasses
import sqlite3

from sqlalchemy import select

from gateway.core.alerts import AlertRequest, Target
from gateway.core.channels import StatusReport
from gateway.core.db import make_engine, make_sessionmaker
from gateway.core.dispatcher import Dispatcher, DispatcherSettings
from gateway.core.models import Delivery
from gateway.core.report_spool import ReportSpool
from gateway.core.retry import SmsPolicy, SmsRetry
from gateway.core.store import Store
from gateway.core.store_worker import AsyncStore, RetrySettings, StoreWorker
from tests.test_dispatcher import FakeChannel


def test_batches_not_landed_are_what_the_next_start_replays(tmp_path):
    spool = ReportSpool(tmp_path / "spool.jsonl")
    first = spool.append("m1", [StatusReport(1, True, "TP-ST 0x00")])
    spool.append("m2", [StatusReport(7, False, "TP-ST 0x41"), StatusReport(8, True, "TP-ST 0x00")])
    spool.landed(first)
    spool.close()   # the engine dies here
    with open(tmp_path / "spool.jsonl", "a") as torn:
        torn.write('{"batch": 3, "line": "m1", "rep')   # a write cut by the crash: never acknowledged
    assert ReportSpool(tmp_path / "spool.jsonl").unlanded() == [
        ("m2", [StatusReport(7, False, "TP-ST 0x41"), StatusReport(8, True, "TP-ST 0x00")])]


def test_the_spool_is_emptied_once_everything_landed(tmp_path):
    spool = ReportSpool(tmp_path / "spool.jsonl")
    spool.landed(spool.append("m1", [StatusReport(1, True, "ok")]))
    assert (tmp_path / "spool.jsonl").read_text() == ""
    spool.append("m1", [StatusReport(2, True, "ok")])
    assert len(ReportSpool(tmp_path / "spool.jsonl").unlanded()) == 1


def test_a_spooled_report_is_recorded_at_the_next_start(contacts, tmp_path):
    contacts.alerts.create(AlertRequest(text="x", target=Target(zones=("Fregene",))))
    retry = SmsRetry.from_config(dataclasses.replace(contacts.config.retry, initial_delay=0))
    settings = DispatcherSettings(poll_interval=0.01, report_timeout=0.1, report_spool=tmp_path / "spool.jsonl")
    channel = FakeChannel()
    asyncio.run(Dispatcher(contacts.store, [channel], {"sms": SmsPolicy(retry)}, settings).run(
        asyncio.Event(), once=True))
    with contacts.sessions() as s:
        assert set(s.scalars(select(Delivery.state))) == {"sent"}
    # The modem's reports were spooled (and deleted from the modem), then the engine died.
    crashed = ReportSpool(tmp_path / "spool.jsonl")
    for number, line, refs in channel.sent:
        crashed.append(line, [StatusReport(ref, True, "TP-ST 0x00") for ref in refs])
    crashed.close()
    asyncio.run(Dispatcher(contacts.store, [FakeChannel()], {"sms": SmsPolicy(retry)}, settings).run(
        asyncio.Event(), once=True))
    with contacts.sessions() as s:
        assert set(s.scalars(select(Delivery.state))) == {"delivered"}
    assert ReportSpool(tmp_path / "spool.jsonl").unlanded() == []


def test_a_report_is_safe_once_spooled_while_the_database_is_still_held(contacts, tmp_path):
    contacts.alerts.create(AlertRequest(text="x", target=Target(zones=("Fregene",))))
    retry = SmsRetry.from_config(dataclasses.replace(contacts.config.retry, initial_delay=0))
    channel = FakeChannel()
    asyncio.run(Dispatcher(contacts.store, [channel], {"sms": SmsPolicy(retry)},
                           DispatcherSettings(poll_interval=0.01, report_timeout=0.1)).run(asyncio.Event(), once=True))
    number, line, refs = channel.sent[0]
    store = Store(make_sessionmaker(make_engine(contacts.config.database_url, busy_timeout=0.02)))
    writer = StoreWorker(RetrySettings(first_pause=0.005, max_pause=0.02))
    spool_path = tmp_path / "spool.jsonl"
    dispatcher = Dispatcher(AsyncStore(store, writer), [], {},
                            DispatcherSettings(report_spool=spool_path))
    holder = sqlite3.connect(contacts.config.database_url.split("///", 1)[1], isolation_level=None)

    async def main():
        writer.start()
        holder.execute("BEGIN EXCLUSIVE")   # a backup holds the database
        await dispatcher.status_reports(line, [StatusReport(ref, True, "TP-ST 0x00") for ref in refs])
        # The modem may delete its copies now: they are on disk, the database does not have them yet.
        assert [batch_line for batch_line, _ in ReportSpool(spool_path).unlanded()] == [line]
        while writer.retries < 3:
            await asyncio.sleep(0.01)
        holder.execute("ROLLBACK")
        await asyncio.wait(set(dispatcher._tasks))

    asyncio.run(main())
    holder.close()
    writer.stop(10)
    assert ReportSpool(spool_path).unlanded() == []
    with contacts.sessions() as s:
        assert s.scalar(select(Delivery.state).where(Delivery.e164 == number)) == "delivered"
