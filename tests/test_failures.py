"""Failures as values (gateway.core.failures) and the states as StrEnums (gateway.core.states):
rendered once, carried from the modem to the store without parsing, stored and served as plain strings."""
import asyncio
import json

import pytest
from sqlalchemy import select

from gateway.core.alerts import AlertRequest, Target
from gateway.core.channels import DeliveryFailed, OutboundMessage
from gateway.core.config import ModemConfig, parse_config
from gateway.core.db import utcnow
from gateway.core.failures import Failure, FailureKind
from gateway.core.models import Alert, Attempt, Delivery
from gateway.core.retry import SmsPolicy, SmsRetry
from gateway.core.states import AlertState, Channel, DeliveryState, join_channels, parse_channels
from gateway.core.store import Store
from modem.driver import Health, SubmitError
from modem.errors import classify_cme, classify_cms
from modem.pool import SmsChannel
from modem.worker import WorkerSettings


def test_a_modem_error_renders_its_code_once_in_the_standard_form():
    assert str(Failure(FailureKind.CMS, "network out of order", 38)) == "+CMS ERROR 38: network out of order"
    assert str(classify_cme(10).failure) == "+CME ERROR 10: SIM not inserted"
    assert str(Failure(FailureKind.LINE, "port /dev/ttyUSB0 lost during AT+CMGS")) == \
        "port /dev/ttyUSB0 lost during AT+CMGS"
    # A call's text names its cause in Asterisk's words; the number is not added a second time.
    assert str(Failure(FailureKind.CALL, "busy (Q.850 17 user busy)", 17)) == "busy (Q.850 17 user busy)"


def test_classified_cms_codes_keep_the_number_and_the_permanence_as_fields():
    unassigned = classify_cms(1).failure
    assert (unassigned.kind, unassigned.code, unassigned.text, unassigned.permanent) == \
        (FailureKind.CMS, 1, "unassigned number", True)
    assert classify_cms(38).failure.permanent is False


def test_delivery_failed_carries_the_failure_and_takes_a_call_cause_from_it():
    busy = DeliveryFailed(Failure(FailureKind.CALL, "busy (Q.850 17 user busy)", 17))
    assert busy.cause == 17 and busy.reason == "busy (Q.850 17 user busy)" and not busy.permanent
    cms = DeliveryFailed(Failure(FailureKind.CMS, "unassigned number", 1, permanent=True))
    assert cms.cause is None and cms.permanent and str(cms) == "+CMS ERROR 1: unassigned number"


class RefusingModem:
    """A modem that opens, is registered, and answers every AT+CMGS with +CMS ERROR 38."""

    def __init__(self, port, baud, pin, **callbacks):
        self.port, self.alive = port, False
        self.imei, self.manufacturer, self.model = "490154203237518", "Fake", "Refusing"

    def open(self, expected_imei=None):
        self.alive = True

    def close(self):
        self.alive = False

    def health(self):
        return Health(signal=20, registration="home", operator="TIM", sim_state="READY")

    def service_reports(self, idle):
        pass

    def service_inbox(self):
        pass

    def make_room_for_reports(self):
        pass

    def finish_reports(self):
        pass

    def submit(self, pdus, timeout):
        raise SubmitError(classify_cms(38))


def test_the_sms_channel_passes_the_modems_cms_code_on_as_a_value(tmp_path):
    port = tmp_path / "ttyFAKE"
    port.write_text("")

    async def scenario():
        channel = SmsChannel([ModemConfig(label="m1", port=str(port))],
                             WorkerSettings(health_interval=60, scan_dir=None), driver_factory=RefusingModem)
        events = _Events()
        await channel.start(events)
        try:
            with pytest.raises(DeliveryFailed) as failed:
                await channel.submit(OutboundMessage(delivery_id=1, alert_id=1, number="+393331110001", text="x"))
        finally:
            await channel.stop()
        return failed.value, channel.lines()[0]

    failed, line = asyncio.run(scenario())
    assert failed.failure == Failure(FailureKind.CMS, "network out of order", 38)
    assert failed.line == "m1" and not failed.permanent
    assert line.last_error == "+CMS ERROR 38: network out of order"


class _Events:
    def status_reports(self, line, reports):
        pass

    def inbound_part(self, part):
        pass

    def line_status(self, status):
        pass

    def capacity_available(self):
        pass


def test_the_store_writes_the_failure_once_on_the_delivery_and_the_attempt(contacts):
    contacts.alerts.create(AlertRequest(text="x", target=Target(numbers=("+393331110001",))))
    store = Store(contacts.sessions)
    [claim] = store.claim(Channel.SMS, 1)
    failure = DeliveryFailed(classify_cms(38).failure, line="m1")
    verdict = SmsPolicy(SmsRetry.from_config(parse_config({}).retry)).after_failure(claim.policy, claim.attempts, claim.submissions, failure,
                                                        utcnow())
    assert store.record_result(claim, verdict, failure=failure) == DeliveryState.PENDING
    with contacts.sessions() as s:
        delivery = s.get(Delivery, claim.delivery_id)
        attempt = s.get(Attempt, claim.attempt_id)
    assert delivery.last_error == "+CMS ERROR 38: network out of order"
    assert (attempt.outcome, attempt.error, attempt.cause) == ("failed", "+CMS ERROR 38: network out of order", None)


def test_states_are_their_strings_in_the_database_and_in_json(contacts):
    alert_id, _ = contacts.alerts.create(AlertRequest(text="x", target=Target(numbers=("+393331110001",)),
                                                      channels=(Channel.SMS,)))
    contacts.alerts.cancel(alert_id)
    with contacts.sessions() as s:
        stored = s.execute(select(Alert.state, Alert.channels).where(Alert.id == alert_id)).one()
        delivery_state = s.scalar(select(Delivery.state))
    assert type(stored.state) is str and stored.state == AlertState.CANCELLED == "cancelled"
    assert stored.channels == "sms" and delivery_state == "cancelled"
    assert json.dumps({"state": AlertState.CANCELLED, "channels": [Channel.SMS, Channel.VOICE]}) == \
        '{"state": "cancelled", "channels": ["sms", "voice"]}'
    assert f"{DeliveryState.PENDING}" == str(DeliveryState.PENDING) == "pending"


def test_an_alerts_channels_read_and_write_as_a_tuple_of_channels():
    alert = Alert(delivery_channels=("sms", "voice"))
    assert alert.channels == "sms,voice"
    assert alert.delivery_channels == (Channel.SMS, Channel.VOICE)
    assert parse_channels("voice") == (Channel.VOICE,)
    with pytest.raises(ValueError):
        join_channels(["fax"])
