"""The voice versions of an alert, decided and rendered with fake audio functions (no espeak-ng, no sox)."""
from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core.alerts import AlertRequest, Target
from gateway.core.audio import CONFIRMATIONS, VOICES, AudioError, AudioInfo
from gateway.core.voice_messages import (EmptyText, NoVoice, RecordingError, Script, Version, VoiceRenderer, discard,
                                         main_version, plan_versions, script, translation_version)

TEXT = "Allerta rossa: salire ai piani alti"
COMUNE = "Comune di Prova"


class Languages:
    """An AlertService that only knows which languages the alert's numbers speak."""

    def __init__(self, *languages: str) -> None:
        self.languages = languages

    def recipient_languages(self, request: AlertRequest, channel: str) -> dict[str, int]:
        assert channel == "voice"
        return {language: 1 for language in self.languages}


class FakeAudio:
    """render_tts and convert_recording that write a file naming what they were asked."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.spoken: list[tuple[str, str, str | None, str | None]] = []
        self.converted: list[str] = []
        self.fail_on = fail_on

    def speak(self, text, lang, out_wav, *, intro=None, text_lang=None, **_kwargs) -> AudioInfo:
        if lang == self.fail_on:
            raise AudioError(f"{out_wav}: espeak-ng ({lang}) failed")
        self.spoken.append((text, lang, intro, text_lang))
        Path(out_wav).write_text(f"{intro}|{text}|{lang}|{text_lang}", encoding="utf-8")
        return AudioInfo(Path(out_wav), 5.0, 8000, 1, 16)

    def convert(self, src, out_wav) -> AudioInfo:
        if self.fail_on == "recording":
            raise AudioError(f"{src}: the recording is silent (RMS amplitude 0.000000)")
        self.converted.append(str(src))
        Path(out_wav).write_bytes(Path(src).read_bytes())
        return AudioInfo(Path(out_wav), 2.0, 8000, 1, 16)


def _renderer(tmp_path: Path, audio: FakeAudio) -> VoiceRenderer:
    return VoiceRenderer(tmp_path / "sounds", comune=COMUNE, drill_prefix="[ESERCITAZIONE] ",
                         speak=audio.speak, convert=audio.convert)


def _request(**kwargs) -> AlertRequest:
    return AlertRequest(text=TEXT, target=Target(zones=("Fregene",)), channels=("voice",), **kwargs)


def test_every_voiced_recipient_language_gets_a_version_introduced_and_closed_in_it():
    versions = plan_versions(TEXT, "it", {"ro": "Alertă roșie", "uk": "Червона тривога"},
                             ["it", "en", "ro", "zh", "uk", "de"])
    assert versions == [
        Version(None, "it", TEXT, "it"),           # Italians, and Chinese and Ukrainian speakers: no voice
        Version("de", "de", TEXT, "it"),           # no translation: the Italian text read by the Italian voice
        Version("en", "en", TEXT, "it"),
        Version("ro", "ro", "Alertă roșie", "ro"),  # the translation, all in Romanian
    ]


def test_the_text_language_picks_the_voice_of_every_version_without_a_translation():
    versions = plan_versions("Red alert", "en-GB", {}, ["it", "ro"])
    assert versions == [Version(None, "it", "Red alert", "en"), Version("ro", "ro", "Red alert", "en")]


def test_a_translation_speaks_even_if_nobody_of_its_language_is_called():
    assert [v.language for v in plan_versions(TEXT, "it", {"fr": "Alerte"}, ["it"])] == [None, "fr"]


def test_with_a_recording_only_translations_get_speech():
    versions = plan_versions(TEXT, "tlh", {"en": "Red alert"}, ["en", "ro", "de"], recorded=True)
    assert versions == [Version(None, "it", None, "it"), Version("en", "en", "Red alert", "en")]


def test_a_text_language_without_a_voice_or_an_empty_text_is_refused():
    with pytest.raises(NoVoice) as refused:
        main_version(TEXT, "tlh")
    assert str(refused.value) == "no voice for language 'tlh'; supported: ar, de, en, es, fr, it, ro"
    with pytest.raises(EmptyText):
        main_version("  ", "it")
    with pytest.raises(NoVoice):
        translation_version("uk", "Червона тривога")
    assert translation_version("ro", "Alertă") == Version("ro", "ro", "Alertă", "ro")


def test_the_script_says_who_calls_in_the_listeners_language_and_the_drill_prefix():
    said = script(Version("en", "en", TEXT, "it"), comune=COMUNE, drill=True, drill_prefix="[ESERCITAZIONE] ")
    assert said == Script("[ESERCITAZIONE] " + TEXT, "en", "Message from the Comune di Prova.", "it")
    main = script(Version(None, "it", TEXT, "it"), comune=COMUNE, drill=False, drill_prefix="[ESERCITAZIONE] ")
    assert main.intro == "Messaggio del Comune di Prova." and main.text == TEXT


def test_render_alert_fills_the_request_with_every_version(tmp_path):
    audio = FakeAudio()
    request = _request(drill=True, translations={"ro": "Alertă roșie"})
    _renderer(tmp_path, audio).render_alert(request, Languages("it", "en", "ro"), text_language="it")
    assert request.audio_source == "tts" and request.audio_seconds == 5.0
    assert Path(request.audio_path + ".wav").read_text(encoding="utf-8") == \
        f"Messaggio del Comune di Prova.|[ESERCITAZIONE] {TEXT}|it|it"
    assert set(request.translation_audio) == {"en", "ro"}
    english, _seconds = request.translation_audio["en"]
    assert Path(english + ".wav").read_text(encoding="utf-8") == \
        f"Message from the Comune di Prova.|[ESERCITAZIONE] {TEXT}|en|it"
    # The English speakers' version is stored as an AlertText row with the text as written.
    assert request.translations == {"ro": "Alertă roșie", "en": TEXT}
    discard(request)
    assert list((tmp_path / "sounds").iterdir()) == []


def test_every_version_has_its_confirmation_beside_it_in_the_listeners_language(tmp_path):
    """The dialplan plays <message>-confirmed after a 1: our words, no Asterisk sounds package."""
    audio = FakeAudio()
    request = _request(translations={"ro": "Alertă roșie"})
    _renderer(tmp_path, audio).render_alert(request, Languages("it", "ro"), text_language="it")
    for path, said in ((request.audio_path, "Grazie, conferma ricevuta.|it"),
                       (request.translation_audio["ro"][0], "Mulțumim, confirmarea a fost primită.|ro")):
        assert Path(path + "-confirmed.wav").read_text(encoding="utf-8") == f"None|{said}|None"
    assert set(CONFIRMATIONS) == set(VOICES)     # a language is added with its confirmation
    discard(request)
    assert list((tmp_path / "sounds").iterdir()) == []


def test_render_alert_plays_the_recording_to_the_main_listeners(tmp_path):
    audio = FakeAudio()
    recording = tmp_path / "registrazione.wav"
    recording.write_bytes(b"RIFF recorded")
    request = _request(translations={"en": "Red alert"})
    _renderer(tmp_path, audio).render_alert(request, Languages("it", "en", "ro"), text_language="it",
                                            recording=recording)
    assert request.audio_source == "recording" and audio.converted == [str(recording)]
    assert Path(request.audio_path + ".wav").read_bytes() == b"RIFF recorded"
    assert set(request.translation_audio) == {"en"} and request.translations == {"en": "Red alert"}


@pytest.mark.parametrize("fail_on", ["ro", "recording"])
def test_a_failed_version_leaves_no_file_and_the_request_unchanged(tmp_path, fail_on):
    audio = FakeAudio(fail_on=fail_on)
    recording = tmp_path / "registrazione.wav"
    recording.write_bytes(b"RIFF")
    request = _request()
    expected = RecordingError if fail_on == "recording" else AudioError
    with pytest.raises(expected):
        _renderer(tmp_path, audio).render_alert(request, Languages("en", "ro"), text_language="it",
                                                recording=recording if fail_on == "recording" else None)
    assert request.audio_path is None and request.translation_audio == {} and request.translations == {}
    assert list((tmp_path / "sounds").glob("*.wav")) == []


def test_a_recording_error_keeps_the_reason_of_the_audio_functions(tmp_path):
    with pytest.raises(RecordingError) as refused:
        _renderer(tmp_path, FakeAudio(fail_on="recording")).render(
            main_version(TEXT, "it", recorded=True), tmp_path / "x.wav", drill=False, recording=tmp_path / "a.wav")
    assert str(refused.value).endswith("the recording is silent (RMS amplitude 0.000000)")
    assert isinstance(refused.value, AudioError)   # the CLI and the API print it as before
