"""A recipient's attempts on the alert page: time, line, result (by its name), Q.850 cause, call duration."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from gateway.core.alerts import AlertRequest, Target
from gateway.core.models import Attempt, Delivery
from tests.web_support import client_for, post

T0 = dt.datetime(2026, 3, 2, 9, 0, 0)


def _voice_delivery(panel) -> tuple[int, int]:
    alert_id, _ = panel.services.alerts.create(AlertRequest(text="Prova", target=Target(zones=("Fregene",)),
                                                            channels=("voice",), audio_path="/nonexistent/msg",
                                                            audio_seconds=10.0))
    with panel.sessions() as s:
        return alert_id, s.scalar(select(Delivery.id).where(Delivery.alert_id == alert_id).order_by(Delivery.id))


def _row(html: str, attempt_id: int) -> str:
    return html.split(f'<tr data-attempt="{attempt_id}">')[1].split("</tr>")[0]


def test_each_attempt_shows_time_line_result_cause_and_duration(app, panel):
    alert_id, delivery_id = _voice_delivery(panel)
    with panel.sessions.begin() as s:
        busy = Attempt(delivery_id=delivery_id, channel="voice", line="pstn", outcome="busy", cause="17",
                       error="busy (Q.850 17 user busy)", started_at=T0, ended_at=T0 + dt.timedelta(seconds=4))
        # A failure that was answered: the store records answered_at on failures too.
        unplayed = Attempt(delivery_id=delivery_id, channel="voice", line="pstn", outcome="failed", cause="16",
                           error="message not played", started_at=T0 + dt.timedelta(minutes=5),
                           answered_at=T0 + dt.timedelta(minutes=5, seconds=12),
                           ended_at=T0 + dt.timedelta(minutes=5, seconds=15))
        confirmed = Attempt(delivery_id=delivery_id, channel="voice", line="pstn", outcome="confirmed", cause="16",
                            started_at=T0 + dt.timedelta(minutes=10),
                            answered_at=T0 + dt.timedelta(minutes=10, seconds=8),
                            ended_at=T0 + dt.timedelta(minutes=10, seconds=38))
        no_line = Attempt(delivery_id=delivery_id, channel="voice", outcome="no_line", started_at=T0,
                          ended_at=T0)
        ringing = Attempt(delivery_id=delivery_id, channel="voice", line="pstn", outcome="in_flight",
                          started_at=T0 + dt.timedelta(minutes=20))
        s.add_all([busy, unplayed, confirmed, no_line, ringing])
        s.flush()
        ids = [a.id for a in (busy, unplayed, confirmed, no_line, ringing)]
    html = client_for(app, "viewer").get(f"/alerts/{alert_id}/deliveries/{delivery_id}").get_data(as_text=True)
    busy_row, unplayed_row, confirmed_row, no_line_row, ringing_row = (_row(html, i) for i in ids)
    # Result by its Italian name (web/labels.py), never the stored identifier.
    assert "Occupato" in busy_row and ">busy<" not in busy_row
    # The Q.850 cause by its number (as the carrier names it) and in words.
    assert "<td>pstn</td>" in busy_row and "<td>17 · Utente occupato</td>" in busy_row and "4 s" in busy_row
    assert "busy (Q.850 17 user busy)" in busy_row
    assert "2 mar 2026" in busy_row and "10:00:00" in busy_row  # the time, in Rome's time
    assert "15 s (3 s dopo la risposta)" in unplayed_row and "<td>16 · Chiusura normale</td>" in unplayed_row
    assert "10:05:12" in unplayed_row  # when it was answered
    assert "Confermato (premuto 1)" in confirmed_row and "38 s (30 s dopo la risposta)" in confirmed_row
    assert "Nessuna linea libera" in no_line_row and "no_line" not in no_line_row
    assert "In invio" in ringing_row and " s" not in ringing_row.split("</td>")[6]  # not ended: no duration
    # In English too, through the same label table.
    viewer = client_for(app, "viewer")
    post(viewer, "/language", {"lang": "en", "next": "/"})
    english = viewer.get(f"/alerts/{alert_id}/deliveries/{delivery_id}").get_data(as_text=True)
    assert "Busy" in _row(english, ids[0]) and "38 s (30 s answered)" in _row(english, ids[2])
    assert "<td>17 · Line busy</td>" in _row(english, ids[0])
    assert "No line free" in _row(english, ids[3])


def test_an_sms_attempt_has_no_call_duration(app, panel):
    alert_id, _ = panel.services.alerts.create(AlertRequest(text="Prova", target=Target(zones=("Fregene",))))
    with panel.sessions.begin() as s:
        delivery_id = s.scalar(select(Delivery.id).where(Delivery.alert_id == alert_id).order_by(Delivery.id))
        sent = Attempt(delivery_id=delivery_id, channel="sms", line="tim-1", outcome="sent", started_at=T0,
                       ended_at=T0 + dt.timedelta(seconds=3))
        s.add(sent)
        s.flush()
        attempt_id = sent.id
    html = client_for(app, "viewer").get(f"/alerts/{alert_id}/deliveries/{delivery_id}").get_data(as_text=True)
    row = _row(html, attempt_id)
    assert "Inviato" in row and "<td>tim-1</td>" in row and "3 s" not in row


def test_a_cause_the_label_table_does_not_name_shows_its_number_only(app, panel):
    from web.labels import cause

    assert cause("17") != "17" and cause("17").startswith("17 · ")
    assert cause("99") == "99"
    assert cause(None) == "" and cause("") == ""
