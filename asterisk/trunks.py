"""Voice trunks: configuration, which numbers each may call, and how fast.

Pure code with an injectable clock, so pacing and back-off are tested
without sleeping. Asterisk itself has no originate rate limit and checks a
trunk's maxcalls only after answer (shared/reference/asterisk-ami.md), so
the gateway must cap concurrency and pace originates on its own.
"""
from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import phonenumbers

from asterisk.dialstring import render_dial_string, trunk_of
from gateway.core.dialstring import NUMBER_FORMATS

ALLOWED_KINDS = ("all", "landline", "prefixes")
_PREFIX = re.compile(r"^\+[1-9]\d{0,14}$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# A number no trunk should refuse to render, to check a template at config time.
_PROBE_NUMBER = "+390612345678"


@dataclass(frozen=True)
class TrunkConfig:
    name: str
    dial_template: str                 # PJSIP/{number}@trunk1
    max_channels: int = 1
    calls_per_second: float = 1.0
    caller_id: str = ""
    allowed: str = "all"               # all | landline | prefixes
    prefixes: tuple[str, ...] = ()     # E.164 prefixes, for allowed = prefixes
    number_format: str = "keep_plus"   # see dialstring.render_dial_string
    inbound_reserved: int = 0          # channels outbound calls leave to the hotline

    def __post_init__(self) -> None:
        where = f"voice trunk {self.name!r}"
        if not _NAME.match(self.name):
            raise ValueError(f"{where}: name must be 1-64 letters, digits, '_', '.', '-'")
        if self.max_channels < 1:
            raise ValueError(f"{where}: max_channels must be at least 1, got {self.max_channels}")
        if not 0 <= self.inbound_reserved < self.max_channels:
            raise ValueError(f"{where}: inbound_reserved must be at least 0 and less than max_channels "
                             f"({self.max_channels}), got {self.inbound_reserved}")
        if not self.calls_per_second > 0:
            raise ValueError(f"{where}: calls_per_second must be positive, got {self.calls_per_second}")
        if self.allowed not in ALLOWED_KINDS:
            raise ValueError(f"{where}: allowed must be one of {ALLOWED_KINDS}, got {self.allowed!r}")
        if self.allowed == "prefixes" and not self.prefixes:
            raise ValueError(f"{where}: allowed = 'prefixes' needs at least one prefix")
        for prefix in self.prefixes:
            if not _PREFIX.match(prefix):
                raise ValueError(f"{where}: prefix {prefix!r} must be '+' and digits, e.g. '+39'")
        if self.number_format not in NUMBER_FORMATS:
            raise ValueError(f"{where}: number_format must be one of {NUMBER_FORMATS}")
        if re.search(r"[\r\n,]", self.caller_id):
            raise ValueError(f"{where}: caller_id must not contain commas or line breaks")
        try:
            # Renders a probe number, so a template without {number} or with
            # characters AMI would misread fails at start, not at the first alert.
            render_dial_string(self.dial_template, _PROBE_NUMBER, self.number_format)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from exc

    def allows(self, number: str) -> bool:
        """Whether this trunk may call ``number`` (E.164)."""
        if self.allowed == "all":
            return True
        if self.allowed == "prefixes":
            return any(number.startswith(prefix) for prefix in self.prefixes)
        try:
            kind = phonenumbers.number_type(phonenumbers.parse(number))
        except phonenumbers.NumberParseException:
            return False
        return kind in (phonenumbers.PhoneNumberType.FIXED_LINE,
                        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)

    def dial_string(self, number: str) -> str:
        return render_dial_string(self.dial_template, number, self.number_format)

    def outbound_limit(self, inbound_in_progress: int) -> int:
        """Channels our alert calls may hold: the reserve stays free for the hotline, and hotline
        calls beyond the reserve take channels from the alert, never the other way round."""
        return max(0, self.max_channels - max(self.inbound_reserved, inbound_in_progress))

    def carries(self, channel: str) -> bool:
        """Whether an inbound channel (``PJSIP/trunk1-00000007``) came in on this trunk's endpoint."""
        technology, _, resource = channel.partition("/")
        ours_technology, endpoint = trunk_of(self.dial_string(_PROBE_NUMBER))
        return technology.lower() == ours_technology.lower() and resource.rsplit("-", 1)[0] == endpoint


Clock = Callable[[], float]


class TokenBucket:
    """Originate pacing: ``rate`` tokens a second, at most ``burst`` saved up.

    The burst is one by default: originates are spread evenly instead of
    arriving at the provider in a clump that its own CPS limit would reject.
    """

    def __init__(self, rate: float, clock: Clock, burst: float = 1.0) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def available(self) -> int:
        self._refill()
        return int(self._tokens + 1e-9)

    def take(self) -> None:
        self._refill()
        self._tokens -= 1

    def seconds_until_token(self) -> float:
        self._refill()
        missing = 1 - self._tokens
        return max(0.0, missing / self.rate)


class ConcurrencyThrottle:
    """A trunk's channel limit, halved after a trunk-side failure and regained slowly.

    Causes 34/38/41/42 mean the provider or the network is saturated: keeping
    every channel busy would only collect more of them. Each failure halves
    the limit (never below one); every ``recovery_seconds`` without a new
    failure gives one channel back.
    """

    def __init__(self, limit: int, clock: Clock, recovery_seconds: float = 30.0) -> None:
        self.limit = limit
        self.recovery_seconds = recovery_seconds
        self._clock = clock
        self._reduced = limit
        self._since = clock()

    def effective(self) -> int:
        if self._reduced >= self.limit:
            return self.limit
        steps = int((self._clock() - self._since) / self.recovery_seconds)
        return min(self.limit, self._reduced + steps)

    def penalize(self) -> None:
        self._reduced = max(1, self.effective() // 2)
        self._since = self._clock()

    def seconds_until_next_step(self) -> float | None:
        """When ``effective`` grows again, or None when it is already at the limit."""
        if self.effective() >= self.limit:
            return None
        elapsed = self._clock() - self._since
        return self.recovery_seconds - elapsed % self.recovery_seconds


class TrunkFailureWindow:
    """Whether trunk-side causes (34, 38, 41, 42) say something about *our* trunk.

    One callee's exchange answering ``Congestion()`` (cause 34 from the far end)
    says nothing about the trunk: halving the trunk for it slowed a whole alert
    to one channel. The trunk is judged failing only when such causes come back
    for several different numbers and make up most of its recent calls: at least
    ``min_numbers`` distinct numbers and ``min_share`` of the calls that ended
    in the last ``window_seconds``.
    """

    def __init__(self, clock: Clock, window_seconds: float = 60.0, min_numbers: int = 3,
                 min_share: float = 2 / 3) -> None:
        self._clock = clock
        self.window_seconds = window_seconds
        self.min_numbers = min_numbers
        self.min_share = min_share
        # (ended at, number, trunk-side), oldest first: the expired ones leave from the left,
        # so a call's end costs the same with 30 calls in the window as with 3000.
        self._calls: deque[tuple[float, str, bool]] = deque()

    def record(self, number: str, trunk_side: bool) -> bool:
        """Note one call that ended; returns whether the trunk now looks failing."""
        now = self._clock()
        while self._calls and now - self._calls[0][0] > self.window_seconds:
            self._calls.popleft()
        self._calls.append((now, number, trunk_side))
        if not trunk_side:
            return False
        failing = [c for c in self._calls if c[2]]
        return (len({c[1] for c in failing}) >= self.min_numbers
                and len(failing) >= self.min_share * len(self._calls))
