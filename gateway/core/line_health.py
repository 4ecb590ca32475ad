"""How far a line's row can be believed: the engine writes it, the CLI and the panel read it.

Modems report their health every ``[engine] health_interval`` (30 s by default);
trunks when something changes, and every line at least once a minute (the
dispatcher's heartbeat). A row older than that means the engine is not
reporting, or that modem missed its health reads: the line counts as down for
capacity and ETAs, whatever its last state said. With several engines sharing the
database (docs/nodes.md) "the engine is reporting" is asked of each line's own
node: a dead node's idle trunks are down while the other node's stay up.
"""
from __future__ import annotations

import datetime as dt
from typing import Iterable, Protocol

from gateway.core.states import Channel

STALE_MINIMUM_SECONDS = 180


class _LineRow(Protocol):
    label: str
    channel: str
    updated_at: dt.datetime | None


def stale_after(health_interval: float) -> float:
    """Seconds after which a modem's report, or the freshest of all reports, is too old to trust."""
    return max(STALE_MINIMUM_SECONDS, 3 * health_interval)


def stale_lines(lines: Iterable[_LineRow], now: dt.datetime, stale_seconds: float) -> dict[str, bool]:
    """label -> True when that line's row cannot be trusted any more."""
    rows = list(lines)
    ages = {line.label: (now - line.updated_at).total_seconds() if line.updated_at else None for line in rows}
    freshest: dict[str | None, float] = {}
    for line in rows:
        age = ages[line.label]
        node = getattr(line, "node", None)
        if age is not None:
            freshest[node] = min(age, freshest.get(node, age))
    return {line.label: not freshest.get(getattr(line, "node", None), stale_seconds + 1) <= stale_seconds
            or (line.channel == Channel.SMS and (ages[line.label] is None or ages[line.label] > stale_seconds))
            for line in rows}
