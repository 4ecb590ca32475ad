"""The citizens' service: what one committed SMS does, in one transaction, and the answer it queues."""
import datetime as dt
import json
import shutil

import pytest
from sqlalchemy import select, update

from gateway.core.alerts import AlertRequest, AlertService, Target
from gateway.core.citizen_texts import zone_menu_page
from gateway.core.citizens import CitizenService, CitizenSettings
from gateway.core.contacts_import import import_contacts
from gateway.core.db import make_engine, make_sessionmaker, migrate, utcnow
from gateway.core.models import Alert, Attempt, Contact, Delivery, InboundSms, PhoneNumberRow, Zone
from gateway.core.models_citizens import HelpRequest, PollVote, SmsConversation, SmsReply
from gateway.core.reply_guard import GuardSettings
from gateway.core.sms_text import plan_sms
from gateway.core.states import DeliveryState, InboundKind, ReplyReason

pytestmark = pytest.mark.unit

MARIO, ANNA, STRANGER = "+393331110001", "+393331110002", "+393339998877"
PEOPLE = """nome;cellulare;telefono;zona;lingua;fragile;indirizzo
Mario Rossi;333 111 0001;;Isola Sacra;it;no;Via del Faro 1
Anna Smith;333 111 0002;;Fregene;en;sì;Via Portuense 9
"""
ZONES = ("Aranova", "Focene", "Fregene", "Isola Sacra", "Maccarese", "Palidoro", "Passoscuro", "Torrimpietra",
         "Testa di Lepre", "Tragliatella", "Parco Leonardo", "Fiumicino Centro", "Isola Sacra Nord")


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = tmp_path_factory.mktemp("db") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()   # the WAL is checkpointed into the file the tests copy
    return path


@pytest.fixture
def sessions(tmp_path, template):
    shutil.copy(template, tmp_path / "c.db")
    sessions = make_sessionmaker(make_engine(f"sqlite:///{tmp_path / 'c.db'}"))
    assert import_contacts(sessions, PEOPLE.encode()).imported
    with sessions.begin() as s:
        known = set(s.scalars(select(Zone.name)))
        s.add_all(Zone(name=name) for name in ZONES if name not in known)
    return sessions


@pytest.fixture
def service(sessions):
    return CitizenService(sessions, CitizenSettings(comune="Fiumicino", guard=GuardSettings(
        own_numbers=frozenset({"+393200000001"}))))


def receive(service, sender, text, at=None, now=None):
    with service.sessions.begin() as s:
        row = InboundSms(line="m0", sender=sender, text=text, received_at=at or utcnow())
        s.add(row)
        s.flush()
        inbound_id = row.id
    handled = service.process(inbound_id, now=now)
    with service.sessions() as s:
        reply = s.scalar(select(SmsReply).where(SmsReply.inbound_id == inbound_id))
        row = s.get(InboundSms, inbound_id)
        return handled, row, (reply.text if reply else None)


# A voice alert's recording as stored; no call is placed here, so nothing opens it (and no fixed /tmp name).
NEVER_PLAYED = "never-played/allerta-1"


def sent_alert(sessions, *, channels=("sms",), zones=("Isola Sacra", "Fregene"), **extra):
    """An alert whose deliveries went out a minute ago (voice ones stay planned: their audio is never read)."""
    request = AlertRequest(text="Allerta: salire ai piani alti", target=Target(zones=zones), channels=channels,
                           audio_path=NEVER_PLAYED if "voice" in channels else None, audio_seconds=3.0)
    alert_id, _ = AlertService(sessions).create(request)
    with sessions.begin() as s:
        s.execute(update(Delivery).where(Delivery.alert_id == alert_id, Delivery.channel == "sms")
                  .values(state=DeliveryState.SENT, sent_at=utcnow() - dt.timedelta(minutes=1)))
        s.execute(update(Delivery).where(Delivery.alert_id == alert_id, Delivery.channel == "voice")
                  .values(sent_at=utcnow() - dt.timedelta(minutes=1)))
        if extra:
            s.execute(update(Alert).where(Alert.id == alert_id).values(**extra))
    return alert_id


def number(sessions, e164):
    with sessions() as s:
        return s.scalar(select(PhoneNumberRow).where(PhoneNumberRow.e164 == e164))


# --- STOP ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["STOP", "stop", "Stop per favore", "BASTA!", "Cancellami", "arresta", "unsubscribe",
                                  "  stop.  "])
def test_stop_and_its_variants_opt_the_number_out_and_say_how_to_come_back(service, sessions, text):
    handled, row, reply = receive(service, MARIO, text)
    assert (row.kind, row.handled) == (InboundKind.COMMAND, True) and "opted out" in row.outcome
    stopped = number(sessions, MARIO)
    assert stopped.opted_out and stopped.opted_out_via == "sms" and stopped.opted_out_at is not None
    assert "ISCRIVI" in reply and plan_sms(reply).encoding == "GSM-7" and plan_sms(reply).segments == 1


def test_stop_in_english_is_answered_in_english_and_cancels_what_is_queued(service, sessions):
    alert_id, _ = AlertService(sessions).create(AlertRequest(text="Allerta", target=Target(zones=("Fregene",))))
    _, row, reply = receive(service, ANNA, "Stop please")
    assert reply.startswith("Fiumicino: you will get no more messages") and "REGISTER" in reply
    with sessions() as s:
        assert s.scalar(select(Delivery.state).where(Delivery.alert_id == alert_id)) == DeliveryState.CANCELLED


def test_stop_from_an_unknown_number_is_kept_for_when_it_is_imported(service, sessions):
    receive(service, STRANGER, "STOP")
    assert import_contacts(sessions, f"nome;cellulare;zona\nNuovo;{STRANGER};Aranova\n".encode()).imported
    assert number(sessions, STRANGER).opted_out


def test_stop_info_is_recorded_and_emergencies_still_come(service, sessions):
    _, row, reply = receive(service, MARIO, "STOP INFO")
    row_number = number(sessions, MARIO)
    assert row_number.opted_out_info and not row_number.opted_out
    assert "emergenza" in reply and row.kind == InboundKind.COMMAND


def test_an_opted_out_number_writing_iscrivi_is_back_in(service, sessions):
    receive(service, MARIO, "STOP")
    _, row, reply = receive(service, MARIO, "iscrivimi")
    assert not number(sessions, MARIO).opted_out and "opted back in" in row.outcome
    assert "Isola Sacra" in reply   # the zone it had: no list to choose from


# --- registration ------------------------------------------------------------------------------
@pytest.mark.parametrize("text, zone, language", [("ISCRIVI Aranova", "Aranova", "it"),
                                                  ("iscrivimi isola sacra en", "Isola Sacra", "en"),
                                                  ("Registra FOCENE!", "Focene", "it"),
                                                  ("register en Palidoro", "Palidoro", "en"),
                                                  ("Iscrivimi Testa di Lepre grazie", "Testa di Lepre", "it")])
def test_self_registration_by_zone_name(service, sessions, text, zone, language):
    _, row, reply = receive(service, STRANGER, text)
    with sessions() as s:
        contact = s.get(Contact, row.contact_id)
        assert (contact.zone.name, contact.language, contact.consent_source) == (zone, language, "sms")
        assert contact.consent_at is not None
    assert zone in reply and ("registered" in reply if language == "en" else "iscrizione fatta" in reply)


def test_registration_without_a_known_zone_offers_the_numbered_list_and_takes_the_number(service, sessions):
    _, row, reply = receive(service, STRANGER, "ISCRIVI en")
    assert reply.startswith("Fiumicino: choose your zone, reply with the number: 1 Aranova, 2 Fiumicino Centro")
    assert "list sent" in row.outcome and row.kind == InboundKind.COMMAND
    _, row, reply = receive(service, STRANGER, "3")
    assert "zone chosen by number (3)" in row.outcome and "Focene" in reply and reply.startswith("Fiumicino: registered")
    with sessions() as s:
        contact = s.get(Contact, row.contact_id)
        assert (contact.zone.name, contact.language) == ("Focene", "en")
        assert s.scalar(select(SmsConversation)) is None


def test_a_long_zone_list_is_paged_and_numbers_stay_those_of_the_whole_list(service, sessions):
    zones = [f"Località numero {i}" for i in range(1, 40)]
    first, end = zone_menu_page(zones, 0, "it", "Fiumicino")
    assert plan_sms(first).segments <= 2 and first.endswith("0 altre") and 0 < end < len(zones)
    second, _ = zone_menu_page(zones, end, "it", "Fiumicino")
    assert f"{end + 1} Località numero {end + 1}" in second


def test_zero_shows_the_next_page_and_an_expired_list_is_not_an_answer(service, sessions):
    with sessions.begin() as s:
        s.add_all(Zone(name=f"Borgo {i:02d} lungo nome di zona") for i in range(30))
    _, _, first = receive(service, STRANGER, "iscrivi")
    _, row, second = receive(service, STRANGER, "0")
    assert "next page" in row.outcome and first != second
    with sessions.begin() as s:
        s.execute(update(SmsConversation).values(expires_at=utcnow() - dt.timedelta(minutes=1)))
    _, row, _ = receive(service, STRANGER, "3")
    assert row.kind == InboundKind.UNRECOGNISED


def test_zona_and_lingua_change_the_contact(service, sessions):
    _, row, reply = receive(service, MARIO, "Zona Focene")
    assert reply == "Fiumicino: zona cambiata in Focene."
    _, row, reply = receive(service, MARIO, "lingua inglese")
    assert reply == "Fiumicino: language changed to English."
    with sessions() as s:
        contact = s.get(Contact, row.contact_id)
        assert (contact.zone.name, contact.language) == ("Focene", "en")


def test_zona_unknown_gives_the_list_and_lingua_unknown_says_which(service, sessions):
    _, row, reply = receive(service, MARIO, "ZONA Atlantide")
    assert "'atlantide' not recognised" in row.outcome and "1 Aranova" in reply
    _, _, reply = receive(service, MARIO, "LINGUA klingon")
    assert "LINGUA IT" in reply


# --- confirmation ----------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["OK", "ok grazie 👍", "Ricevuto!", "1", "Sì, ricevuto", "got it, thanks"])
def test_a_confirmation_confirms_the_numbers_deliveries_and_stops_its_planned_calls(service, sessions, text):
    alert_id = sent_alert(sessions, channels=("sms", "voice"))
    _, row, reply = receive(service, MARIO, text)
    assert (row.kind, row.alert_id) == (InboundKind.CONFIRMATION, alert_id)
    assert "1 planned calls stopped" in row.outcome and reply == "Fiumicino: conferma ricevuta, grazie."
    with sessions() as s:
        states = dict(s.execute(select(Delivery.channel, Delivery.state).where(
            Delivery.alert_id == alert_id, Delivery.e164 == MARIO)).all())
        others = set(s.scalars(select(Delivery.state).where(Delivery.alert_id == alert_id, Delivery.e164 != MARIO,
                                                           Delivery.channel == "voice")))
    assert states == {"sms": "confirmed", "voice": "confirmed"} and others == {"pending"}


def test_a_call_up_when_the_sms_confirmation_comes_is_left_alone_and_ends_confirmed(service, sessions):
    alert_id = sent_alert(sessions, channels=("sms", "voice"))
    with sessions.begin() as s:
        s.execute(update(Delivery).where(Delivery.alert_id == alert_id, Delivery.e164 == MARIO,
                                         Delivery.channel == "voice").values(state=DeliveryState.SUBMITTING))
    _, row, _ = receive(service, MARIO, "ok")
    with sessions() as s:
        voice = s.scalar(select(Delivery).where(Delivery.alert_id == alert_id, Delivery.e164 == MARIO,
                                                Delivery.channel == "voice"))
        assert voice.state == DeliveryState.SUBMITTING
        assert s.scalar(select(Attempt.outcome).where(Attempt.delivery_id == voice.id)) == "confirmed"


def test_ok_to_an_alert_that_asks_nothing_is_noted_without_an_answer(service, sessions):
    sent_alert(sessions)
    _, row, reply = receive(service, MARIO, "ok grazie")
    assert row.kind == InboundKind.CONFIRMATION and reply is None and "nothing to do" in row.outcome


# --- help ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["AIUTO", "sos", "Siamo bloccati al primo piano!!", "HELP we are trapped",
                                  "soccorso, acqua in casa"])
def test_a_plea_after_an_alert_is_a_help_request_with_the_contact_and_112_in_the_answer(service, sessions, text):
    alert_id = sent_alert(sessions)
    _, row, reply = receive(service, ANNA, text)
    with sessions() as s:
        request = s.scalar(select(HelpRequest))
        assert (request.alert_id, request.e164, request.text) == (alert_id, ANNA, text)
        assert s.get(Contact, request.contact_id).address == "Via Portuense 9"
    assert row.kind == InboundKind.HELP_REQUEST and "112" in reply and reply.startswith("Fiumicino: your request")


def test_a_plea_with_no_recent_alert_is_still_recorded(service, sessions):
    _, row, reply = receive(service, STRANGER, "aiuto")
    with sessions() as s:
        assert s.scalar(select(HelpRequest.alert_id)) is None
    assert "no alert to this number in the last 12 h" in row.outcome and "112" in reply


# --- polls -----------------------------------------------------------------------------------
def test_poll_votes_one_per_number_the_last_before_closing_counts(service, sessions):
    closes = utcnow() + dt.timedelta(hours=1)
    alert_id = sent_alert(sessions, poll_question="Avete acqua in casa?",
                          poll_options=json.dumps(["sì", "no", "non so"]), poll_closes_at=closes)
    _, row, reply = receive(service, MARIO, "2")
    assert (row.kind, row.alert_id) == (InboundKind.POLL_ANSWER, alert_id) and "risposta 2" in reply
    receive(service, ANNA, "1")
    _, row, reply = receive(service, MARIO, "1")
    assert "changed from 2 to 1" in row.outcome and "cambiata" in reply
    _, row, _ = receive(service, MARIO, "3", at=closes + dt.timedelta(minutes=1))
    assert "after it closed" in row.outcome
    with sessions() as s:
        votes = {v.e164: (v.option, v.changes) for v in s.scalars(select(PollVote))}
    assert votes == {MARIO: (1, 1), ANNA: (1, 0)}


def test_a_number_outside_the_options_is_not_a_vote(service, sessions):
    sent_alert(sessions, poll_options=json.dumps(["sì", "no"]))
    _, row, _ = receive(service, MARIO, "7")
    assert row.kind == InboundKind.UNRECOGNISED


# --- info, unrecognised, never make things worse -----------------------------------------------
def test_info_and_unrecognised_get_the_commands_once_a_day(service, sessions):
    _, row, reply = receive(service, MARIO, "INFO")
    assert row.kind == InboundKind.COMMAND and "STOP" in reply and "ISCRIVI" in reply and "112" in reply
    later = utcnow() + dt.timedelta(minutes=30)
    _, row, reply = receive(service, MARIO, "che succede?", at=later, now=later)
    assert row.kind == InboundKind.UNRECOGNISED and reply is None and "in the last 24 h" in row.outcome


@pytest.mark.parametrize("sender, why", [("TIM", "alphanumeric"), ("INFO-Vodafone", "alphanumeric"),
                                         ("4916", "short code"), ("+393200000001", "our own lines")])
def test_machines_and_our_own_lines_are_never_answered(service, sessions, sender, why):
    _, row, reply = receive(service, sender, "STOP")
    assert (row.kind, reply) == (InboundKind.IGNORED, None) and why in row.outcome


def test_an_autoresponder_gets_one_answer_not_a_conversation(service, sessions):
    _, _, first = receive(service, STRANGER, "Sono alla guida, ti richiamo")
    assert first is not None
    # It answers our answer, we answer nothing: the loop ends here.
    for _ in range(3):
        _, row, reply = receive(service, STRANGER, "Sono alla guida, ti richiamo")
        assert reply is None and "looks automatic" in row.outcome


def test_answers_are_capped_per_number_but_effects_still_apply(service, sessions):
    service.settings = CitizenSettings(comune="Fiumicino", guard=GuardSettings(max_replies_per_day=2, loop_replies=9))
    for text in ("LINGUA en", "LINGUA it"):
        assert receive(service, MARIO, text)[2] is not None
    _, row, reply = receive(service, MARIO, "STOP")
    assert reply is None and "no more today" in row.outcome and number(sessions, MARIO).opted_out
    # ...except the answer to a plea for help.
    assert "112" in receive(service, MARIO, "aiuto")[2]


def test_a_flood_is_stored_and_ignored(service, sessions):
    service.settings = CitizenSettings(guard=GuardSettings(flood_per_hour=3, loop_replies=99, max_replies_per_day=99))
    rows = [receive(service, STRANGER, f"iscrivi {i}")[1] for i in range(5)]
    assert [r.kind for r in rows] == ["command"] * 3 + ["ignored"] * 2
    assert "flood" in rows[-1].outcome


def test_a_message_is_acted_on_once(service, sessions):
    handled, row, _ = receive(service, MARIO, "STOP")
    assert service.process(row.id) is None
    with sessions() as s:
        assert s.query(SmsReply).count() == 1


def test_a_burst_of_answers_pauses_them_but_the_answer_to_our_zone_list_still_goes(service, sessions):
    for text in ("INFO", "ISCRIVI", "STOP INFO"):
        assert receive(service, STRANGER, text)[2] is not None
    _, row, reply = receive(service, STRANGER, "1")
    assert "Aranova" in reply
    _, row, reply = receive(service, STRANGER, "ZONA Focene")
    assert reply is None and "4 automatic answers in 5 min" in row.outcome
    with sessions() as s:
        assert s.get(Contact, row.contact_id).zone.name == "Focene"


def test_a_message_whose_handling_fails_is_kept_with_the_error_and_nothing_half_done(service, sessions, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("bug")
    monkeypatch.setattr(service, "_act", broken)
    with sessions.begin() as s:
        s.add(InboundSms(line="m0", sender=MARIO, text="STOP"))
    with pytest.raises(RuntimeError):
        service.process(1)
    with sessions() as s:
        assert not s.get(InboundSms, 1).handled   # rolled back: the contact link, the effect, the answer
    service.give_up(1, "RuntimeError")
    with sessions() as s:
        row = s.get(InboundSms, 1)
        assert row.handled and "internal error (RuntimeError)" in row.outcome and row.contact_id is None
    assert service.unhandled() == []
