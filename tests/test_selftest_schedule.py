"""When the scheduled self-test runs: at a time of day (and weekday), across DST changes, never at night.

Pure tests of next_selftest in Europe/Rome (no clock read), the due() rule over stored runs at
given instants, the [ops] keys' validation, the test call's language, and the key table of docs/configuration.md.
"""
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.core.config import ConfigError, parse_config, schema_markdown
from gateway.core.models_ops import SelfTestRun
from gateway.core.selftest import LOCAL_TZ, SelfTestMonitor, SelfTestSettings, next_selftest, render_voice, tts_language
from gateway.core.voice_messages import VoiceRenderer

ROME = ZoneInfo("Europe/Rome")
UTC = dt.timezone.utc
ROOT = Path(__file__).resolve().parent.parent
WEEKLY = dt.timedelta(hours=168)
DAILY = dt.timedelta(hours=24)


def rome(*args, fold=0):
    return dt.datetime(*args, tzinfo=ROME, fold=fold)


def settings(at="10:00", weekday=None, interval=WEEKLY):
    return SelfTestSettings(numbers=("+393331112222",), interval=interval,
                            at=dt.time.fromisoformat(at) if at else None, weekday=weekday)


def test_the_municipality_time_is_rome():
    assert LOCAL_TZ.key == "Europe/Rome"


def test_weekly_run_keeps_its_wall_time_across_the_spring_change():
    # Sunday 30 March 2025: 02:00 CET becomes 03:00 CEST. Last Sunday's run started at
    # 10:00:07 CET; the next is at 10:00 CEST, 167 hours later, not 168 h (11:00) and not later.
    last = rome(2025, 3, 23, 10, 0, 7)
    due = next_selftest(rome(2025, 3, 30, 8, 0), last, settings(weekday=6))
    assert due == rome(2025, 3, 30, 10, 0) and due.utcoffset() == dt.timedelta(hours=2)
    assert due.astimezone(UTC) - last.astimezone(UTC) < WEEKLY


def test_weekly_run_keeps_its_wall_time_across_the_autumn_change():
    # Sunday 26 October 2025: 03:00 CEST becomes 02:00 CET; 10:00 CET is 169 h after 10:00 CEST.
    last = rome(2025, 10, 19, 10, 0, 3)
    due = next_selftest(rome(2025, 10, 26, 9, 30), last, settings(weekday=6))
    assert due == rome(2025, 10, 26, 10, 0) and due.utcoffset() == dt.timedelta(hours=1)
    # Same without a weekday: the weekly interval from the last run, still at 10:00.
    assert next_selftest(rome(2025, 10, 26, 9, 30), last, settings()) == rome(2025, 10, 26, 10, 0)


def test_a_time_missing_on_the_spring_day_runs_an_hour_later_and_a_doubled_one_runs_once():
    nightly = settings(at="02:30", interval=DAILY)
    due = next_selftest(rome(2025, 3, 29, 12, 0), rome(2025, 3, 29, 2, 30), nightly)
    assert due.astimezone(UTC) == dt.datetime(2025, 3, 30, 1, 30, tzinfo=UTC)     # 03:30 CEST
    # 02:30 happens twice on 26 October: the first (CEST) one runs, the second does not.
    first = next_selftest(rome(2025, 10, 25, 12, 0), rome(2025, 10, 25, 2, 30), nightly)
    assert first.astimezone(UTC) == dt.datetime(2025, 10, 26, 0, 30, tzinfo=UTC)
    after = next_selftest(rome(2025, 10, 26, 2, 31, fold=1), first, nightly)
    assert after.astimezone(UTC) == dt.datetime(2025, 10, 27, 1, 30, tzinfo=UTC)   # 02:30 CET next day


def test_an_engine_started_at_night_waits_for_the_time_of_day():
    # No run for a month (or never): the engine coming up at 03:00 does not call staff at once.
    for last in (None, rome(2025, 1, 6, 10, 0)):
        assert next_selftest(rome(2025, 2, 12, 3, 0), last, settings()) == rome(2025, 2, 12, 10, 0)
    # Within LATE_LIMIT of the slot it still runs (now: the slot is in the past, so due at once) ...
    assert next_selftest(rome(2025, 2, 12, 11, 30), None, settings()) == rome(2025, 2, 12, 10, 0)
    # ... later than that it waits for the next day's slot.
    assert next_selftest(rome(2025, 2, 12, 12, 30), None, settings()) == rome(2025, 2, 13, 10, 0)
    # With a weekday: the next Monday, whatever day the engine first starts.
    assert next_selftest(rome(2025, 2, 12, 3, 0), None, settings(weekday=0)) == rome(2025, 2, 17, 10, 0)


def test_a_run_held_back_or_late_does_not_shift_the_next_one():
    # Monday's run started at 11:40 (a real alert was going out): the next is Monday 10:00 again.
    assert next_selftest(rome(2025, 2, 17, 12, 0), rome(2025, 2, 17, 11, 40), settings(weekday=0)) == \
        rome(2025, 2, 24, 10, 0)
    assert next_selftest(rome(2025, 2, 17, 12, 0), rome(2025, 2, 17, 11, 40), settings()) == \
        rome(2025, 2, 24, 10, 0)
    # Daily: the day after, at 10:00, also when today's started 10 seconds late.
    assert next_selftest(rome(2025, 2, 17, 10, 1), rome(2025, 2, 17, 10, 0, 10), settings(interval=DAILY)) == \
        rome(2025, 2, 18, 10, 0)
    # Every two weeks on Mondays.
    assert next_selftest(rome(2025, 2, 17, 12, 0), rome(2025, 2, 17, 10, 0),
                         settings(weekday=0, interval=2 * WEEKLY)) == rome(2025, 3, 3, 10, 0)


def test_without_a_time_of_day_the_interval_alone_decides():
    free = settings(at="")
    assert next_selftest(rome(2025, 3, 1, 3, 0), None, free) == rome(2025, 3, 1, 3, 0)
    due = next_selftest(rome(2025, 3, 27, 12, 0), rome(2025, 3, 26, 23, 0), free)
    # 168 hours later: across the spring change that is 00:00, an hour later on the wall clock.
    assert due == rome(2025, 4, 3, 0, 0) and due.astimezone(UTC) == dt.datetime(2025, 4, 2, 22, 0, tzinfo=UTC)


def _add_run(services, started_local, trigger="schedule"):
    with services.sessions.begin() as s:
        s.add(SelfTestRun(started_at=started_local.astimezone(UTC).replace(tzinfo=None), trigger=trigger,
                          result="ok", finished_at=started_local.astimezone(UTC).replace(tzinfo=None)))


def naive_utc(local):
    return local.astimezone(UTC).replace(tzinfo=None)


def test_due_follows_the_stored_scheduled_runs_and_ignores_runs_by_hand(services):
    monitor = SelfTestMonitor(services.sessions, services.alerts, settings(weekday=0), alarms=None)
    _add_run(services, rome(2025, 3, 24, 10, 0, 5))                  # Monday, CET
    _add_run(services, rome(2025, 3, 30, 15, 0), trigger="cli")       # a test by hand on Sunday
    assert not monitor.due(naive_utc(rome(2025, 3, 31, 3, 0)))        # the night before: no call
    assert not monitor.due(naive_utc(rome(2025, 3, 31, 9, 59)))
    assert monitor.due(naive_utc(rome(2025, 3, 31, 10, 0, 30)))       # Monday 10:00 CEST
    assert not monitor.due(naive_utc(rome(2025, 3, 31, 12, 1)))       # missed by > 2 h: next week


@pytest.mark.parametrize("ops, message", [
    ({"selftest_at": "25:00"}, "[ops] selftest_at: must be empty or a time written HH:MM"),
    ({"selftest_at": "9:00"}, "[ops] selftest_at: must be empty or a time written HH:MM"),
    ({"selftest_weekday": "monday"}, "[ops] selftest_weekday: must be empty or one of mon, tue"),
    ({"selftest_at": "", "selftest_weekday": "mon"}, "[ops] selftest_weekday: needs [ops] selftest_at"),
])
def test_bad_schedule_keys_name_the_key(ops, message):
    with pytest.raises(ConfigError) as exc:
        parse_config({"ops": ops})
    assert message in str(exc.value)


def test_schedule_keys_reach_the_settings():
    config = parse_config({"ops": {"selftest_at": "09:30", "selftest_weekday": "tue"}})
    s = SelfTestSettings.from_config(config)
    assert (s.at, s.weekday) == (dt.time(9, 30), 1)
    default = SelfTestSettings.from_config(parse_config({}))
    assert (default.at, default.weekday) == (dt.time(10, 0), None)   # never at night by default
    assert SelfTestSettings.from_config(parse_config({"ops": {"selftest_at": ""}})).at is None


def test_the_test_call_speaks_the_configured_language(tmp_path):
    assert tts_language("en") == "en" and tts_language("de-DE") == "de"
    assert tts_language("xx") == "it" and tts_language("it") == "it"   # no voice: Italian
    calls = []

    def fake_render_tts(text, lang, out_wav, **kwargs):
        calls.append((lang, kwargs))
        return type("Info", (), {"seconds": 4.0})()
    config = parse_config({"general": {"data_dir": str(tmp_path), "comune": "Comune di Fiumicino"},
                           "voice": {"language": "en"}})
    settings = SelfTestSettings.from_config(config)
    render_voice(settings, VoiceRenderer(settings.sounds_dir, comune=settings.comune, drill_prefix="",
                                         speak=fake_render_tts))
    [(lang, kwargs), (thanks_lang, thanks)] = calls
    assert lang == "en" and kwargs["intro"] == "Message from the Comune di Fiumicino."
    assert kwargs["text_lang"] == "it"           # the test text is Italian: the Italian voice reads it
    # The "thank you" after a 1, in the same language, beside the message.
    assert thanks_lang == "en" and thanks["closing"] is False


def test_the_configuration_reference_key_table_is_the_schema():
    reference = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    table = reference.split("<!-- keys:start -->\n", 1)[1].split("\n<!-- keys:end -->", 1)[0]
    assert table == schema_markdown()
