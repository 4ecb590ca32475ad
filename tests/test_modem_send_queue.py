"""The sends handed from the loop to a modem's thread, taken here without a thread."""
from modem.send_queue import SendJob, SendQueue


def job(parts: int) -> SendJob:
    return SendJob(pdus=[object()] * parts, future=None)


def test_a_modem_holds_two_sends_and_counts_their_parts_until_done():
    sends = SendQueue(depth=2)
    first, second = job(3), job(1)
    sends.hand_over(first)
    assert sends.has_room()
    sends.hand_over(second)
    assert not sends.has_room() and sends.queued_parts == 4
    assert sends.take(timeout=0) is first          # taken by the thread: still in hand
    assert not sends.has_room()
    sends.done(3)
    assert sends.has_room() and sends.queued_parts == 1


def test_a_wake_up_reaches_only_a_thread_that_waits():
    sends = SendQueue()
    sends.wake()                                    # the thread is busy: it looks at its reports anyway
    assert sends.empty()


def test_the_stop_ends_the_wait_without_a_send_and_draining_fails_what_is_left():
    sends = SendQueue()
    left = job(1)
    sends.hand_over(left)
    sends.stop()
    assert sends.drain() == [left] and sends.empty()
    sends.stop()
    assert sends.take(timeout=0) is None
