"""What the lines up now can do, and how long the work left will take: the one ETA of the CLI, the panel and the API.

A line counts with the rate the engine last reported for it (SMS segments or calls
a minute: a modem's per_minute, or less when it did less lately; a trunk's channels
over the average call), when it is up by a report recent enough to believe
(gateway.core.line_health). An SMS needs its segments from the lines, a call one call.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable, Mapping, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.core import line_health
from gateway.core.models import Line
from gateway.core.states import OPEN_DELIVERY_STATES, Channel, LineState

# Deliveries still to do: waiting for a line, or being sent now.
OPEN_STATES = frozenset(OPEN_DELIVERY_STATES)


class _LineRow(Protocol):
    label: str
    channel: str
    state: str
    rate_per_minute: float | None
    updated_at: dt.datetime | None


@dataclass(frozen=True)
class ChannelEta:
    remaining: int              # deliveries still to do
    rate_per_minute: float      # SMS segments or calls a minute the lines up now can do
    seconds: float | None       # 0.0: nothing left; None: work left and no line up to do it


def remaining(states: Mapping[str, int]) -> int:
    """Deliveries still to do, from the counts by delivery state."""
    return sum(count for state, count in states.items() if state in OPEN_STATES)


def line_rates(lines: Iterable[_LineRow], now: dt.datetime, stale_seconds: float) -> dict[str, float]:
    """Per channel: what the lines up now can do a minute (0.0 for a channel whose lines are all down)."""
    rows = list(lines)
    stale = line_health.stale_lines(rows, now, stale_seconds)
    rates: dict[str, float] = {}
    for line in rows:
        up = line.state == LineState.UP and not stale[line.label]
        rates[line.channel] = rates.get(line.channel, 0.0) + ((line.rate_per_minute or 0.0) if up else 0.0)
    return rates


def current_rates(session: Session, now: dt.datetime, stale_seconds: float) -> dict[str, float]:
    """``line_rates`` of every line as the engine last reported it."""
    return line_rates(session.scalars(select(Line)), now, stale_seconds)


def eta_seconds(units: int, rate_per_minute: float) -> float | None:
    """Whole seconds ``units`` (segments or calls) take at this rate; 0.0 for nothing, None with no rate."""
    if units <= 0:
        return 0.0
    if rate_per_minute <= 0:
        return None
    return float(round(units / rate_per_minute * 60.0))


def estimate(remaining_by_channel: Mapping[str, int], segments: int,
             rates: Mapping[str, float]) -> dict[str, ChannelEta]:
    """Per channel: how long its deliveries still to do take; ``segments`` per SMS."""
    out = {}
    for channel, count in remaining_by_channel.items():
        rate = rates.get(channel, 0.0)
        units = count * (segments if channel == Channel.SMS else 1)
        out[channel] = ChannelEta(remaining=count, rate_per_minute=rate, seconds=eta_seconds(units, rate))
    return out


def overall_seconds(etas: Iterable[ChannelEta]) -> float | None:
    """When every channel is done: its slowest; None when one of them has work and no line."""
    seconds = [eta.seconds for eta in etas]
    return None if None in seconds else max(seconds, default=0.0)
