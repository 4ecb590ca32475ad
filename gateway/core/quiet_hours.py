"""Quiet hours (``[ops] quiet_hours``): when information messages wait for the morning.

Pure time arithmetic, no I/O. The window is written in Italian wall-clock time ("21:00-08:00",
Europe/Rome) and every instant the rest of the code handles is naive UTC, so each question is
answered by converting the instant to local time with zoneinfo: on the nights the clocks change
(last Sunday of March and of October) the window still ends at 08:00 on the wall clock, which is
07:00 or 06:00 UTC depending on the season, never an hour early or late.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Europe/Rome")
DEFAULT = "21:00-08:00"
_WINDOW = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])")


@dataclass(frozen=True)
class QuietHours:
    """From ``start`` to ``end`` (local wall-clock times); ``start > end`` spans midnight."""
    start: dt.time
    end: dt.time
    zone: ZoneInfo = LOCAL_TZ

    def period(self, at: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
        """(start, end) in naive UTC of the quiet period ``at`` (naive UTC) falls in, or None."""
        local = at.replace(tzinfo=dt.timezone.utc).astimezone(self.zone)
        today = local.date()
        # The candidate periods that may contain ``local``: the one starting yesterday evening
        # and the one starting today (for a window within one day, only today's).
        for start_day in (today - dt.timedelta(days=1), today):
            end_day = start_day + dt.timedelta(days=1) if self.start > self.end else start_day
            start = self._utc(start_day, self.start)
            end = self._utc(end_day, self.end)
            if start <= at < end:
                return start, end
        return None

    def held_until(self, at: dt.datetime) -> dt.datetime | None:
        """When an information message due at ``at`` (naive UTC) may go: the end of the quiet
        period, in naive UTC; None when ``at`` is outside quiet hours."""
        period = self.period(at)
        return None if period is None else period[1]

    def _utc(self, day: dt.date, time: dt.time) -> dt.datetime:
        # A wall-clock time that does not exist (02:30 on the spring-forward night) is read with
        # the offset before the change (zoneinfo's fold=0): 03:30 summer time, a sensible answer.
        local = dt.datetime.combine(day, time, tzinfo=self.zone)
        return local.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def local_end(self) -> str:
        return self.end.strftime("%H:%M")


def window_problem(value: str) -> str | None:
    """Why ``value`` is no quiet-hours window (the config check), or None."""
    if value == "":
        return None
    match = _WINDOW.fullmatch(value.strip())
    if match is None:
        return 'must be empty or a window written HH:MM-HH:MM in Italian time, e.g. "21:00-08:00"'
    if match.group(1, 2) == match.group(3, 4):
        return "must start and end at different times (empty turns quiet hours off)"
    return None


def parse_window(value: str, zone: ZoneInfo = LOCAL_TZ) -> QuietHours | None:
    """``"21:00-08:00"`` as QuietHours; None for "" (no quiet hours). ValueError when malformed."""
    problem = window_problem(value)
    if problem:
        raise ValueError(f"quiet hours {value!r}: {problem}")
    if value == "":
        return None
    start, end = value.strip().split("-")
    return QuietHours(dt.time.fromisoformat(start), dt.time.fromisoformat(end), zone)


def local_time(at: dt.datetime, zone: ZoneInfo = LOCAL_TZ) -> dt.datetime:
    """A naive UTC instant as Italian wall-clock time (what the panel and the CLI print)."""
    return at.replace(tzinfo=dt.timezone.utc).astimezone(zone)
