"""The figures behind an alert's pictures (gateway/core/alert_figures.py), counted in SQL on both databases."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select, update

from gateway.core.alert_figures import bucket_width, outcomes_by_attempt, reach_series, zone_reach
from gateway.core.db import utcnow
from gateway.core.models import Alert, Attempt, Contact, Delivery, Line, Zone
from gateway.core.models_citizens import HelpRequest
from gateway.core.states import AlertState, AttemptOutcome, Channel, DeliveryState, LineState
from tests.web_support import client_for, created_id, post

pytestmark = pytest.mark.both_databases

SQUARE = {"type": "Polygon", "coordinates": [[[12.2, 41.9], [12.3, 41.9], [12.3, 42.0], [12.2, 42.0], [12.2, 41.9]]]}


def send(app, channels: str = "both", zones: tuple[str, ...] = ("Fregene", "Isola Sacra")) -> int:
    """An alert to the sample contacts sent at once by an approver; its deliveries all pending.
    Voice deliveries are written beside the SMS ones (rendering speech needs espeak-ng, a process)."""
    approver = client_for(app, "approver")
    alert_id = created_id(post(approver, "/alerts/new", {"text": "Allerta rossa: salire ai piani alti",
                                                         "zones": list(zones), "channels": "sms",
                                                         "action": "send_now", "reason": "r"}))
    panel = app.extensions["allerta"]
    with panel.sessions.begin() as s:
        alert = s.get(Alert, alert_id)
        sms = list(s.scalars(select(Delivery).where(Delivery.alert_id == alert_id)))
        if channels != "sms":
            alert.channels = "sms,voice" if channels == "both" else "voice"
            s.add_all(Delivery(alert_id=alert_id, number_id=d.number_id, e164=d.e164, channel=Channel.VOICE,
                               zone=d.zone, vulnerable=d.vulnerable) for d in sms)
        if channels == "voice":
            for d in sms:
                s.delete(d)
    return alert_id


def deliveries(panel, alert_id: int, channel: str) -> dict[str, int]:
    with panel.sessions() as s:
        return {d.e164: d.id for d in s.scalars(select(Delivery).where(Delivery.alert_id == alert_id,
                                                                      Delivery.channel == channel))}


def set_delivery(panel, delivery_id: int, **values) -> None:
    with panel.sessions.begin() as s:
        s.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values))


def test_reach_over_time_counts_each_channel_in_buckets_and_projects_the_rest_at_the_lines_rate(app, panel):
    alert_id = send(app)
    sms = deliveries(panel, alert_id, Channel.SMS)
    t0 = dt.datetime(2026, 12, 4, 10, 0, 0)
    numbers = sorted(sms)
    # Two SMS accepted at 0 s and 130 s, the first delivered at 200 s; the rest still queued.
    set_delivery(panel, sms[numbers[0]], state=DeliveryState.DELIVERED, sent_at=t0,
                 delivered_at=t0 + dt.timedelta(seconds=200))
    set_delivery(panel, sms[numbers[1]], state=DeliveryState.SENT, sent_at=t0 + dt.timedelta(seconds=130))
    voice = deliveries(panel, alert_id, Channel.VOICE)
    first_voice = sorted(voice)[0]
    set_delivery(panel, voice[first_voice], state=DeliveryState.CONFIRMED, sent_at=t0 + dt.timedelta(seconds=90),
                 delivered_at=t0 + dt.timedelta(seconds=90))
    now = t0 + dt.timedelta(seconds=300)
    with panel.sessions.begin() as s:
        s.add(Line(channel=Channel.SMS, label="modem-a", state=LineState.UP, rate_per_minute=6.0, updated_at=now))
    with panel.sessions() as s:
        series = reach_series(s, alert_id, now=now)
    assert series.start == t0 and series.running and series.end_seconds == 300.0
    assert series.bucket_seconds == bucket_width(300.0) == 5
    curves = {c.key: c for c in series.curves}
    assert set(curves) == {"sms_sent", "sms_delivered", "voice_answered", "voice_confirmed"}
    assert curves["sms_sent"].points == ((0.0, 0), (5.0, 1), (135.0, 2))
    assert curves["sms_delivered"].points == ((0.0, 0), (205.0, 1))
    assert curves["voice_answered"].points == curves["voice_confirmed"].points == ((0.0, 0), (95.0, 1))
    assert series.totals == {Channel.SMS: len(sms), Channel.VOICE: len(voice)}
    projections = {p.channel: p for p in series.projections}
    left = len(sms) - 2
    assert projections[Channel.SMS].done == 2 and projections[Channel.SMS].total == len(sms)
    # The panel's own ETA: the queued SMS at 6 a minute, one segment each; no voice line up.
    assert projections[Channel.SMS].eta_seconds == round(left / 6.0 * 60)
    assert projections[Channel.VOICE].eta_seconds is None and projections[Channel.VOICE].done == 1


def test_a_finished_alert_ends_at_its_last_event_and_an_alert_with_nothing_sent_has_no_curves(app, panel):
    alert_id = send(app, channels="sms")
    with panel.sessions() as s:
        series = reach_series(s, alert_id)
        assert reach_series(s, 999999) is None
    assert series.start is None and series.curves == () and series.end_seconds == 0.0
    t0 = dt.datetime(2026, 12, 4, 10, 0, 0)
    sms = deliveries(panel, alert_id, Channel.SMS)
    for i, delivery_id in enumerate(sms.values()):
        set_delivery(panel, delivery_id, state=DeliveryState.DELIVERED, sent_at=t0 + dt.timedelta(minutes=i),
                     delivered_at=t0 + dt.timedelta(minutes=i, seconds=30))
    with panel.sessions.begin() as s:
        s.get(Alert, alert_id).state = AlertState.COMPLETED
    with panel.sessions() as s:
        series = reach_series(s, alert_id, now=t0 + dt.timedelta(days=1))
    assert not series.running and series.end_seconds == 60 * (len(sms) - 1) + 30
    assert {c.key: c.last for c in series.curves} == {"sms_sent": len(sms), "sms_delivered": len(sms)}
    assert [p.eta_seconds for p in series.projections] == [0.0]


def test_bucket_widths_are_readable_and_bounded():
    assert bucket_width(30) == 1 and bucket_width(61) == 2 and bucket_width(3600) == 60
    assert bucket_width(3 * 86400) == 7200
    assert 100 * 86400 / bucket_width(100 * 86400) <= 60


def add_call(s, delivery_id: int, outcome: str, minute: int) -> None:
    s.add(Attempt(delivery_id=delivery_id, channel=Channel.VOICE, outcome=outcome,
                  started_at=dt.datetime(2026, 12, 4, 10, minute)))


def test_outcomes_by_call_count_who_answered_and_confirmed_on_the_first_second_and_third_call(app, panel):
    alert_id = send(app, channels="voice")
    voice = sorted(deliveries(panel, alert_id, Channel.VOICE).values())
    assert len(voice) >= 3
    with panel.sessions.begin() as s:
        add_call(s, voice[0], AttemptOutcome.CONFIRMED, 0)            # confirmed on the 1st call
        add_call(s, voice[1], AttemptOutcome.NO_LINE, 0)              # not a call: no line free
        add_call(s, voice[1], AttemptOutcome.NO_ANSWER, 1)
        add_call(s, voice[1], AttemptOutcome.ANSWERED, 5)             # answered on the 2nd call
        add_call(s, voice[1], AttemptOutcome.CONFIRMED, 9)            # confirmed on the 3rd
        add_call(s, voice[2], AttemptOutcome.BUSY, 0)                 # never answered (yet)
    with panel.sessions() as s:
        outcomes = outcomes_by_attempt(s, alert_id)
        assert outcomes_by_attempt(s, 999999) is None
    assert [(r.attempt, r.answered, r.confirmed) for r in outcomes.rows] == [(1, 1, 1), (2, 1, 0), (3, 0, 1)]
    assert outcomes.called == 3 and outcomes.never_answered == 1
    assert outcomes.not_called == len(voice) - 3
    assert outcomes.max_attempts >= 1


def test_reach_by_zone_with_help_requests_unreached_vulnerable_people_and_geometry(app, panel):
    alert_id = send(app, channels="sms")
    with panel.sessions.begin() as s:
        s.scalar(select(Zone).where(Zone.name == "Fregene")).geometry = json.dumps(SQUARE)
        giulia = s.scalar(select(Contact).where(Contact.name == "Giulia Verdi"))
        s.add(HelpRequest(alert_id=alert_id, e164="+393470000003", contact_id=giulia.id, text="AIUTO"))
        # A number the directory does not know: its zone is the one the alert reached it in.
        s.add(HelpRequest(alert_id=alert_id, e164="+393207654321", text="aiuto", handled_at=utcnow()))
    sms = deliveries(panel, alert_id, Channel.SMS)
    set_delivery(panel, sms["+393207654321"], state=DeliveryState.DELIVERED)   # Ion, in Fregene
    with panel.sessions() as s:
        zones = {z.name: z for z in zone_reach(s, alert_id)}
    assert list(zones) == ["Fregene", "Isola Sacra"]
    fregene, isola = zones["Fregene"], zones["Isola Sacra"]
    assert (fregene.recipients, fregene.reached, fregene.share) == (2, 1, 0.5)
    assert (fregene.help_requests, fregene.help_open) == (2, 1)
    assert fregene.unreached_vulnerable == 1                       # Giulia
    assert json.loads(fregene.geometry) == SQUARE and isola.geometry is None
    assert isola.reached == 0 and isola.unreached_vulnerable == 1  # Anna Rossi
    assert isola.recipients == len({e for e in sms}) - 2


def test_zone_reach_counts_a_number_once_across_channels(app, panel):
    alert_id = send(app, channels="both", zones=("Fregene",))
    for channel in (Channel.SMS, Channel.VOICE):
        for delivery_id in deliveries(panel, alert_id, channel).values():
            set_delivery(panel, delivery_id, state=DeliveryState.DELIVERED if channel == Channel.SMS
                         else DeliveryState.ANSWERED)
    with panel.sessions() as s:
        (fregene,) = zone_reach(s, alert_id)
    assert (fregene.recipients, fregene.reached, fregene.share, fregene.unreached_vulnerable) == (2, 2, 1.0, 0)
