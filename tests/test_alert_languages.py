"""Versions of an alert in other languages, through the engine: each recipient gets their language, else Italian."""
import asyncio

from sqlalchemy import select

from gateway.core.alerts import AlertError, AlertRequest, Target
from gateway.core.models import Delivery
from gateway.core.models_panel import AlertText
from tests.test_dispatcher import FakeChannel, make_dispatcher

ITALIAN = "Allerta rossa: salire ai piani alti"
ROMANIAN = "Alertă roșie: urcați la etajele superioare"
ENGLISH = "Red alert: go to the upper floors"


class RecordingChannel(FakeChannel):
    def __init__(self):
        super().__init__()
        self.texts = {}

    async def submit(self, message):
        self.texts[message.number] = (message.text, message.language)
        return await super().submit(message)


def test_a_romanian_recipient_gets_the_romanian_text(contacts):
    alert_id, _ = contacts.alerts.create(AlertRequest(
        text=ITALIAN, target=Target(everyone=True), translations={"ro": ROMANIAN, "en": ENGLISH}))
    channel = RecordingChannel()
    asyncio.run(make_dispatcher(contacts, channel).run(asyncio.Event(), once=True))
    # Ion Popescu ("romeno" in the contact list) gets Romanian; nobody speaks English; the rest Italian.
    assert channel.texts["+393207654321"] == (ROMANIAN, "ro")
    assert {text for number, (text, _) in channel.texts.items() if number != "+393207654321"} == {ITALIAN}
    assert len(channel.texts) == 4
    with contacts.sessions() as s:
        assert set(s.scalars(select(Delivery.state).where(Delivery.alert_id == alert_id))) == {"sent"}


def test_drill_prefix_and_typography_apply_to_every_version(contacts):
    alert_id, _ = contacts.alerts.create(AlertRequest(
        text="Prova", target=Target(zones=("Fregene",)), drill=True, translations={"ro": "Test – exercițiu"}))
    with contacts.sessions() as s:
        version = s.scalar(select(AlertText).where(AlertText.alert_id == alert_id))
    assert version.sms_text.startswith("[ESERCITAZIONE] ")
    claimed = {c.e164: c.text for c in contacts.store.claim("sms", 10)}
    assert claimed["+393207654321"] == version.sms_text
    assert claimed["+393470000003"] == "[ESERCITAZIONE] Prova"


def test_bad_versions_store_nothing(contacts):
    for translations, message in (({"it": "x"}, "main text"), ({"Romeno": "x"}, "not a language code"),
                                  ({"ro": "a" * 1000}, "the ro version: the message needs")):
        try:
            contacts.alerts.create(AlertRequest(text="x", target=Target(everyone=True), translations=translations))
        except AlertError as exc:
            assert message in str(exc), (translations, str(exc))
        else:
            raise AssertionError(translations)
    with contacts.sessions() as s:
        assert s.scalar(select(Delivery.id)) is None and s.scalar(select(AlertText.id)) is None
