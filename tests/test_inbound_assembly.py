"""Received parts into whole messages: the pure rules (gateway/core/inbound.py) and their transactions
(gateway/core/inbound_store.py) over the migrated database, with an injected clock."""
from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select

from gateway.core.channels import ReceivedPart
from gateway.core.dispatcher import Dispatcher, DispatcherSettings
from gateway.core.inbound import fingerprint, joined, keep_pairs, storable
from gateway.core.inbound_spool import InboundSpool
from gateway.core.inbound_store import assemble_overdue, record_part
from gateway.core.models import InboundSms
from gateway.core.models_citizens import InboundPart

SENT = dt.datetime(2026, 12, 4, 11, 0, 0)
T0 = dt.datetime(2026, 12, 4, 11, 0, 5)
TIMEOUT = dt.timedelta(minutes=10)


def part(seq: int, text: str, *, parts: int = 3, reference: int = 42, sender: str = "+393331110001",
         line: str = "m0", at: dt.datetime = T0) -> ReceivedPart:
    return ReceivedPart(line=line, sender=sender, text=text, sent_at=SENT, reference=reference, parts=parts, seq=seq,
                        received_at=at)


def messages(services) -> list[InboundSms]:
    with services.sessions() as s:
        return list(s.scalars(select(InboundSms).order_by(InboundSms.id)))


def count_parts(services) -> int:
    with services.sessions() as s:
        return s.scalar(select(func.count()).select_from(InboundPart))


@pytest.mark.parametrize("order", [(1, 2, 3), (3, 1, 2), (2, 3, 1)])
def test_parts_in_any_order_on_any_line_make_one_message_when_the_last_arrives(services, order):
    texts = {1: "Siamo in ", 2: "via Roma 3, ", 3: "secondo piano"}
    created = [record_part(services.sessions, part(seq, texts[seq], line=f"m{seq}",
                                                   at=T0 + dt.timedelta(seconds=seq))) for seq in order]
    assert created == [0, 0, 1]
    [message] = messages(services)
    assert (message.text, message.parts, message.incomplete, message.handled) == (
        "Siamo in via Roma 3, secondo piano", 3, False, False)
    assert (message.line, message.sender, message.sent_at) == ("m1", "+393331110001", SENT)
    assert message.received_at == T0 + dt.timedelta(seconds=3)   # whole with its last part
    assert (message.alert_id, message.contact_id, message.kind, message.outcome) == (None, None, None, None)
    with services.sessions() as s:
        assert set(s.scalars(select(InboundPart.message_id))) == {message.id}


def test_a_16_bit_reference_keeps_two_messages_of_one_sender_apart(services):
    record_part(services.sessions, part(1, "uno ", parts=2, reference=0x1234))
    record_part(services.sessions, part(1, "primo ", parts=2, reference=0x1235))
    assert record_part(services.sessions, part(2, "secondo", parts=2, reference=0x1235)) == 1
    assert record_part(services.sessions, part(2, "due", parts=2, reference=0x1234)) == 1
    assert [m.text for m in messages(services)] == ["primo secondo", "uno due"]


def test_a_part_read_twice_is_stored_once(services):
    single = ReceivedPart(line="m0", sender="+393331110001", text="OK", sent_at=SENT, received_at=T0)
    assert record_part(services.sessions, single) == 1
    # Read again after a crash between our commit and the modem's delete, maybe on another port.
    assert record_part(services.sessions, ReceivedPart(line="m3", sender="+393331110001", text="OK", sent_at=SENT,
                                                       received_at=T0 + dt.timedelta(minutes=1))) == 0
    record_part(services.sessions, part(2, "b"))
    assert record_part(services.sessions, part(2, "b")) == 0
    assert [m.text for m in messages(services)] == ["OK"] and count_parts(services) == 2


def test_a_missing_part_is_waited_for_then_kept_incomplete(services):
    record_part(services.sessions, part(1, "SOS siamo in ", at=T0))
    record_part(services.sessions, part(3, "al secondo piano", at=T0 + dt.timedelta(seconds=2)))
    assert assemble_overdue(services.sessions, T0 + TIMEOUT - dt.timedelta(seconds=1), TIMEOUT) == 0
    assert messages(services) == []
    assert assemble_overdue(services.sessions, T0 + TIMEOUT, TIMEOUT) == 1
    [message] = messages(services)
    assert (message.text, message.parts, message.incomplete) == ("SOS siamo in al secondo piano", 3, True)
    # Done once: the next sweep finds nothing.
    assert assemble_overdue(services.sessions, T0 + 2 * TIMEOUT, TIMEOUT) == 0
    # A part coming after the message was given up on is not lost: kept on its own, incomplete.
    assert record_part(services.sessions, part(2, "via Roma ", at=T0 + 2 * TIMEOUT)) == 0
    assert assemble_overdue(services.sessions, T0 + 3 * TIMEOUT, TIMEOUT) == 1
    assert [(m.text, m.incomplete) for m in messages(services)] == [
        ("SOS siamo in al secondo piano", True), ("via Roma ", True)]


def test_an_emoji_split_across_two_parts_is_joined_again(services):
    halves = "Ok \ud83d\udc4d"
    assert record_part(services.sessions, part(2, halves[4:], parts=2)) == 0
    assert record_part(services.sessions, part(1, halves[:4], parts=2)) == 1
    assert [m.text for m in messages(services)] == ["Ok 👍"]


def test_a_half_pair_whose_other_half_never_came_becomes_a_replacement_character():
    assert joined([storable("fine \ud83d")]) == "fine \ufffd"
    assert joined([storable("Ok "), storable("👍")]) == "Ok 👍"
    assert keep_pairs("a\ud83d\udc4d b \ud83d") == "a👍 b \ud83d"


def test_the_fingerprint_ignores_the_line_and_the_reading_time_but_not_the_text():
    first = part(1, "uno")
    assert fingerprint(first) == fingerprint(part(1, "uno", line="m9", at=T0 + TIMEOUT))
    assert fingerprint(first) != fingerprint(part(1, "uno!"))
    assert fingerprint(first) != fingerprint(part(2, "uno"))


def test_the_engine_signals_each_commit_that_made_a_message(services):
    async def scenario():
        dispatcher = Dispatcher(services.store, [], {}, DispatcherSettings())
        dispatcher.store.worker.start()
        try:
            await dispatcher.inbound_part(part(1, "a ", parts=2))
            after_first = dispatcher.inbound_arrived.is_set()
            await dispatcher.inbound_part(part(2, "b", parts=2))
            return after_first, dispatcher.inbound_arrived.is_set()
        finally:
            await asyncio.to_thread(dispatcher.store.worker.stop, 5)

    assert asyncio.run(scenario()) == (False, True)
    assert [m.text for m in messages(services)] == ["a b"]


def test_a_spooled_part_comes_back_as_it_went_in_half_pair_included(tmp_path):
    spool = InboundSpool(tmp_path / "inbound-spool.jsonl")
    kept = [part(1, "Ok \ud83d", parts=2), ReceivedPart(line="m1", sender="Comune", text="prova", sent_at=None,
                                                         alphanumeric=True)]
    spool.append("m0", kept[:1])
    spool.landed(spool.append("m1", kept[1:]))
    spool.append("m1", kept[1:])
    spool.close()
    assert InboundSpool(tmp_path / "inbound-spool.jsonl").unlanded() == [("m0", kept[:1]), ("m1", kept[1:])]
