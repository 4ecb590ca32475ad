"""A modem's per-minute and daily caps and its measured rate, on a clock the test moves."""
import datetime as dt

import pytest

from modem.budget import DAY_CHECK_INTERVAL, SendBudget, WirePacer


class FakeTime:
    """A monotonic clock and a calendar the test sets by hand."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.date = dt.date(2026, 3, 1)

    def clock(self) -> float:
        return self.now

    def today(self) -> dt.date:
        return self.date


def budget(time: FakeTime, *, per_minute=60, daily_cap=10, sent_today=0) -> SendBudget:
    return SendBudget(per_minute, daily_cap, sent_today, clock=time.clock, today=time.today)


def test_a_send_spaces_the_next_hand_over_by_the_per_minute_cap():
    time = FakeTime()
    caps = budget(time, per_minute=60)
    assert caps.allows(1, 0, time.now)
    assert caps.reserve(2) == 2.0                 # two segments at one a second
    assert not caps.allows(1, 0, time.now + 1.9)
    assert caps.allows(1, 0, time.now + 2.0)


def test_hand_overs_in_a_row_queue_up_behind_each_other():
    time = FakeTime()
    caps = budget(time, per_minute=30)
    caps.reserve(1)
    time.now += 0.5                               # the next one is handed over early, on the wire later
    assert caps.reserve(1) == 3.5
    assert caps.next_allowed == 1004.0


def test_the_daily_cap_counts_what_was_sent_and_what_is_still_in_hand():
    time = FakeTime()
    caps = budget(time, daily_cap=10, sent_today=7)
    assert caps.allows(3, 0, time.now)
    assert not caps.allows(3, 1, time.now)       # one segment handed over, not yet done
    caps.spent(3)
    assert caps.sent_today == 10
    assert not caps.allows(1, 0, time.now)


def test_an_exhausted_budget_is_whole_again_after_midnight():
    time = FakeTime()
    caps = budget(time, daily_cap=5, sent_today=5)
    assert not caps.allows(1, 0, time.now)
    time.date += dt.timedelta(days=1)
    time.now += 1
    # The date is read once a minute, not at every free-slot count.
    assert not caps.allows(1, 0, time.now)
    time.now += DAY_CHECK_INTERVAL
    assert caps.allows(1, 0, time.now)
    assert caps.sent_today == 0


def test_the_reported_count_falls_back_to_zero_after_midnight_too():
    time = FakeTime()
    caps = budget(time, sent_today=4)
    assert caps.sent_today == 4
    time.date += dt.timedelta(days=1)
    time.now += DAY_CHECK_INTERVAL
    assert caps.sent_today == 0


def test_the_measured_rate_is_the_cap_until_three_sends_then_what_was_done():
    time = FakeTime()
    caps = budget(time, per_minute=60)
    caps.spent(1)
    time.now += 10
    caps.spent(1)
    assert caps.measured_rate() == 60             # two sends say nothing yet
    time.now += 10
    caps.spent(1)
    assert caps.measured_rate() == 6.0            # two segments after the first, in 20 s
    time.now += 200
    assert caps.measured_rate() == 60             # old sends forgotten


def test_the_measured_rate_never_exceeds_the_cap():
    time = FakeTime()
    caps = budget(time, per_minute=10)
    for _ in range(5):
        caps.spent(1)
        time.now += 1
    assert caps.measured_rate() == 10


def test_the_wire_keeps_the_spacing_from_when_a_send_really_started():
    time = FakeTime()
    pacer = WirePacer(120, clock=time.clock)
    assert pacer.wait() == 0
    pacer.writing(1)
    time.now += 0.2
    assert pacer.wait() == pytest.approx(0.3)
    time.now += 1
    assert pacer.wait() == 0
