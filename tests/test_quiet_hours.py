"""Quiet hours ([ops] quiet_hours): information waits for the morning, emergencies never wait, and the
morning is 08:00 on the wall clock on the nights the clocks change. Times are injected, never slept."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from gateway.core.alerts import AlertRequest, AlertService, Target
from gateway.core.config import ConfigError, load_config
from gateway.core.models import Alert, Delivery
from gateway.core.quiet_hours import parse_window
from gateway.core.store import Store
from tests.support import write_config

# The claim's quiet-hours condition is a bound boolean in the hot-path SQL: run on both databases.
pytestmark = pytest.mark.both_databases

QUIET = parse_window("21:00-08:00")
# Naive UTC. Winter (CET, UTC+1): 22:30 in Rome; morning 08:00 = 07:00 UTC.
WINTER_NIGHT, WINTER_MORNING = dt.datetime(2027, 1, 15, 21, 30), dt.datetime(2027, 1, 16, 7, 0)
# The clocks go forward in the night of 27-28 March 2027: 08:00 on the 28th is summer time, 06:00 UTC.
SPRING_NIGHT, SPRING_MORNING = dt.datetime(2027, 3, 27, 21, 30), dt.datetime(2027, 3, 28, 6, 0)
# They go back in the night of 30-31 October 2027 (22:30 summer time): 08:00 on the 31st is 07:00 UTC.
AUTUMN_NIGHT, AUTUMN_MORNING = dt.datetime(2027, 10, 30, 20, 30), dt.datetime(2027, 10, 31, 7, 0)


@pytest.mark.parametrize("at, until", [
    (WINTER_NIGHT, WINTER_MORNING), (SPRING_NIGHT, SPRING_MORNING), (AUTUMN_NIGHT, AUTUMN_MORNING),
    (dt.datetime(2027, 1, 15, 20, 0), WINTER_MORNING),                    # 21:00 sharp: quiet
    (dt.datetime(2027, 1, 16, 6, 59), WINTER_MORNING),                    # 07:59 next morning: still quiet
    (dt.datetime(2027, 1, 16, 7, 0), None),                               # 08:00: it goes
    (dt.datetime(2027, 1, 15, 19, 59), None),                             # 20:59: it goes
    (dt.datetime(2027, 3, 28, 19, 0), dt.datetime(2027, 3, 29, 6, 0)),    # 21:00 summer time, first evening
    (dt.datetime(2027, 3, 28, 18, 59), None),
    (dt.datetime(2027, 10, 31, 2, 30), AUTUMN_MORNING),                  # inside the hour lived twice
])
def test_held_until_the_end_of_the_quiet_hours_on_the_wall_clock(at, until):
    assert QUIET.held_until(at) == until


def test_a_window_within_one_day_and_no_window():
    lunch = parse_window("13:00-15:00")
    assert lunch.held_until(dt.datetime(2027, 1, 15, 12, 30)) == dt.datetime(2027, 1, 15, 14, 0)
    assert lunch.held_until(dt.datetime(2027, 1, 15, 14, 0)) is None
    assert parse_window("") is None


@pytest.mark.parametrize("value, message", [
    ("21-8", "must be empty or a window written HH:MM-HH:MM"),
    ("21:00-24:00", "must be empty or a window written HH:MM-HH:MM"),
    ("08:00-08:00", "must start and end at different times"),
])
def test_a_bad_window_stops_the_start_with_the_key_named(tmp_path, value, message):
    with pytest.raises(ConfigError, match=rf"\[ops\] quiet_hours: {message}"):
        load_config(write_config(tmp_path, f'[ops]\nquiet_hours = "{value}"\n'))


def _service(services, now: dt.datetime) -> AlertService:
    return AlertService(services.sessions, quiet_hours=QUIET, clock=lambda: now)


def _request(category: str, now: dt.datetime) -> AlertRequest:
    return AlertRequest(text="Lavori stradali in via Roma domani", target=Target(zones=("Isola Sacra",)),
                        category=category, deadline=now + dt.timedelta(minutes=60))


def _waiting(services, alert_id: int) -> set:
    with services.sessions() as s:
        return set(s.scalars(select(Delivery.next_attempt_at).where(Delivery.alert_id == alert_id)))


@pytest.mark.parametrize("night, morning", [(WINTER_NIGHT, WINTER_MORNING), (SPRING_NIGHT, SPRING_MORNING),
                                            (AUTUMN_NIGHT, AUTUMN_MORNING)])
def test_an_information_sms_at_night_waits_until_morning_and_an_emergency_never_waits(contacts, night, morning):
    alerts = _service(contacts, night)
    information, _ = alerts.create(_request("information", night))
    emergency, _ = alerts.create(_request("emergency", night))
    assert _waiting(contacts, information) == {morning}
    assert _waiting(contacts, emergency) == {None}
    status = alerts.status(information)
    assert status["held_until"] == morning.isoformat() + "Z" and alerts.status(emergency)["held_until"] is None
    with contacts.sessions() as s:
        # The deadline counts from the morning: an hour of sending, not an hour of night.
        assert s.get(Alert, information).deadline == morning + dt.timedelta(minutes=60)
    store = Store(contacts.sessions, quiet_hours=QUIET)
    assert {c.alert_id for c in store.claim("sms", 10, now=night)} == {emergency}
    assert store.claim("sms", 10, now=morning - dt.timedelta(seconds=1)) == []
    assert {c.alert_id for c in store.claim("sms", 10, now=morning)} == {information}


def test_information_still_waiting_when_the_quiet_hours_begin_goes_on_in_the_morning(contacts):
    evening = dt.datetime(2027, 1, 15, 19, 50)                       # 20:50 in Rome: it may go
    information, _ = _service(contacts, evening).create(_request("information", evening))
    emergency, _ = _service(contacts, evening).create(_request("emergency", evening))
    assert _waiting(contacts, information) == {None}
    store = Store(contacts.sessions, quiet_hours=QUIET)
    nine_pm = dt.datetime(2027, 1, 15, 20, 5)
    # Claimed at 21:05 (a retry coming due, a slow fan-out): only the emergency goes.
    assert {c.alert_id for c in store.claim("sms", 10, now=nine_pm)} == {emergency}
    assert _waiting(contacts, information) == {WINTER_MORNING}      # what the panel shows: held until 08:00
    with contacts.sessions() as s:
        # 50 minutes were left at 21:00: they are given back from 08:00.
        assert s.get(Alert, information).deadline == WINTER_MORNING + dt.timedelta(minutes=50)
    # A retry recorded between two sweeps, due at 21:06, is not taken either.
    with contacts.sessions.begin() as s:
        s.execute(update(Delivery).where(Delivery.alert_id == information).values(
            next_attempt_at=nine_pm + dt.timedelta(minutes=1)))
    assert store.claim("sms", 10, now=nine_pm + dt.timedelta(minutes=1)) == []
    assert store.hold_quiet_information(nine_pm + dt.timedelta(minutes=1)) == 2
    assert store.hold_quiet_information(nine_pm + dt.timedelta(minutes=1)) == 0      # idempotent
    with contacts.sessions() as s:
        assert s.get(Alert, information).deadline == WINTER_MORNING + dt.timedelta(minutes=50)
    # A claim taken just before 21:00 and still in the engine's buffer is given back.
    assert store.unwanted_alerts({information, emergency}, now=nine_pm) == {information}
    assert information not in store.unwanted_alerts({information}, now=WINTER_MORNING)
    assert {c.alert_id for c in store.claim("sms", 10, now=WINTER_MORNING)} == {information}
