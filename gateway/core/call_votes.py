"""Votes by keypress in an alert's call: what a call must ask, and counting what was pressed.

The dialplan asks the poll after the message when the call's ``ALLERTA_POLL`` says how many
options it has (asterisk/conf/extensions_allerta.conf); the key comes back as an AMI event, or
from AstDB after an AMI gap, with the call's delivery. The vote is counted by the same function
as an SMS or hotline vote (gateway.core.polls.cast_vote): one per number, the last one wins.
"""
from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.core.models import Alert, Delivery
from gateway.core.polls import VoteResult, cast_vote
from gateway.core.states import Channel


def alert_poll(sessions: sessionmaker[Session], alert_id: int) -> tuple[int, dt.datetime | None]:
    """(number of options, closing time) of the alert's poll; (0, None) without one."""
    with sessions() as s:
        row = s.execute(select(Alert.poll_options, Alert.poll_closes_at).where(Alert.id == alert_id)).first()
    if row is None or not row.poll_options:
        return 0, None
    return len(json.loads(row.poll_options)), row.poll_closes_at


def options_to_ask(poll: tuple[int, dt.datetime | None], now: dt.datetime) -> int:
    """How many options a call placed ``now`` asks about: 0 once the poll has closed."""
    options, closes_at = poll
    return options if closes_at is None or now < closes_at else 0


def record_call_vote(sessions: sessionmaker[Session], delivery_id: int, option: int,
                     at: dt.datetime) -> VoteResult | None:
    """Count a key pressed for the poll in the call of ``delivery_id``; None for no such delivery."""
    with sessions.begin() as s:
        row = s.execute(select(Delivery.alert_id, Delivery.e164).where(Delivery.id == delivery_id)).first()
        alert = s.get(Alert, row.alert_id) if row is not None else None
        if alert is None:
            return None
        return cast_vote(s, alert, row.e164, option, at=at, channel=Channel.VOICE)
