import datetime as dt
import json

import pytest
from sqlalchemy import func, select, update

from gateway.core.alerts import AlertError, AlertRequest, AlertService, Target
from gateway.core.channels import SubmitReceipt
from gateway.core.db import utcnow
from gateway.core.retry import RetryVerdict
from gateway.core.states import AlertState, DeliveryState
from gateway.shell.cli import main
from gateway.core.contacts_import import import_contacts
from gateway.core.models import Alert, Contact, Delivery, PhoneNumberRow, Zone
from tests.support import CONTACTS_CSV

# Run on SQLite and on PostgreSQL (conftest.py, tests/pg_support.py).
pytestmark = pytest.mark.both_databases


def count(services, model, *where):
    with services.sessions() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_import_merges_households_and_is_idempotent(contacts):
    # Mario and Anna share the landline: one number row, two contacts.
    assert count(contacts, Contact) == 4
    assert count(contacts, PhoneNumberRow) == 5
    assert count(contacts, PhoneNumberRow, PhoneNumberRow.kind == "landline") == 1
    assert count(contacts, Zone) == 2
    again = import_contacts(contacts.sessions, CONTACTS_CSV.encode())
    assert again.imported and not again.changed
    assert again.contacts_unchanged == 4
    assert count(contacts, Contact) == 4


def test_fatal_file_imports_nothing(services):
    report = import_contacts(services.sessions, b"nome;zona\nMario;Fregene\n")
    assert report.fatal and not report.imported
    assert count(services, Contact) == 0


def test_strict_import_with_a_bad_row_imports_nothing(services):
    data = CONTACTS_CSV + "Bad Row;06 abc;;Fregene;;;\n"
    report = import_contacts(services.sessions, data.encode(), strict=True)
    assert not report.imported
    assert [e.line for e in report.rejected] == [6]
    assert count(services, Contact) == 0
    lenient = import_contacts(services.sessions, data.encode())
    assert lenient.imported and count(services, Contact) == 4


def test_fan_out_one_delivery_per_mobile_vulnerable_first(contacts):
    alert_id, preview = contacts.alerts.create(AlertRequest(text="Allerta", target=Target(everyone=True)))
    with contacts.sessions() as s:
        rows = s.execute(select(Delivery.e164, Delivery.vulnerable, Delivery.language, Delivery.sort_key)
                         .where(Delivery.alert_id == alert_id).order_by(Delivery.sort_key, Delivery.id)).all()
    assert preview.recipients == {"sms": 4}
    assert len({r.e164 for r in rows}) == 4        # the landline gets no SMS
    assert "+390665211234" not in {r.e164 for r in rows}
    assert [r.vulnerable for r in rows] == [True, True, False, False]
    assert {r.e164: r.language for r in rows}["+393207654321"] == "ro"


def test_zone_and_group_targets(contacts):
    _, preview = contacts.alerts.create(AlertRequest(text="x", target=Target(zones=("fregene",))))
    assert preview.recipients["sms"] == 2
    _, preview = contacts.alerts.create(AlertRequest(text="x", target=Target(zones=("Fregene",), groups=("volontari",))))
    assert preview.recipients["sms"] == 3


def test_to_number_not_in_contacts(services):
    alert_id, preview = services.alerts.create(AlertRequest(text="x", target=Target(numbers=("333 999 0000",))))
    assert preview.recipients["sms"] == 1
    with services.sessions() as s:
        assert s.scalar(select(Delivery.e164).where(Delivery.alert_id == alert_id)) == "+393339990000"


def test_the_preview_counts_numbers_in_no_contact_as_create_will(contacts, config_path, capsys, tmp_path):
    request = AlertRequest(text="x", channels=("sms", "voice"), audio_path=str(tmp_path / "x.wav"),
                           target=Target(zones=("Fregene",), numbers=("+393339998877", "333 999 8877", "06 1234 5678")))
    preview = contacts.alerts.preview(request)
    assert count(contacts, PhoneNumberRow, PhoneNumberRow.e164 == "+393339998877") == 0   # nothing written
    _, created = contacts.alerts.create(request)
    assert preview.recipients == created.recipients
    assert created.recipients["sms"] == 2 + 1 and created.recipients["voice"] == created.recipients["sms"] + 1
    assert main(["--config", str(config_path), "alert", "send", "--sms", "--to", "+393339998878", "--text", "x"]) == 0
    assert "1 SMS recipient, 1 segment in all" in capsys.readouterr().err


@pytest.mark.parametrize("request_, message", [
    (AlertRequest(text="  ", target=Target(everyone=True)), "text is empty"),
    (AlertRequest(text="x", target=Target()), "no recipients chosen"),
    (AlertRequest(text="x", target=Target(zones=("Atlantide",))), "unknown zone: Atlantide"),
    (AlertRequest(text="x", target=Target(numbers=("12",))), "--to 12"),
    (AlertRequest(text="x" * 700, target=Target(everyone=True)), "needs 5 SMS segments"),
    (AlertRequest(text="Evacuare 😀", target=Target(everyone=True)), "cannot be sent by SMS"),
])
def test_bad_alerts_change_nothing(contacts, request_, message):
    with pytest.raises(AlertError, match=message):
        contacts.alerts.create(request_)
    assert count(contacts, Alert) == 0 and count(contacts, Delivery) == 0


def test_drill_is_marked_and_priority_goes_first(contacts):
    normal, _ = contacts.alerts.create(AlertRequest(text="Normale", target=Target(everyone=True)))
    drill, _ = contacts.alerts.create(AlertRequest(text="Prova", target=Target(everyone=True), drill=True, priority=True))
    claimed = contacts.store.claim("sms", 4)
    assert {c.alert_id for c in claimed} == {drill}
    assert all(c.text == "[ESERCITAZIONE] Prova" for c in claimed)
    status = contacts.alerts.status(drill)
    assert status["drill"] is True and status["by_state"]["submitting"] == 4


def test_cancel_stops_pending_only(contacts):
    alert_id, _ = contacts.alerts.create(AlertRequest(text="x", target=Target(everyone=True)))
    claimed = contacts.store.claim("sms", 1)
    assert contacts.alerts.cancel(alert_id) == 3
    status = contacts.alerts.status(alert_id)
    assert status["by_state"]["cancelled"] == 3 and status["by_state"]["submitting"] == 1
    assert contacts.store.claim("sms", 10) == []
    assert claimed


def test_cli_send_status_cancel(contacts, config_path, capsys):
    assert main(["--config", str(config_path), "alert", "send", "--sms", "--zone", "Isola Sacra",
                 "--text", "L’acqua sale – salire ai piani alti…"]) == 0
    out, err = capsys.readouterr()
    alert_id = int(out.strip())
    assert "encoding GSM-7, 1 segment per message (typographic characters replaced" in err
    assert "2 SMS recipients, 2 segments in all" in err
    assert main(["--config", str(config_path), "alert", "status", str(alert_id), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["text"] == "L'acqua sale - salire ai piani alti..."
    assert status["by_state"]["pending"] == 2 and status["eta_seconds"] is None
    assert main(["--config", str(config_path), "alert", "cancel", str(alert_id)]) == 0
    assert "2 deliveries stopped" in capsys.readouterr().out
    assert main(["--config", str(config_path), "alert", "send", "--sms", "--all", "--text", "x" * 800]) == 2
    assert "needs 6 SMS segments" in capsys.readouterr().err
    assert count(contacts, Alert) == 1


@pytest.mark.integration
def test_cli_voice_alert_renders_speech_into_the_sounds_dir(contacts, config_path, capsys):
    assert main(["--config", str(config_path), "alert", "send", "--voice", "--sms", "--zone", "Isola Sacra",
                 "--text", "Allerta: salire ai piani alti", "--fallback-sms", "--cap", "3"]) == 0
    out, err = capsys.readouterr()
    assert "voice message:" in err and "(tts)" in err
    assert "3 numbers to call" in err   # two mobiles and the shared landline, once
    with contacts.sessions() as s:
        alert = s.get(Alert, int(out.strip()))
        assert alert.voice_cap == 3 and alert.sms_fallback and alert.audio_source == "tts"
        assert alert.audio_seconds > 2
    from gateway.core.audio import audio_info
    info = audio_info(alert.audio_path + ".wav")
    assert (info.sample_rate, info.channels, info.bits) == (8000, 1, 16)
    assert str(contacts.config.sounds_dir) in alert.audio_path


@pytest.mark.parametrize("extra, message", [
    (["--lang", "tlh"], "tlh"),
    (["--audio", "/nonexistent/message.mp3"], "message.mp3"),
    (["--zone", "Atlantide"], "unknown zone: Atlantide"),
])
def test_cli_bad_voice_input_changes_nothing(contacts, config_path, capsys, extra, message):
    args = ["--config", str(config_path), "alert", "send", "--voice", "--text", "Allerta"]
    if "--zone" not in extra:
        args += ["--all"]
    assert main(args + extra) == 2
    assert message in capsys.readouterr().err
    assert count(contacts, Alert) == 0 and count(contacts, Delivery) == 0
    sounds = contacts.config.sounds_dir
    import os
    assert not os.path.exists(sounds) or os.listdir(sounds) == []


@pytest.mark.integration
def test_cli_silent_recording_is_refused(contacts, config_path, capsys, tmp_path):
    import subprocess
    silent = tmp_path / "silenzio.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", str(silent), "trim", "0", "3"], check=True)
    assert main(["--config", str(config_path), "alert", "send", "--voice", "--all", "--text", "x",
                 "--audio", str(silent)]) == 2
    assert "silenzio.wav" in capsys.readouterr().err
    assert count(contacts, Alert) == 0


def test_status_eta_counts_only_lines_the_engine_still_reports(contacts):
    import datetime as dt
    from gateway.core.db import utcnow
    from gateway.core.models import Line
    alert_id, _ = contacts.alerts.create(AlertRequest(text="x", target=Target(everyone=True)))
    with contacts.sessions.begin() as s:
        s.add(Line(label="m0", channel="sms", state="up", rate_per_minute=10.0, updated_at=utcnow()))
    status = contacts.alerts.status(alert_id)
    pending = status["by_state"]["pending"]
    assert pending > 0 and status["eta_seconds"] == pending * 60 / 10   # one segment each, 10 a minute
    assert status["lines"]["m0"]["stale"] is False
    # The engine stopped writing (dead, or the modem missed its health reads): no capacity, no ETA.
    with contacts.sessions.begin() as s:
        s.execute(update(Line).where(Line.label == "m0").values(updated_at=utcnow() - dt.timedelta(minutes=10)))
    status = contacts.alerts.status(alert_id)
    assert status["eta_seconds"] is None and status["lines"]["m0"]["stale"] is True


def test_each_delivery_keeps_the_zone_it_was_sent_for(contacts):
    from gateway.core.models import Delivery
    alert_id, _ = contacts.alerts.create(AlertRequest(text="x", target=Target(everyone=True)))
    with contacts.sessions() as s:
        zones = dict(s.execute(select(Delivery.e164, Delivery.zone).where(Delivery.alert_id == alert_id)).all())
    assert zones["+393207654321"] == "Fregene" and zones["+393331110001"] == "Isola Sacra"
    # A correction goes to the same recipients, with the zone the original had.
    follow_id, _ = contacts.alerts.create(AlertRequest(text="y", target=Target(), follows=alert_id,
                                                       follow_up="correction"))
    with contacts.sessions() as s:
        again = dict(s.execute(select(Delivery.e164, Delivery.zone).where(Delivery.alert_id == follow_id)).all())
    assert again == zones


def test_an_alert_with_nothing_left_to_do_is_completed_with_its_time(contacts):
    alert_id, _ = contacts.alerts.create(AlertRequest(text="x", target=Target(zones=("Fregene",))))
    claims = contacts.store.claim("sms", 10)
    assert contacts.store.complete_finished_alerts() == 0          # in flight
    for claim in claims:
        contacts.store.record_result(claim, RetryVerdict(DeliveryState.SENT),
                                     receipt=SubmitReceipt(line="m1", references=[1]))
    assert contacts.store.complete_finished_alerts() == 0          # sent: status reports still awaited
    later = utcnow() + dt.timedelta(seconds=contacts.store.report_wait.total_seconds() + 1)
    assert contacts.store.complete_finished_alerts(later) == 1
    status = contacts.alerts.status(alert_id)
    assert status["state"] == AlertState.COMPLETED and status["completed_at"].startswith(str(later.date()))
    # Work again (a retry): active again until it is done.
    with contacts.sessions.begin() as s:
        s.execute(update(Delivery).where(Delivery.alert_id == alert_id).values(state="pending"))
    contacts.store.complete_finished_alerts(later)
    assert contacts.alerts.status(alert_id)["state"] == AlertState.ACTIVE


def test_a_voice_only_alert_is_not_limited_by_sms_segments(contacts):
    """A 749-character text needs 5 SMS segments: refused by SMS or with the SMS fallback, fine by voice."""
    text = "Allerta idrogeologica. " * 32 + "x" * 13
    assert len(text) == 749
    voice = dict(text=text, target=Target(everyone=True), channels=("voice",),
                 audio_path="/nonexistent/allerta-message", audio_seconds=60.0)
    alert_id, _ = contacts.alerts.create(AlertRequest(**voice))
    with contacts.sessions() as s:
        assert s.get(Alert, alert_id).text.startswith("Allerta idrogeologica")
    for refused in (dict(voice, sms_fallback=True), dict(voice, channels=("voice", "sms"))):
        with pytest.raises(AlertError, match="needs 5 SMS segments"):
            contacts.alerts.create(AlertRequest(**refused))
    assert count(contacts, Alert) == 1


def test_sms_ends_with_the_hotline_number_only_when_it_costs_no_segment(contacts):
    service = AlertService(contacts.sessions, hotline_number="06 6599 9000")
    short, plan = service.plan(AlertRequest(text="Allerta meteo arancione.", target=Target(everyone=True)))
    assert short == "Allerta meteo arancione. Info: 06 6599 9000" and plan.segments == 1
    full = "x" * 150    # 150 of 160 septets: the number would need a second segment
    assert service.plan(AlertRequest(text=full, target=Target(everyone=True)))[0] == full
