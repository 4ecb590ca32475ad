import subprocess

import pytest

from gateway.core.audio import AudioError, audio_info, convert_recording, render_tts

# sox and espeak-ng run as subprocesses; without them these tests fail, never skip.
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("audio_tools")]


def tone(path, seconds=3, extra=()):
    subprocess.run(["sox", "-n", "-r", "44100", "-c", "2", str(path), "synth", str(seconds),
                    "sine", "440", *extra], check=True)
    return path


def assert_asterisk_pcm(info):
    assert (info.sample_rate, info.channels, info.bits) == (8000, 1, 16)


@pytest.mark.parametrize("suffix", [".wav", ".mp3", ".ogg"])
def test_conversion_to_8khz_mono_16bit(tmp_path, suffix):
    src = tone(tmp_path / f"tone{suffix}")
    info = convert_recording(src, tmp_path / "out" / "message.wav")
    assert_asterisk_pcm(info)
    assert info.seconds == pytest.approx(3.0, abs=0.1)
    assert audio_info(info.path).sample_rate == 8000
    assert "Signed Integer PCM" in subprocess.run(["soxi", str(info.path)], capture_output=True,
                                                  text=True).stdout


RED_WARNING = {"it": "Allerta meteo rossa.", "en": "Red weather warning.", "ar": "تحذير من الطقس",
               "fr": "Alerte météo rouge.", "de": "Rote Unwetterwarnung.", "es": "Alerta meteorológica roja.",
               "ro": "Avertizare meteo de cod roșu."}


@pytest.mark.parametrize("lang", ["it", "en", "ar", "fr", "de", "es", "ro"])
def test_tts(tmp_path, lang):
    info = render_tts(RED_WARNING[lang], lang, tmp_path / f"{lang}.wav", intro="Comune di Prova")
    assert_asterisk_pcm(info)
    # An intro, one short sentence and the closing: a few seconds, not a click nor minutes.
    assert 2 < info.seconds < 30


def test_tts_text_in_another_language_than_the_listener(tmp_path):
    """Intro and closing in Romanian, the Italian text read by the Italian voice: one file."""
    info = render_tts(RED_WARNING["it"], "ro", tmp_path / "mixed.wav", intro="Mesaj de la primăria X.",
                      text_lang="it")
    assert_asterisk_pcm(info)
    only_text = render_tts(RED_WARNING["it"], "it", tmp_path / "text.wav", closing=False)
    assert info.seconds > only_text.seconds + 2


def test_tts_closing_makes_it_longer(tmp_path):
    short = render_tts("Prova.", "it", tmp_path / "a.wav", closing=False)
    long = render_tts("Prova.", "it", tmp_path / "b.wav")
    assert long.seconds > short.seconds + 1


def test_unsupported_language(tmp_path):
    with pytest.raises(AudioError, match="'tlh'"):
        render_tts("Qapla", "tlh", tmp_path / "x.wav")
    assert not (tmp_path / "x.wav").exists()
    info = render_tts("Qapla", "tlh", tmp_path / "x.wav", fallback=True)
    assert_asterisk_pcm(info)


def test_silent_file_refused(tmp_path):
    src = tmp_path / "silence.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", str(src), "trim", "0", "2"], check=True)
    with pytest.raises(AudioError, match="silent") as info:
        convert_recording(src, tmp_path / "out.wav")
    assert "silence.wav" in str(info.value)
    assert not (tmp_path / "out.wav").exists()


def test_unreadable_file_refused(tmp_path):
    src = tmp_path / "notes.wav"
    src.write_text("this is not audio")
    with pytest.raises(AudioError, match="notes.wav: not a readable audio file"):
        convert_recording(src, tmp_path / "out.wav")
    with pytest.raises(AudioError, match="no such file"):
        convert_recording(tmp_path / "missing.wav", tmp_path / "out.wav")


def test_too_long_refused(tmp_path):
    src = tone(tmp_path / "long.wav", seconds=5)
    with pytest.raises(AudioError, match="longer than the limit of 4 s"):
        convert_recording(src, tmp_path / "out.wav", max_seconds=4)


def test_empty_file_refused(tmp_path):
    src = tmp_path / "empty.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", str(src), "trim", "0", "0"], check=True)
    with pytest.raises(AudioError, match="empty"):
        convert_recording(src, tmp_path / "out.wav")


def test_missing_tools_explained(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AudioError, match="apt-get install espeak-ng sox"):
        render_tts("Prova", "it", tmp_path / "x.wav")


def test_rendered_audio_is_readable_by_the_asterisk_group(tmp_path):
    import stat
    from gateway.core.audio import render_tts
    info = render_tts("Prova", "it", tmp_path / "p.wav")
    mode = stat.S_IMODE(info.path.stat().st_mode)
    assert mode & stat.S_IRGRP and not mode & stat.S_IROTH


def test_the_same_message_makes_the_same_bytes(tmp_path):
    # sox dithers with a random seed unless told to be repeatable: then no two renderings
    # of one alert would match, and neither would the CLI's, the panel's and the API's.
    spoken = [render_tts(RED_WARNING["it"], "ro", tmp_path / f"s{i}.wav", intro="Mesaj de la primăria X.",
                         text_lang="it").path.read_bytes() for i in range(2)]
    src = tone(tmp_path / "tone.ogg")
    converted = [convert_recording(src, tmp_path / f"c{i}.wav").path.read_bytes() for i in range(2)]
    assert spoken[0] == spoken[1] and converted[0] == converted[1]
