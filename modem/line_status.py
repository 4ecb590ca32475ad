"""What a modem's worker knows about its line, and the LineStatus it reports.

Written on the event loop thread only (the modem's thread sends its changes
there, see ModemWorker._set), so every report is a consistent picture.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from gateway.core import states
from gateway.core.channels import LineStatus
from modem.driver import Health


@dataclass
class LineState:
    state: states.LineState = states.LineState.STARTING   # starting | up | down | suspended
    port: str | None = None
    imei: str | None = None
    health: Health = field(default_factory=lambda: Health(None, None, None, None))
    last_error: str | None = None
    sent_total: int = 0
    failed_total: int = 0

    def report(self, label: str, *, sent_today: int, daily_cap: int, rate_per_minute: float) -> LineStatus:
        return LineStatus(channel=states.Channel.SMS, label=label, state=self.state, port=self.port, imei=self.imei,
                          signal=self.health.signal, registration=self.health.registration,
                          operator=self.health.operator, sim_state=self.health.sim_state, smsc=self.health.smsc,
                          last_error=self.last_error, sent_today=sent_today, daily_cap=daily_cap,
                          sent_total=self.sent_total, failed_total=self.failed_total,
                          rate_per_minute=round(rate_per_minute, 2))
