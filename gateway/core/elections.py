"""Election periods (law 28/2000, art. 9): recording them, and the lock they put on information.

From the calling of an election to the close of the polls a public administration may communicate
only in impersonal form and when indispensable. During a period recorded here an information
message (AlertCategory.INFORMATION) goes out only with an approver's reason saying why it is both;
emergencies go as always. The check itself is AlertService's (gateway/core/alerts.py); this module
keeps the periods, each change committed with its audit entry.

Times are typed in Italian time (Europe/Rome) and stored as naive UTC, like every time in the
database. A date alone means the whole day: ``--from 2027-04-10 --to 2027-05-25`` runs from
00:00 of the 10th to the end of the 25th, Italian time.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.core.audit import AuditLog
from gateway.core.db import utcnow
from gateway.core.models import Alert
from gateway.core.models_cap import ElectionPeriod
from gateway.core.quiet_hours import LOCAL_TZ, local_time
from gateway.core.states import AlertCategory, AlertState

MAX_DESCRIPTION = 300


class ElectionError(Exception):
    """A period that cannot be recorded or revoked as asked; nothing was changed.

    Like AlertError: ``msgid`` is a gettext key with ``%(name)s`` placeholders, ``params`` its values.
    """

    def __init__(self, msgid: str, **params: object) -> None:
        self.msgid = msgid
        self.params = params
        super().__init__(msgid % params if params else msgid)


def parse_moment(text: str, *, option: str, end_of_day: bool = False) -> dt.datetime:
    """``2027-05-25`` or ``2027-05-25 15:00`` (Italian time) as naive UTC. A date alone is the start of
    that day, or with ``end_of_day`` its end (the start of the next day)."""
    raw = text.strip()
    try:
        if len(raw) == 10:
            day = dt.date.fromisoformat(raw)
            local = dt.datetime.combine(day + dt.timedelta(days=1 if end_of_day else 0), dt.time(0),
                                        tzinfo=LOCAL_TZ)
        else:
            local = dt.datetime.fromisoformat(raw)
            local = local if local.tzinfo else local.replace(tzinfo=LOCAL_TZ)
        return local.astimezone(dt.timezone.utc).replace(tzinfo=None)
    except (ValueError, OverflowError):
        raise ElectionError("%(option)s %(value)s: not a date (YYYY-MM-DD) or a date and time "
                            "(YYYY-MM-DD HH:MM), Italian time", option=option, value=repr(text)) from None


@dataclass(frozen=True)
class PeriodView:
    id: int
    starts_at: dt.datetime     # naive UTC
    ends_at: dt.datetime
    description: str
    created_by: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None

    def state(self, now: dt.datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if now < self.starts_at:
            return "planned"
        return "in force" if now < self.ends_at else "over"

    def local_span(self) -> str:
        """"10/04/2027 00:00 – 26/05/2027 00:00" in Italian time, as the banner and the lists say it."""
        return f"{_local(self.starts_at)} – {_local(self.ends_at)}"

    def as_json(self, now: dt.datetime) -> dict:
        return {"id": self.id, "from": self.starts_at.isoformat() + "Z", "to": self.ends_at.isoformat() + "Z",
                "from_local": local_time(self.starts_at).isoformat(), "to_local": local_time(self.ends_at).isoformat(),
                "description": self.description, "created_by": self.created_by, "state": self.state(now),
                "revoked_at": self.revoked_at.isoformat() + "Z" if self.revoked_at else None}


def _local(at: dt.datetime) -> str:
    return local_time(at).strftime("%d/%m/%Y %H:%M")


def _view(row: ElectionPeriod) -> PeriodView:
    return PeriodView(row.id, row.starts_at, row.ends_at, row.description, row.created_by, row.created_at,
                      row.revoked_at)


def add_period(audit: AuditLog, starts_at: dt.datetime, ends_at: dt.datetime, description: str, *,
               actor: str) -> PeriodView:
    """Record a period (naive UTC bounds), audited as "election.add"."""
    description = description.strip()
    if not description:
        raise ElectionError("the description is empty: say which election (e.g. 'Comunali 2027'), it is shown "
                            "on the banner")
    if len(description) > MAX_DESCRIPTION:
        raise ElectionError("the description is too long: at most %(count)s characters", count=MAX_DESCRIPTION)
    if ends_at <= starts_at:
        raise ElectionError("the end must be after the start (the period runs from the calling of the election "
                            "to the close of the polls)")
    with audit.transaction() as s:
        row = ElectionPeriod(starts_at=starts_at, ends_at=ends_at, description=description, created_by=actor)
        s.add(row)
        s.flush()
        audit.record(s, actor, "election.add", row.id, starts_at=starts_at.isoformat() + "Z",
                     ends_at=ends_at.isoformat() + "Z", description=description)
        return _view(row)


def revoke_period(audit: AuditLog, period_id: int, *, actor: str) -> PeriodView:
    """Revoke a period recorded by mistake, audited as "election.revoke"; the row is kept."""
    with audit.transaction() as s:
        row = s.get(ElectionPeriod, period_id)
        if row is None:
            raise ElectionError("no election period with id %(id)s", id=period_id)
        if row.revoked_at is not None:
            raise ElectionError("election period %(id)s was already revoked", id=period_id)
        row.revoked_at = utcnow()
        audit.record(s, actor, "election.revoke", period_id, description=row.description)
        return _view(row)


def list_periods(sessions: sessionmaker[Session]) -> list[PeriodView]:
    with sessions() as s:
        return [_view(row) for row in s.scalars(select(ElectionPeriod).order_by(ElectionPeriod.starts_at.desc(),
                                                                                ElectionPeriod.id.desc()))]


def period_at(session: Session, at: dt.datetime) -> PeriodView | None:
    """The period (not revoked) in force at ``at`` (naive UTC), or None; the earliest-ending if several."""
    row = session.scalar(select(ElectionPeriod).where(
        ElectionPeriod.revoked_at.is_(None), ElectionPeriod.starts_at <= at, ElectionPeriod.ends_at > at)
        .order_by(ElectionPeriod.ends_at, ElectionPeriod.id).limit(1))
    return None if row is None else _view(row)


def scheduled_information(session: Session, period: PeriodView) -> list[int]:
    """Information alerts already scheduled to start inside ``period``: a new period does not stop them
    (an approver decided before it existed), so whoever records it is told which ones to review."""
    return list(session.scalars(select(Alert.id).where(
        Alert.category == AlertCategory.INFORMATION, Alert.state.in_((AlertState.ACTIVE, AlertState.DRAFT,
                                                                      AlertState.AWAITING_APPROVAL)),
        Alert.send_at >= period.starts_at, Alert.send_at < period.ends_at).order_by(Alert.id)))
