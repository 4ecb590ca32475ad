"""How much one modem may send: the operator's per-minute and daily caps, and what it really does.

Pure bookkeeping with an injected clock (monotonic seconds) and calendar, so
the tests drive time without sleeping. ``SendBudget`` lives on the event loop
thread (it decides whether a modem may take a send); ``WirePacer`` on the
modem's own thread (it spaces what goes on the wire).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable

Clock = Callable[[], float]
Calendar = Callable[[], dt.date]

# The date is looked at once a minute: ``allows`` runs for every free-slot count.
DAY_CHECK_INTERVAL = 60.0
# The measured rate covers the sends of this many recent seconds.
RATE_WINDOW = 120.0


def spacing(parts: int, per_minute: float) -> float:
    """Seconds ``parts`` segments take under a cap of ``per_minute`` segments a minute."""
    return parts * 60.0 / per_minute


class SendBudget:
    """The per-minute spacing of hand-overs and the daily cap of one SIM.

    The day's count starts from what the database says was sent today (a
    restart must not give a SIM a fresh budget) and falls back to zero at the
    first check after midnight.
    """

    def __init__(self, per_minute: float, daily_cap: int, sent_today: int, *, clock: Clock,
                 today: Calendar = dt.date.today) -> None:
        self.per_minute = per_minute
        self.daily_cap = daily_cap
        self._clock = clock
        self._today = today
        self._sent_today = sent_today
        self._day = today()
        self._next_day_check = 0.0
        self.next_allowed = 0.0     # earliest hand-over of the next send
        self._recent: list[tuple[float, int]] = []  # (clock, parts) of the sends done lately

    @property
    def sent_today(self) -> int:
        self._roll_day(self._clock())
        return self._sent_today

    def _roll_day(self, now: float) -> None:
        if now < self._next_day_check:
            return
        self._next_day_check = now + DAY_CHECK_INTERVAL
        today = self._today()
        if today != self._day:
            self._day, self._sent_today = today, 0

    def allows(self, parts: int, reserved: int, now: float) -> bool:
        """Whether ``parts`` more segments may be handed over at ``now``, with ``reserved``
        segments already handed over and not yet done."""
        self._roll_day(now)
        return now >= self.next_allowed and self._sent_today + reserved + parts <= self.daily_cap

    def reserve(self, parts: int) -> float:
        """A send of ``parts`` segments is handed over now: the next one may follow while it
        is on the wire, but no sooner than the cap allows. Seconds until that moment."""
        now = self._clock()
        self.next_allowed = max(self.next_allowed, now) + spacing(parts, self.per_minute)
        return self.next_allowed - now

    def spent(self, parts: int) -> None:
        """A send of ``parts`` segments went out."""
        self._sent_today += parts
        self._recent.append((self._clock(), parts))

    def measured_rate(self) -> float:
        """Segments per minute this modem can do: its cap, or what it really did lately."""
        now = self._clock()
        self._recent = [(t, n) for t, n in self._recent if now - t < RATE_WINDOW]
        if len(self._recent) < 3:
            return self.per_minute
        span = max(1e-3, now - self._recent[0][0])
        # The first send only opens the span: the segments counted are those after it.
        return min(self.per_minute, sum(n for _, n in self._recent[1:]) * 60.0 / span)


class WirePacer:
    """The per-minute cap counted from what really went on the wire: a send that waited
    behind another must not follow it closer than the cap allows."""

    def __init__(self, per_minute: float, *, clock: Clock) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._next = 0.0

    def wait(self) -> float:
        """Seconds to wait before the next write (0 when it may go now)."""
        return max(0.0, self._next - self._clock())

    def writing(self, parts: int) -> None:
        """A send of ``parts`` segments starts on the wire now."""
        self._next = self._clock() + spacing(parts, self.per_minute)
