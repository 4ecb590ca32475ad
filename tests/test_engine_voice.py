"""Voice alerts end to end: `allerta run` drives the PBX simulator over AMI/TCP (and modems for fallback)."""
import datetime as dt
import json
from collections import Counter, defaultdict

import pytest
from sqlalchemy import select, update

from asterisk.pbx_simulator.harness import PbxSimulatorProcess
from gateway.core.alerts import AlertRequest, Target
from gateway.core.contacts_import import import_contacts
from gateway.core.db import utcnow
from gateway.core.models import Alert, Attempt, Delivery, Line
from gateway.core.models_ops import Alarm
from gateway.core.store import DEADLINE_PASSED
from asterisk.voice_channel import LOGIN_REFUSED
from modem.simulator.harness import SimulatorProcess
from tests.engine_harness import allerta, services_for, start_engine, wait_until

pytestmark = pytest.mark.integration

SECRET = "s3cret-for-tests"


def voice_config(tmp_path, pbx, *, channels=10, modem_links=(), secret=SECRET, report_timeout=20, extra=""):
    modems = "".join(f'\n[[modems]]\nlabel = "m{i}"\nport = "{link}"\nper_minute = 6000\n'
                     for i, link in enumerate(modem_links))
    path = tmp_path / "allerta.toml"
    path.write_text(f"""[general]
data_dir = "{tmp_path / 'data'}"
[engine]
poll_interval = 0.05
report_timeout = {report_timeout}
[retry]
initial_delay = 0.2
[asterisk]
enabled = true
port = {pbx.port}
secret = "{secret}"
ring_timeout = 30
[[trunks]]
name = "trunk1"
dial = "PJSIP/{{number}}@trunk1"
max_channels = {channels}
calls_per_second = 500
caller_id = "+390665210000"
{extra}{modems}""", encoding="utf-8")
    return path


def population_csv(landlines: int, mobiles: int) -> bytes:
    rows = ["nome;telefono;cellulare;zona"]
    rows += [f"Casa {i};06 6500 {i:04d};;Fregene" for i in range(landlines)]
    rows += [f"Mobile {i};;333 600 {i:04d};Fregene" for i in range(mobiles)]
    return ("\n".join(rows) + "\n").encode()


def modem_simulator(tmp_path, count=1) -> SimulatorProcess:
    """Fast simulated modems for the SMS side (fallback, or SMS beside voice)."""
    return SimulatorProcess(count=count, link_dir=tmp_path / "links", latency_median=0.02, latency_sigma=0.2,
                            report_delay=0.05)


def create_voice_alert(services, tmp_path, **overrides):
    wav = tmp_path / "msg"
    (tmp_path / "msg.wav").write_bytes(b"")  # the simulator does not play audio; the path is what travels
    values = dict(text="Allerta alluvione: salire ai piani alti", channels=("voice",),
                  target=Target(zones=("Fregene",)), audio_path=str(wav), audio_seconds=12.0,
                  audio_source="tts", max_attempts=5, voice_interval=0.2, voice_growth=1.0, voice_cap=6)
    request = AlertRequest(**{**values, **overrides})
    alert_id, preview = services.alerts.create(request)
    return alert_id, preview


def calls_by_number(pbx) -> dict[str, list[dict]]:
    grouped = defaultdict(list)
    for call in pbx.calls():
        grouped[call["number"].lstrip("+")].append(call)
    for calls in grouped.values():
        calls.sort(key=lambda c: c["start"])
    return grouped


def max_concurrency(calls: list[dict]) -> int:
    points = sorted([(c["start"], 1) for c in calls] + [(c["end"], -1) for c in calls])
    current = peak = 0
    for _, step in points:
        current += step
        peak = max(peak, current)
    return peak


def test_1000_numbers_mixed_population_with_sms_fallback(tmp_path):
    always_busy, third_try = "+390665000007", "+390665000011"
    population = {"seed": 7, "answer": 0.7, "busy": 0.08, "no_answer": 0.1, "invalid_number": 0.02,
                  "voicemail": 0.05, "congestion": 0.0, "press_1": 0.8, "ring_seconds": [2, 8],
                  "listen_seconds": [5, 15],
                  "overrides": {always_busy: {"behaviour": "busy"},
                                third_try: {"answer_on_attempt": 3, "then": "confirm"}}}
    with PbxSimulatorProcess(tmp_path / "pbx", trunks={"trunk1": 10}, population=population, time_scale=0.005,
                             secret=SECRET) as pbx, \
            modem_simulator(tmp_path, count=2) as modems:
        config_path = voice_config(tmp_path, pbx, modem_links=[m["link"] for m in modems.modems])
        services = services_for(config_path)
        assert import_contacts(services.sessions, population_csv(700, 300)).imported
        alert_id, preview = create_voice_alert(services, tmp_path, sms_fallback=True)
        assert preview.recipients == {"voice": 1000}
        allerta(config_path, "run", "--once", timeout=600)

        with services.sessions() as s:
            voice = {d.e164: d for d in s.scalars(select(Delivery).where(Delivery.channel == "voice"))}
            sms = {d.e164: d for d in s.scalars(select(Delivery).where(Delivery.channel == "sms"))}
        calls = calls_by_number(pbx)
        assert len(voice) == 1000
        assert Counter(d.state for d in voice.values()).keys() <= {"confirmed", "answered", "voicemail", "failed"}
        assert Counter(d.state for d in voice.values())["confirmed"] > 700
        for number, delivery in voice.items():
            placed = calls[number.lstrip("+")]
            assert 1 <= len(placed) <= 6, (number, len(placed))          # never above the cap
            outcomes = [c["outcome"] for c in placed]
            if delivery.state == "confirmed":
                assert outcomes[-1] == "confirmed" and outcomes.count("confirmed") == 1  # never called again
            else:
                assert "confirmed" not in outcomes
            if "invalid_number" in outcomes:
                # Permanent: never called again.
                assert outcomes[-1] == "invalid_number" and outcomes.count("invalid_number") == 1
                assert delivery.state in ("failed", "answered", "voicemail")
        assert [c["outcome"] for c in calls[always_busy.lstrip("+")]] == ["busy"] * 5
        assert voice[always_busy].state == "failed" and voice[always_busy].attempts == 5
        assert [c["outcome"] for c in calls[third_try.lstrip("+")]][-1] == "confirmed"
        assert len(calls[third_try.lstrip("+")]) == 3
        # Never above the trunk's limit, and congestion from the PBX never happened because of us.
        all_calls = [c for placed in calls.values() for c in placed]
        assert max_concurrency(all_calls) <= 10
        assert max(c.get("concurrent", 0) for c in all_calls) <= 10
        # Fallback: unconfirmed mobiles, and only they, got the SMS through the modems.
        unconfirmed_mobiles = {n for n, d in voice.items() if n.startswith("+39333") and d.state != "confirmed"}
        assert set(sms) == unconfirmed_mobiles
        assert all(d.state == "delivered" for d in sms.values())
        assert {r["destination"] for r in modems.log_records("submit")} == unconfirmed_mobiles
        status = json.loads(allerta(config_path, "alert", "status", str(alert_id), "--json").stdout)
        assert status["channels"]["voice"]["remaining"] == 0
        assert status["lines"]["trunk1"]["calls"] == len(all_calls)


def test_ami_link_dropped_mid_alert_loses_nothing_and_places_nothing_twice(tmp_path):
    population = {"seed": 3, "answer": 1.0, "busy": 0, "no_answer": 0, "invalid_number": 0, "voicemail": 0,
                  "congestion": 0, "press_1": 1.0, "ring_seconds": [2, 10], "listen_seconds": [300, 500]}
    with PbxSimulatorProcess(tmp_path / "pbx", trunks={"trunk1": 8}, population=population, time_scale=0.01,
                             secret=SECRET) as pbx:
        config_path = voice_config(tmp_path, pbx, channels=8)
        services = services_for(config_path)
        assert import_contacts(services.sessions, population_csv(60, 0)).imported
        alert_id, _ = create_voice_alert(services, tmp_path)
        engine = start_engine(config_path, "--once", log_path=tmp_path / "engine.log")
        try:
            assert wait_until(lambda: len(pbx.calls()) >= 15, 60)
            pbx.control({"cmd": "drop_connections"})
            dropped_at = dt.datetime.now(dt.timezone.utc)
            assert wait_until(lambda: pbx.control({"cmd": "status"})["authenticated"] == 1, 30, interval=0.02)
            reconnected_at = dt.datetime.now(dt.timezone.utc)
            assert engine.wait(timeout=300) == 0, (tmp_path / "engine.log").read_text()[-3000:]
        finally:
            if engine.poll() is None:
                engine.kill()
        with services.sessions() as s:
            deliveries = {d.e164: d for d in s.scalars(select(Delivery).where(Delivery.alert_id == alert_id))}
        assert Counter(d.state for d in deliveries.values()) == {"confirmed": 60}   # nothing lost
        calls = calls_by_number(pbx)
        assert len(calls) == 60
        up_across_outage = 0
        for number, placed in calls.items():
            first_end = dt.datetime.fromisoformat(placed[0]["end"])
            first_start = dt.datetime.fromisoformat(placed[0]["start"])
            if first_start < dropped_at and first_end > reconnected_at:
                # Up before the drop and still up after the reconnect: followed, never placed again.
                up_across_outage += 1
                assert len(placed) == 1, (number, placed)
            if len(placed) > 1:
                # Ended while nobody listened: fate unknown, so called again and flagged.
                assert deliveries["+" + number].possible_duplicate
                assert dropped_at < first_end < reconnected_at + dt.timedelta(seconds=1)
        assert up_across_outage >= 4
        log = (tmp_path / "engine.log").read_text()
        assert "trunk1 is down" in log and log.count("trunk1 is up") >= 2


def test_wrong_ami_password_is_a_clear_error(tmp_path):
    with PbxSimulatorProcess(tmp_path / "pbx", secret=SECRET) as pbx:
        config_path = voice_config(tmp_path, pbx, secret="not-the-secret")
        services = services_for(config_path)
        import_contacts(services.sessions, population_csv(3, 0))
        alert_id, _ = create_voice_alert(services, tmp_path)
        result = allerta(config_path, "run", "--once", timeout=60, check=False)
        assert result.returncode == 2
        assert "Authentication failed" in result.stderr and "Traceback" not in result.stderr
        with services.sessions() as s:
            assert set(s.scalars(select(Delivery.state))) == {"pending"}
        assert pbx.calls() == []


def test_wrong_ami_password_keeps_sms_going_and_raises_one_ami_alarm(tmp_path):
    with PbxSimulatorProcess(tmp_path / "pbx", trunks={"trunk1": 4}, secret=SECRET) as pbx, \
            modem_simulator(tmp_path) as modems:
        # Two trunks on the one AMI link: one alarm for the link, not one per trunk.
        config_path = voice_config(tmp_path, pbx, secret="not-the-secret",
                                   modem_links=[m["link"] for m in modems.modems],
                                   extra='[ops]\nami_down_minutes = 0.01\n[[trunks]]\nname = "trunk2"\n'
                                         'dial = "PJSIP/{number}@trunk2"\nmax_channels = 2\n')
        services = services_for(config_path)
        assert import_contacts(services.sessions, population_csv(2, 3)).imported
        voice_id, _ = create_voice_alert(services, tmp_path)
        sms_id, _ = services.alerts.create(AlertRequest(text="Allerta alluvione", channels=("sms",),
                                                        target=Target(zones=("Fregene",))))
        log_path = tmp_path / "engine.log"
        engine = start_engine(config_path, log_path=log_path)   # as under systemd: no --once

        def sms_delivered_and_alarm_raised():
            with services.sessions() as s:
                sms = set(s.scalars(select(Delivery.state).where(Delivery.alert_id == sms_id)))
                alarms = s.scalars(select(Alarm).where(Alarm.kind == "ami_down")).all()
            return sms == {"delivered"} and alarms
        try:
            assert wait_until(sms_delivered_and_alarm_raised, 60), log_path.read_text()[-3000:]
            assert engine.poll() is None        # still running: the refusal did not stop it
        finally:
            engine.terminate()
            engine.wait(timeout=60)
        with services.sessions() as s:
            [alarm] = s.scalars(select(Alarm).where(Alarm.kind == "ami_down")).all()
            lines = {line.label: line for line in s.scalars(select(Line).where(Line.channel == "voice"))}
            voice = set(s.scalars(select(Delivery.state).where(Delivery.alert_id == voice_id)))
        assert alarm.subject == f"127.0.0.1:{pbx.port}" and LOGIN_REFUSED in alarm.message
        assert {(l.state, l.last_error) for l in lines.values()} == {("down", LOGIN_REFUSED)}
        assert set(lines) == {"trunk1", "trunk2"}
        assert voice == {"pending"} and pbx.calls() == []   # waiting for the secret to be fixed
        log = log_path.read_text()
        assert "ERROR" in log and f"127.0.0.1:{pbx.port} refused user 'allerta'" in log
        assert "not-the-secret" not in log and "Traceback" not in log


def test_voice_alert_past_its_deadline_places_no_call_and_falls_back_to_sms(tmp_path):
    with PbxSimulatorProcess(tmp_path / "pbx", trunks={"trunk1": 4}, secret=SECRET) as pbx, \
            modem_simulator(tmp_path) as modems:
        config_path = voice_config(tmp_path, pbx, modem_links=[m["link"] for m in modems.modems])
        services = services_for(config_path)
        assert import_contacts(services.sessions, population_csv(2, 3)).imported
        voice_id, _ = create_voice_alert(services, tmp_path, sms_fallback=True)
        sms_id, _ = services.alerts.create(AlertRequest(text="Allerta meteo", channels=("sms",),
                                                        target=Target(zones=("Fregene",))))
        with services.sessions.begin() as s:
            # Both deadlines passed while the engine was stopped.
            s.execute(update(Alert).where(Alert.id.in_((voice_id, sms_id)))
                      .values(deadline=utcnow() - dt.timedelta(minutes=5)))
        allerta(config_path, "run", "--once", timeout=120)
        with services.sessions() as s:
            rows = s.scalars(select(Delivery).where(Delivery.alert_id.in_((voice_id, sms_id)))).all()
        assert pbx.calls() == []
        voice = [d for d in rows if d.alert_id == voice_id and d.channel == "voice"]
        fallback = [d for d in rows if d.alert_id == voice_id and d.channel == "sms"]
        expired_sms = [d for d in rows if d.alert_id == sms_id]
        assert len(voice) == 5 and {(d.state, d.last_error) for d in voice} == {("failed", DEADLINE_PASSED)}
        assert {(d.state, d.last_error) for d in expired_sms} == {("failed", DEADLINE_PASSED)}
        mobiles = {d.e164 for d in voice if d.e164.startswith("+39333")}
        assert len(mobiles) == 3 and {d.e164 for d in fallback} == mobiles
        assert {d.state for d in fallback} == {"delivered"}
        # The modem sent the fallback only: the expired SMS alert sent nothing.
        assert Counter(r["destination"] for r in modems.log_records("submit")) == {m: 1 for m in mobiles}


def test_cancel_during_calls_stops_them_for_good_without_fallback(tmp_path):
    population = {"seed": 5, "answer": 1.0, "busy": 0, "no_answer": 0, "invalid_number": 0, "voicemail": 0,
                  "congestion": 0, "press_1": 0.0, "ring_seconds": [1, 2], "listen_seconds": [200, 300]}
    with PbxSimulatorProcess(tmp_path / "pbx", trunks={"trunk1": 10}, population=population, time_scale=0.01,
                             secret=SECRET) as pbx:
        config_path = voice_config(tmp_path, pbx)
        services = services_for(config_path)
        assert import_contacts(services.sessions, population_csv(3, 3)).imported
        # Listened but not confirmed: without the cancel, every number would be called again.
        alert_id, _ = create_voice_alert(services, tmp_path, sms_fallback=True)
        engine = start_engine(config_path, "--once", log_path=tmp_path / "engine.log")
        try:
            assert wait_until(lambda: pbx.control({"cmd": "status"})["active_calls"] == 6, 60)
            services.alerts.cancel(alert_id)
            assert engine.wait(timeout=120) == 0, (tmp_path / "engine.log").read_text()[-3000:]
        finally:
            if engine.poll() is None:
                engine.kill()
        with services.sessions() as s:
            rows = s.scalars(select(Delivery).where(Delivery.alert_id == alert_id)).all()
            attempts = s.scalars(select(Attempt.outcome).join(Delivery, Delivery.id == Attempt.delivery_id)
                                 .where(Delivery.alert_id == alert_id)).all()
        assert {(d.channel, d.state) for d in rows} == {("voice", "cancelled")}   # no fallback SMS
        assert sorted(attempts) == ["answered"] * 6           # the calls that were up stay on record
        assert sorted(Counter(c["number"] for c in pbx.calls()).values()) == [1] * 6


TRUNK_SIDE = {34, 38, 41, 42}


def test_trunk_side_failures_are_not_charged_and_the_hard_cap_binds(tmp_path):
    """Network failures (Q.850 27, 28, 38, 41, 42) mixed into the population, cap 3 < 5 attempts."""
    congested, recovers, busy, bad_format = "+390665000001", "+390665000002", "+390665000003", "+390665000004"
    population = {"seed": 5, "answer": 0.4, "busy": 0.1, "no_answer": 0.0, "invalid_number": 0.0,
                  "voicemail": 0.0, "congestion": 0.1, "destination_out_of_order": 0.05,
                  "network_out_of_order": 0.1, "temporary_failure": 0.1, "switching_congestion": 0.15,
                  "press_1": 0.5, "ring_seconds": [1, 3], "listen_seconds": [2, 4],
                  "overrides": {congested: {"behaviour": "switching_congestion"},
                                recovers: {"behaviour": "temporary_failure", "answer_on_attempt": 3,
                                           "then": "confirm"},
                                busy: {"behaviour": "busy"}, bad_format: {"behaviour": "invalid_format"}}}
    with PbxSimulatorProcess(tmp_path / "pbx", trunks={"trunk1": 6}, population=population, time_scale=0.005,
                             secret=SECRET) as pbx:
        config_path = voice_config(tmp_path, pbx, channels=6)
        services = services_for(config_path)
        assert import_contacts(services.sessions, population_csv(80, 0)).imported
        alert_id, _ = create_voice_alert(services, tmp_path, voice_cap=3)
        with services.sessions() as s:
            assert s.get(Alert, alert_id).max_attempts == 5
        allerta(config_path, "run", "--once", timeout=600)
        with services.sessions() as s:
            voice = {d.e164: d for d in s.scalars(select(Delivery).where(Delivery.alert_id == alert_id))}
        calls = calls_by_number(pbx)

    causes = Counter(c["cause"] for placed in calls.values() for c in placed)
    assert all(causes[cause] for cause in (27, 28, 38, 41, 42)), causes   # they did happen
    assert len(voice) == 80
    for number, delivery in voice.items():
        placed = calls[number.lstrip("+")]
        assert 1 <= len(placed) <= 3, (number, len(placed))        # the hard cap, whatever happened
        # Only what the callee did counts against them: trunk-side failures are free.
        charged = [c for c in placed if c["cause"] not in TRUNK_SIDE]
        assert delivery.attempts == len(charged), (number, [c["cause"] for c in placed], delivery.attempts)
        assert delivery.state not in ("pending", "submitting")
    # Always congested on the trunk side: three calls, none charged, and it gave up at the cap.
    assert [c["cause"] for c in calls[congested.lstrip("+")]] == [42, 42, 42]
    assert (voice[congested].state, voice[congested].attempts) == ("failed", 0)
    # Two temporary failures cost nothing, the third call was confirmed.
    assert [c["cause"] for c in calls[recovers.lstrip("+")]] == [41, 41, 16]
    assert (voice[recovers].state, voice[recovers].attempts) == ("confirmed", 1)
    # Always busy: the cap (3) stops it before max_attempts (5).
    assert [c["outcome"] for c in calls[busy.lstrip("+")]] == ["busy"] * 3
    assert (voice[busy].state, voice[busy].attempts) == ("failed", 3)
    # An invalid number format is permanent: one call.
    assert [c["cause"] for c in calls[bad_format.lstrip("+")]] == [28]
    assert voice[bad_format].state == "failed"
