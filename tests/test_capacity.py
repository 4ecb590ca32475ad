"""The one ETA (gateway/core/capacity.py): what the lines up now can do, and how long the work left takes."""
from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from gateway.core.capacity import ChannelEta, estimate, eta_seconds, line_rates, overall_seconds, remaining

NOW = dt.datetime(2026, 5, 1, 12, 0)


def line(label: str, channel: str, state: str = "up", rate: float | None = 10.0, age: float = 10.0):
    return SimpleNamespace(label=label, channel=channel, state=state, rate_per_minute=rate,
                           updated_at=NOW - dt.timedelta(seconds=age))


def test_only_lines_up_by_a_recent_report_count():
    lines = [line("m1", "sms", rate=12.0), line("m2", "sms", state="down"), line("m3", "sms", age=600),
             line("m4", "sms", rate=None), line("pstn", "voice", rate=4.0)]
    assert line_rates(lines, NOW, 180) == {"sms": 12.0, "voice": 4.0}
    # Nothing recent from the engine at all: no line counts, whatever its last state said.
    assert line_rates([line("m1", "sms", age=600), line("pstn", "voice", age=600)], NOW, 180) == \
        {"sms": 0.0, "voice": 0.0}


def test_an_sms_needs_its_segments_and_a_call_one_call():
    etas = estimate({"sms": 10, "voice": 10}, 3, {"sms": 60.0, "voice": 20.0})
    assert etas == {"sms": ChannelEta(remaining=10, rate_per_minute=60.0, seconds=30.0),
                    "voice": ChannelEta(remaining=10, rate_per_minute=20.0, seconds=30.0)}
    assert overall_seconds(etas.values()) == 30.0


def test_nothing_left_is_done_and_work_without_a_line_cannot_be_estimated():
    assert eta_seconds(0, 0.0) == 0.0
    assert eta_seconds(5, 0.0) is None
    assert eta_seconds(7, 9.0) == 47.0           # whole seconds
    etas = estimate({"sms": 0, "voice": 3}, 1, {"sms": 20.0})
    assert etas["sms"].seconds == 0.0 and etas["voice"].seconds is None
    assert overall_seconds(etas.values()) is None
    assert overall_seconds([]) == 0.0


def test_remaining_counts_what_waits_and_what_is_being_sent():
    assert remaining({"pending": 4, "submitting": 2, "sent": 7, "delivered": 1, "failed": 1}) == 6
