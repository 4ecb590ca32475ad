"""An alert's three pictures at once, from the database: what the alert page polls and the report prints."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from markupsafe import Markup
from sqlalchemy.orm import Session

from gateway.core.alert_figures import outcomes_by_attempt, reach_series, zone_reach
from gateway.core.config import Config
from gateway.core.models import Alert
from gateway.core.states import AlertState, Channel
from web.pictures import attempts_svg, reach_curve_svg, zone_map_svg
from web.progress import stale_after


@dataclass(frozen=True)
class AlertPictures:
    reach: Markup
    attempts: Markup | None        # None: the alert places no calls
    zones: Markup
    running: bool                  # still changing: worth drawing again

    def as_json(self) -> dict:
        return {"reach": str(self.reach), "attempts": str(self.attempts) if self.attempts is not None else None,
                "zones": str(self.zones), "running": self.running}


def alert_pictures(session: Session, alert: Alert, config: Config) -> AlertPictures:
    """The reach curve (with the ETA the panel shows, from the lines' rates), outcomes by call when the
    alert calls, and the zone map, drawn in the current locale."""
    series = reach_series(session, alert.id, stale_seconds=stale_after(config))
    calls = Channel.VOICE in alert.delivery_channels
    return AlertPictures(reach=reach_curve_svg(series),
                         attempts=attempts_svg(outcomes_by_attempt(session, alert.id)) if calls else None,
                         zones=zone_map_svg(zone_reach(session, alert.id)),
                         running=alert.state in (AlertState.ACTIVE, AlertState.AWAITING_APPROVAL))


@dataclass
class PicturesCache:
    """The pictures drawn in the last ``seconds``, per alert and language, shared by everyone watching.

    In an emergency several people follow the same alert (operators, the mayor, the Prefecture) and each
    page asks every few seconds; at 100,000 recipients one drawing is a few aggregate queries over the
    whole alert, so they share one drawing instead of each costing the box its own."""
    seconds: float = 4.0
    clock: Callable[[], float] = time.monotonic
    _drawn: dict[tuple[int, str], tuple[float, AlertPictures]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, alert_id: int, language: str, draw: Callable[[], AlertPictures]) -> AlertPictures:
        key = (alert_id, language)
        with self._lock:
            kept = self._drawn.get(key)
            if kept is not None and self.clock() - kept[0] < self.seconds:
                return kept[1]
        pictures = draw()   # outside the lock: another alert's drawing need not wait for this one
        with self._lock:
            now = self.clock()
            self._drawn = {k: v for k, v in self._drawn.items() if now - v[0] < self.seconds}
            self._drawn[key] = (now, pictures)
        return pictures
