"""Alarms about the box itself: a modem lost, a SIM near its daily cap, the AMI link down,
a trunk whose calls keep failing on the network side.

The monitor runs in the engine and reads the lines table the engine keeps
(state, sent today, cap), so it needs no hook into the channels. An alarm is
stored (the dashboard shows the open ones) and, when ``[ops] on_call`` lists
numbers, sent to them as a priority SMS alert: the engine then sends it
through whichever modem still works, before any other alert.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.core.alerts import AlertError, AlertRequest, AlertService, Target
from gateway.core.config import Config
from gateway.core.db import utcnow
from gateway.core.models import Attempt, Line
from gateway.core.models_ops import Alarm
from gateway.core.plurals import plural
from gateway.core.states import Channel, LineState
from gateway.core.store_worker import log_failure

log = logging.getLogger(__name__)

DOWN_STATES = (LineState.DOWN, LineState.SUSPENDED)
# Q.850 causes raised by the trunk or the network, not by the callee (no circuit, network
# out of order, temporary failure, switching congestion): the same set as
# asterisk/outcomes.py TRUNK_SIDE_CAUSES, spelled out here because gateway/ reads the
# attempts the voice channel stored, not the channel itself (tests check they agree).
TRUNK_SIDE_CAUSES = frozenset({"34", "38", "41", "42"})


@dataclass(frozen=True)
class AlarmSettings:
    comune: str
    on_call: tuple[str, ...] = ()
    modem_lost_seconds: float = 300.0
    ami_down_seconds: float = 300.0
    sim_cap_warning: float = 0.9
    trunk_failures: int = 5                  # trunk-side failures in a row that raise trunk_failing
    modems: frozenset[str] = frozenset()     # labels of the configured modems
    trunks: frozenset[str] = frozenset()     # names of the configured trunks
    ami_link: str = "asterisk"               # the AMI link's host:port: the ami_down alarm's subject

    @property
    def check_interval(self) -> float:
        return max(0.5, min(10.0, self.modem_lost_seconds / 3, self.ami_down_seconds / 3))

    @classmethod
    def from_config(cls, config: Config) -> "AlarmSettings":
        ops = config.ops
        return cls(comune=config.general.comune, on_call=tuple(ops.on_call),
                   modem_lost_seconds=ops.modem_lost_minutes * 60, ami_down_seconds=ops.ami_down_minutes * 60,
                   sim_cap_warning=ops.sim_cap_warning, trunk_failures=ops.trunk_failures, modems=frozenset(m.label for m in config.modems),
                   trunks=frozenset(t.name for t in config.trunks) if config.asterisk.enabled else frozenset(),
                   ami_link=f"{config.asterisk.host}:{config.asterisk.port}")


class AlarmMonitor:
    def __init__(self, sessions: sessionmaker[Session], alerts: AlertService, settings: AlarmSettings, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sessions = sessions
        self.alerts = alerts
        self.settings = settings
        self._clock = clock
        self._bad_since: dict[tuple[str, str], float] = {}

    async def run(self) -> None:
        while True:
            try:
                # Off the event loop: a database held by a backup would otherwise stall the
                # modems' and the AMI link's callbacks for its busy timeout.
                await asyncio.to_thread(self.check)
            except Exception as exc:  # noqa: BLE001 - alarms must never stop the engine
                log_failure(log, "alarm check failed", exc)
            await asyncio.sleep(self.settings.check_interval)

    def check(self) -> list[int]:
        """One look at the lines; returns the ids of the alarms raised now."""
        s = self.settings
        with self.sessions() as session:
            lines = session.scalars(select(Line)).all()
        now = self._clock()
        raised = []
        trunks = [line for line in lines if line.channel == Channel.VOICE and line.label in s.trunks]
        if trunks:
            # Every trunk goes down with the one AMI link: one alarm for the link, not
            # one per trunk (on-call staff would get the same SMS once per trunk).
            down = [line for line in trunks if line.state in DOWN_STATES]
            worst = down[0] if down else trunks[0]
            alarm = self._track("ami_down", s.ami_link, s.ami_down_seconds, f"Asterisk AMI {s.ami_link}",
                                worst.state, worst.last_error, bool(down), now)
            if alarm is not None:
                raised.append(alarm)
        for trunk in sorted(s.trunks):
            alarm = self._check_trunk_failures(trunk)
            if alarm is not None:
                raised.append(alarm)
        for line in lines:
            if line.channel == Channel.SMS and line.label in s.modems:
                alarm = self._track("modem_lost", line.label, s.modem_lost_seconds, f"modem {line.label}",
                                    line.state, line.last_error, line.state in DOWN_STATES, now)
                if alarm is not None:
                    raised.append(alarm)
            if line.channel == Channel.SMS and line.label in s.modems and line.daily_cap:
                used = line.sent_today / line.daily_cap
                if used >= s.sim_cap_warning:
                    alarm = self._raise("sim_cap", line.label, f"SIM del modem {line.label} quasi esaurita oggi: "
                                        f"{line.sent_today}/{line.daily_cap} SMS")
                    if alarm is not None:
                        raised.append(alarm)
                else:
                    self._clear("sim_cap", line.label)
        return raised

    def _check_trunk_failures(self, trunk: str) -> int | None:
        """Raise trunk_failing when the trunk's last ``trunk_failures`` calls all failed on the
        trunk side; clear it as soon as a call gets through the network again.

        The engine already halves such a trunk's concurrency and charges the recipients
        nothing, so the alert crawls on without anybody knowing why: a trunk whose
        provider is down (or whose E1 lost sync) is something on-call staff must hear of.
        """
        n = self.settings.trunk_failures
        with self.sessions() as session:
            causes = list(session.scalars(
                # Only calls whose fate the network told us (a cause): an originate the AMI
                # refused, or an engine stop, says nothing about the trunk.
                select(Attempt.cause).where(Attempt.channel == Channel.VOICE, Attempt.line == trunk,
                                            Attempt.cause.is_not(None), Attempt.ended_at.is_not(None))
                .order_by(Attempt.id.desc()).limit(n)))
        if not causes:
            return None
        if causes[0] not in TRUNK_SIDE_CAUSES:
            self._clear("trunk_failing", trunk)
            return None
        if len(causes) < n or not all(cause in TRUNK_SIDE_CAUSES for cause in causes):
            return None
        calls = plural(n, "l'ultima chiamata fallita", "ultime %(num)s chiamate fallite", "it")
        return self._raise("trunk_failing", trunk, f"linea {trunk}: {calls} sulla rete "
                           f"(cause Q.850 {', '.join(sorted(set(causes), key=int))})")

    def _track(self, kind: str, subject: str, threshold: float, what: str, state: str,
               last_error: str | None, bad: bool, now: float) -> int | None:
        """Raise ``kind`` for ``subject`` once it has been bad ``threshold`` seconds; clear it when good."""
        key = (kind, subject)
        if not bad:
            self._bad_since.pop(key, None)
            self._clear(kind, subject)
            return None
        since = self._bad_since.setdefault(key, now)
        if now - since < threshold:
            return None
        minutes = max(1, round((now - since) / 60))
        reason = f": {last_error}" if last_error else ""
        return self._raise(kind, subject, f"{what} {state} da {minutes} min{reason}")

    def raise_alarm(self, kind: str, subject: str, message: str) -> int | None:
        """Raise an alarm found elsewhere in the engine (the self-test); None if one is already open."""
        return self._raise(kind, subject, message)

    def clear_alarm(self, kind: str, subject: str) -> None:
        self._clear(kind, subject)

    def _raise(self, kind: str, subject: str, message: str) -> int | None:
        with self.sessions() as session:
            open_alarm = session.scalar(select(Alarm.id).where(Alarm.kind == kind, Alarm.subject == subject,
                                                               Alarm.cleared_at.is_(None)))
            if open_alarm is not None:
                return None   # already raised (possibly before a restart): tell on-call staff once
            alarm = Alarm(kind=kind, subject=subject, message=message[:500])
            session.add(alarm)
            session.commit()
            alarm_id = alarm.id
        log.warning("alarm %d (%s, %s): %s", alarm_id, kind, subject, message)
        if self.settings.on_call:
            alert_id = self._notify(message)
            if alert_id is not None:
                with self.sessions() as session:
                    session.get(Alarm, alarm_id).alert_id = alert_id
                    session.commit()
        return alarm_id

    def _notify(self, message: str) -> int | None:
        # Short: one SMS (GSM-7 where the library can transliterate), whatever the error text.
        text = f"ALLARME Allerta {self.settings.comune}: {message}"[:150]
        try:
            alert_id, _ = self.alerts.create(AlertRequest(text=text, target=Target(numbers=self.settings.on_call),
                                                          priority=True, created_by="alarm"))
        except AlertError as exc:
            log.error("alarm SMS to the on-call numbers not created: %s", exc)
            return None
        log.info("alarm sent to %d on-call number(s) as alert %d", len(self.settings.on_call), alert_id)
        return alert_id

    def _clear(self, kind: str, subject: str) -> None:
        with self.sessions() as session:
            alarms = session.scalars(select(Alarm).where(Alarm.kind == kind, Alarm.subject == subject,
                                                         Alarm.cleared_at.is_(None))).all()
            if not alarms:
                return
            for alarm in alarms:
                alarm.cleared_at = utcnow()
            session.commit()
        log.info("alarm cleared (%s, %s)", kind, subject)
