"""`allerta alert send --voice` through the real CLI: one voice message per recipient language."""
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.core.audio import INTRODUCTIONS, VOICES, audio_info, introduction
from gateway.shell.cli import main
from gateway.core.models import Alert, Delivery
from gateway.core.models_panel import AlertText
from gateway.core.store import Store

pytestmark = pytest.mark.usefixtures("audio_tools")  # fails, never skips, without sox and espeak-ng

# Italian, English, Romanian, German and Chinese speakers: we have no Chinese voice.
CONTACTS = """nome;telefono;zona;lingua
Mario Rossi;06 6521 0001;Fregene;italiano
John Smith;06 6521 0002;Fregene;inglese
Ion Popescu;06 6521 0003;Fregene;romeno
Hans Müller;06 6521 0004;Fregene;tedesco
Li Wei;06 6521 0005;Fregene;cinese
"""
TEXT = "Allerta meteo rossa: restate in casa e salite ai piani alti."


def _send(config_path, capsys, *flags) -> int:
    code = main(["--config", str(config_path), "alert", "send", "--voice", "--zone", "Fregene",
                 "--text", TEXT, *flags])
    out, err = capsys.readouterr()
    assert code == 0, err
    return int(out.strip().splitlines()[-1])


def _versions(services, alert_id) -> dict[str, AlertText]:
    with services.sessions() as s:
        return {v.language: v for v in s.scalars(select(AlertText).where(AlertText.alert_id == alert_id))}


def _main_audio(services, alert_id):
    with services.sessions() as s:
        alert = s.get(Alert, alert_id)
        return audio_info(alert.audio_path + ".wav")


def _assert_playable(path: str, low: float = 4.0, high: float = 60.0) -> float:
    info = audio_info(path + ".wav")
    assert (info.sample_rate, info.channels, info.bits) == (8000, 1, 16)
    # Introduction, a sentence and the closing at 140 words a minute: seconds, not a click.
    assert low < info.seconds < high, (path, info.seconds)
    return info.seconds


@pytest.fixture
def imported(services, config_path, tmp_path, capsys):
    csv = tmp_path / "contatti.csv"
    csv.write_text(CONTACTS, encoding="utf-8")
    assert main(["--config", str(config_path), "contacts", "import", str(csv)]) == 0
    capsys.readouterr()
    return services


@pytest.mark.integration
def test_every_recipient_language_gets_its_own_voice_message(imported, config_path, capsys):
    services = imported
    alert_id = _send(config_path, capsys)
    versions = _versions(services, alert_id)
    # Italian is the alert's own message; Chinese, which espeak-ng cannot speak here, falls back to it.
    assert set(versions) == {"en", "ro", "de"}
    for version in versions.values():
        assert version.text == TEXT and version.audio_path
        _assert_playable(version.audio_path)
    main_seconds = _main_audio(services, alert_id).seconds
    assert main_seconds > 4
    # The engine plays each number its language's file, and the Italian one to the rest.
    with services.sessions() as s:
        alert = s.get(Alert, alert_id)
        by_language = dict(s.execute(select(Delivery.e164, Delivery.language)
                                     .where(Delivery.alert_id == alert_id)).all())
    claimed = {c.e164: c.audio_path for c in Store(services.sessions).claim("voice", 10)}
    assert len(claimed) == 5
    for e164, audio in claimed.items():
        language = by_language[e164]
        assert audio == (versions[language].audio_path if language in versions else alert.audio_path), language


@pytest.mark.integration
def test_drill_prefix_is_spoken_in_every_version(imported, config_path, capsys):
    services = imported
    plain, drill = _send(config_path, capsys), _send(config_path, capsys, "--drill")
    assert _main_audio(services, drill).seconds > _main_audio(services, plain).seconds + 0.5
    plain_versions, drill_versions = _versions(services, plain), _versions(services, drill)
    for language in ("en", "ro", "de"):
        assert audio_info(drill_versions[language].audio_path + ".wav").seconds > \
            audio_info(plain_versions[language].audio_path + ".wav").seconds + 0.5, language
        assert drill_versions[language].sms_text.startswith("[ESERCITAZIONE]")


@pytest.mark.integration
def test_translation_is_spoken_in_its_language_and_sent_by_sms(imported, config_path, capsys):
    services = imported
    english = "Red weather warning: stay indoors and go to the upper floors."
    alert_id = _send(config_path, capsys, "--translation", f"en={english}")
    versions = _versions(services, alert_id)
    assert versions["en"].text == english and versions["en"].sms_text == english
    assert versions["ro"].text == TEXT
    _assert_playable(versions["en"].audio_path)


def test_an_unsupported_lang_asked_for_is_an_error_and_stores_nothing(imported, config_path, capsys, tmp_path):
    services = imported
    code = main(["--config", str(config_path), "alert", "send", "--voice", "--zone", "Fregene",
                 "--text", TEXT, "--lang", "tlh"])
    assert code == 2
    assert "tlh" in capsys.readouterr().err
    with services.sessions() as s:
        assert s.scalars(select(Alert)).all() == []
    sounds = Path(services.config.sounds_dir)
    assert not sounds.exists() or not list(sounds.glob("*.wav"))


def test_introductions_exist_for_every_voice_and_name_the_comune():
    assert set(INTRODUCTIONS) == set(VOICES)
    for language in VOICES:
        assert "Comune di Prova" in introduction(language, "Comune di Prova")
    assert introduction("it", "Comune di Prova") == "Messaggio del Comune di Prova."
    assert introduction("zh", "Comune di Prova") == introduction("it", "Comune di Prova")
