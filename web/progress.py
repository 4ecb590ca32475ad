"""Read models for the dashboard, the alert page and the API: lines, progress, capacity."""
from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.core import line_health
from gateway.core.capacity import OPEN_STATES, current_rates, estimate
from gateway.core.config import Config
from gateway.core.db import utcnow
from gateway.core.models import Alert, Delivery, Line
from gateway.core.states import BUCKET_ORDER, DELIVERY_BUCKETS, AlertState, Channel, LineState

# Delivery states grouped as an operator reads them: the core's one table (gateway/core/states.py).
BUCKETS = DELIVERY_BUCKETS
CAPACITY_MINUTES = 10


def stale_after(config: Config) -> float:
    """Seconds after which a line's row is too old to trust (see gateway.core.line_health)."""
    return line_health.stale_after(config.engine.health_interval)


def empty_progress() -> dict[str, Any]:
    return {"total": 0, "percent": 0.0, **{b: 0 for b in BUCKET_ORDER}, "channels": {}}


def alert_progress(session: Session, alert_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    ids = list(alert_ids)
    result = {alert_id: empty_progress() for alert_id in ids}
    if not ids:
        return result
    rows = session.execute(select(Delivery.alert_id, Delivery.channel, Delivery.state, func.count())
                           .where(Delivery.alert_id.in_(ids))
                           .group_by(Delivery.alert_id, Delivery.channel, Delivery.state)).all()
    for alert_id, channel, state, count in rows:
        bucket = BUCKETS.get(state, "in_progress")
        entry = result[alert_id]
        entry["total"] += count
        entry[bucket] += count
        per_channel = entry["channels"].setdefault(channel, {"total": 0, **{b: 0 for b in BUCKET_ORDER},
                                                             "remaining": 0})
        per_channel["total"] += count
        per_channel[bucket] += count
        if state in OPEN_STATES:  # what the ETA counts, as the CLI's status does (gateway.core.capacity)
            per_channel["remaining"] += count
    for entry in [*result.values(), *(c for e in result.values() for c in e["channels"].values())]:
        open_ = entry["queued"] + entry["in_progress"]
        entry["percent"] = round(100.0 * (entry["total"] - open_) / entry["total"], 1) if entry["total"] else 0.0
    return result


def line_rows(session: Session, stale_seconds: float = line_health.STALE_MINIMUM_SECONDS) -> list[dict[str, Any]]:
    """Every line as the engine last reported it; ``stale``: that report cannot be trusted any more
    (the engine is not reporting, or a modem missed its health reads), so the line counts as down."""
    lines = list(session.scalars(select(Line).order_by(Line.channel, Line.node, Line.label)))
    stale = line_health.stale_lines(lines, utcnow(), stale_seconds)
    rows = []
    for line in lines:
        rows.append({
            "label": line.label, "node": line.node, "channel": line.channel, "state": line.state, "port": line.port,
            "signal": line.signal, "registration": line.registration, "operator": line.operator,
            "sim": line.sim_state, "sent_today": line.sent_today, "daily_cap": line.daily_cap,
            "in_use": line.in_use, "limit": line.limit, "rate_per_minute": line.rate_per_minute,
            "last_error": line.last_error,
            "updated_at": line.updated_at.isoformat() + "Z" if line.updated_at else None,
            "stale": stale[line.label],
        })
    return rows


def is_up(line: dict[str, Any]) -> bool:
    """Up as far as we can tell: reported up, by a report recent enough to believe."""
    return line["state"] == LineState.UP and not line["stale"]


def capacity(lines: list[dict[str, Any]], minutes: int = CAPACITY_MINUTES) -> dict[str, Any]:
    """How many people the lines up now can reach in ``minutes``: one single-segment SMS or one call each.
    Each line counts with the rate it reported, as in the ETAs (gateway.core.capacity)."""
    sms = voice = 0.0
    sms_up = voice_up = 0
    for line in lines:
        if not is_up(line):
            continue
        rate = line["rate_per_minute"]
        if line["channel"] == Channel.SMS:
            possible = (rate or 0.0) * minutes
            if line["daily_cap"]:
                possible = min(possible, max(0, line["daily_cap"] - line["sent_today"]))
            sms += possible
            sms_up += 1
        else:
            voice += (rate or 0.0) * minutes
            voice_up += 1
    return {"minutes": minutes, "sms_people": int(sms), "voice_people": int(voice),
            "sms_lines_up": sms_up, "voice_lines_up": voice_up,
            "engine_reporting": any(not line["stale"] for line in lines),
            "sms_lines": sum(1 for l in lines if l["channel"] == Channel.SMS),
            "voice_lines": sum(1 for l in lines if l["channel"] != Channel.SMS)}


def eta_seconds(session: Session, deliveries: dict[str, int], segments: int, config: Config) -> dict[str, float | None]:
    """Seconds each channel needs for ``deliveries`` with the lines up now (None: no line up),
    computed as ``allerta alert status`` does (gateway.core.capacity)."""
    rates = current_rates(session, utcnow(), stale_after(config))
    return {channel: eta.seconds for channel, eta in estimate(deliveries, segments, rates).items()}


def active_alerts(session: Session, since_hours: int = 24) -> list[Alert]:
    since = utcnow() - dt.timedelta(hours=since_hours)
    return list(session.scalars(select(Alert).where(
        (Alert.state.in_((AlertState.ACTIVE, AlertState.AWAITING_APPROVAL))) | (Alert.created_at >= since))
        .order_by(Alert.id.desc()).limit(20)))
