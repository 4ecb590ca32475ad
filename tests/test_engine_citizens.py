"""Citizens answer by SMS, end to end: `allerta run` over simulated modems on real ptys (and the PBX simulator)."""
import datetime as dt
import json

import pytest
from sqlalchemy import select, update

from asterisk.pbx_simulator.harness import PbxSimulatorProcess
from gateway.core.alerts import AlertRequest, Target
from gateway.core.contacts_import import import_contacts
from gateway.core.db import utcnow
from gateway.core.models import Alert, Contact, Delivery, InboundSms, PhoneNumberRow
from gateway.core.models_citizens import HelpRequest, PollVote, SmsReply
from modem.simulator.harness import SimulatorProcess
from tests.engine_harness import contacts_csv, engine_config, services_for, start_engine, wait_until
from tests.test_engine_voice import SECRET, create_voice_alert, voice_config

pytestmark = pytest.mark.integration

FAST = dict(latency_median=0.02, latency_sigma=0.3, report_delay=0.05)
STRANGER, NEWCOMER, ON_HOLIDAY, LEFT_OVER = "+393339990001", "+393339990002", "+393339990003", "+393339990004"


def resident(i: int) -> str:
    return f"+39333{5000000 + i:07d}"


def submits_to(sim, number: str) -> list[dict]:
    return [r for r in sim.log_records("submit") if r["destination"] == number and r["part"] == 1]


def handled_all(services) -> bool:
    with services.sessions() as s:
        return s.scalar(select(InboundSms.id).where(InboundSms.handled.is_(False))) is None and \
            s.scalar(select(InboundSms.id)) is not None


def test_citizens_write_and_the_answers_leave_through_the_modems_after_the_alert(tmp_path):
    with SimulatorProcess(count=2, link_dir=tmp_path / "links", **FAST) as sim:
        config_path = engine_config(tmp_path, [m["link"] for m in sim.modems], per_minute=300)
        services = services_for(config_path)
        assert import_contacts(services.sessions, contacts_csv(30)).imported
        assert import_contacts(services.sessions, b"nome;cellulare;zona\nA;+39 333 7000001;Aranova\n"
                                                  b"F;+39 333 7000002;Focene\n").imported
        alert_id, _ = services.alerts.create(AlertRequest(text="Allerta: salire ai piani alti",
                                                          target=Target(zones=("Isola Sacra",))))
        with services.sessions.begin() as s:
            s.execute(update(Alert).where(Alert.id == alert_id).values(
                poll_question="Avete acqua in casa?", poll_options=json.dumps(["sì", "no"]),
                poll_closes_at=utcnow() + dt.timedelta(hours=1)))
        # Committed by a run that died before acting on it: this run acts on it, once.
        with services.sessions.begin() as s:
            s.add(InboundSms(line="m0", sender=LEFT_OVER, text="Iscrivimi Aranova"))
        engine = start_engine(config_path, log_path=tmp_path / "engine.log")

        def incoming(sender, text):
            sim.control({"cmd": "incoming_sms", "modem": "modem-1", "sender": sender, "text": text})
        try:
            # Written while the alert is going out: its answer waits for the alert's last SMS.
            incoming(STRANGER, "INFO")
            assert wait_until(lambda: submits_to(sim, STRANGER), 60), (tmp_path / "engine.log").read_text()[-3000:]
            submits = [r for r in sim.log_records("submit") if r["part"] == 1]
            alert_numbers = {resident(i) for i in range(30)}
            last_alert_sms = max(i for i, r in enumerate(submits) if r["destination"] in alert_numbers)
            assert [r["destination"] for r in submits].index(STRANGER) > last_alert_sms
            assert len({r["destination"] for r in submits} & alert_numbers) == 30
            assert "STOP" in submits_to(sim, STRANGER)[0]["text"]

            incoming(resident(0), "Stop")
            incoming(resident(1), "2")
            incoming(resident(2), "1")
            incoming(resident(3), "Aiuto, siamo bloccati al primo piano")
            incoming(NEWCOMER, "ISCRIVIMI Focene")
            incoming(ON_HOLIDAY, "Sono in ferie fino al 10")
            assert wait_until(lambda: submits_to(sim, NEWCOMER) and submits_to(sim, resident(3))
                              and submits_to(sim, ON_HOLIDAY), 60)
            incoming(resident(1), "1")                                # a vote changed
            incoming(ON_HOLIDAY, "Sono in ferie fino al 10")          # the autoresponder answers our answer
            incoming(STRANGER, "iscrivi")                             # no zone: the numbered list
            assert wait_until(lambda: len(submits_to(sim, STRANGER)) == 2, 60)
            incoming(STRANGER, "1")                                   # 1 Aranova
            assert wait_until(lambda: len(submits_to(sim, STRANGER)) == 3 and handled_all(services), 60)
        finally:
            engine.terminate()
            assert engine.wait(timeout=60) == 0
        log = (tmp_path / "engine.log").read_text()
        assert "Traceback" not in log and "event=reply_sent" in log

        assert "ISCRIVI" in submits_to(sim, resident(0))[-1]["text"]
        assert "112" in submits_to(sim, resident(3))[-1]["text"]
        assert "zona Focene" in submits_to(sim, NEWCOMER)[0]["text"]
        assert "1 Aranova, 2 Focene, 3 Isola Sacra" in submits_to(sim, STRANGER)[1]["text"]
        assert len(submits_to(sim, ON_HOLIDAY)) == 1
        assert len(submits_to(sim, LEFT_OVER)) == 1 and "zona Aranova" in submits_to(sim, LEFT_OVER)[0]["text"]
        with services.sessions() as s:
            assert s.scalar(select(PhoneNumberRow.opted_out).where(PhoneNumberRow.e164 == resident(0)))
            votes = {v.e164: (v.option, v.changes) for v in s.scalars(select(PollVote))}
            [help_request] = s.scalars(select(HelpRequest)).all()
            helper = s.get(Contact, help_request.contact_id)
            zones = {e164: s.scalar(select(Contact).join(Contact.numbers).where(PhoneNumberRow.e164 == e164)).zone.name
                     for e164 in (NEWCOMER, STRANGER)}
            kinds = {(m.sender, m.text): m.kind for m in s.scalars(select(InboundSms))}
            assert all(r.state == "sent" for r in s.scalars(select(SmsReply)))
        assert votes == {resident(1): (1, 1), resident(2): (1, 0)}
        assert (help_request.alert_id, helper.name) == (alert_id, "Residente 3")
        assert zones == {NEWCOMER: "Focene", STRANGER: "Aranova"}
        assert kinds[(ON_HOLIDAY, "Sono in ferie fino al 10")] == "unrecognised"

        # The number that wrote STOP gets nothing from the next alert, nor after the anagrafe is imported again.
        assert import_contacts(services.sessions, contacts_csv(30)).imported
        second, preview = services.alerts.create(AlertRequest(text="Allerta 2", target=Target(zones=("Isola Sacra",))))
        with services.sessions() as s:
            reached = set(s.scalars(select(Delivery.e164).where(Delivery.alert_id == second)))
            assert s.scalar(select(PhoneNumberRow.opted_out).where(PhoneNumberRow.e164 == resident(0)))
        assert resident(0) not in reached and len(reached) == 29


def test_a_confirmation_by_sms_stops_that_numbers_planned_calls(tmp_path):
    population = {"seed": 3, "answer": 0.0, "no_answer": 1.0, "busy": 0.0, "invalid_number": 0.0, "voicemail": 0.0,
                  "congestion": 0.0, "ring_seconds": [1, 1]}
    with PbxSimulatorProcess(tmp_path / "pbx", trunks={"trunk1": 4}, population=population, time_scale=0.01,
                             secret=SECRET) as pbx, \
            SimulatorProcess(count=1, link_dir=tmp_path / "links", **FAST) as sim:
        config_path = voice_config(tmp_path, pbx, modem_links=[m["link"] for m in sim.modems])
        services = services_for(config_path)
        assert import_contacts(services.sessions, b"nome;cellulare;zona\nUno;333 600 0001;Fregene\n"
                                                  b"Due;333 600 0002;Fregene\n").imported
        # Nobody answers: after the first call, the next is planned a minute later.
        alert_id, _ = create_voice_alert(services, tmp_path, channels=("sms", "voice"), voice_interval=60.0)
        engine = start_engine(config_path, log_path=tmp_path / "engine.log")
        try:
            def first_calls_made():
                return {c["number"].lstrip("+") for c in pbx.calls()} == {"393336000001", "393336000002"} and \
                    len(submits_to(sim, "+393336000001")) == 1
            assert wait_until(first_calls_made, 60), (tmp_path / "engine.log").read_text()[-3000:]
            sim.control({"cmd": "incoming_sms", "modem": "modem-0", "sender": "+393336000001", "text": "Ricevuto"})
            assert wait_until(lambda: len(submits_to(sim, "+393336000001")) == 2, 60)
        finally:
            engine.terminate()
            assert engine.wait(timeout=60) == 0
        with services.sessions() as s:
            states = {(d.e164, d.channel): d.state for d in s.scalars(select(Delivery).where(Delivery.alert_id == alert_id))}
            [inbound] = s.scalars(select(InboundSms)).all()
        assert states[("+393336000001", "voice")] == "confirmed"
        assert states[("+393336000001", "sms")] == "confirmed"
        assert states[("+393336000002", "voice")] == "pending"   # the other number is still called
        assert "1 planned calls stopped" in inbound.outcome
        assert submits_to(sim, "+393336000001")[1]["text"].endswith("conferma ricevuta, grazie.")
