"""The voice versions of an alert: which ones it needs, what each says, and rendering them.

One rule for the CLI, the panel, the API, the demo and the self-test: every version is
introduced ("Messaggio del Comune di ...") and closed ("Premi 1 per confermare ...") in
the language of the people who hear it.

- The alert's own message is heard by Italian speakers and by anyone whose language we
  have no voice for: introduction and closing in Italian, the text read by the voice of
  the language it is written in (or the recording, played as it is).
- Every other language with a voice, among the recipients or given a translation, gets
  its own version: introduction and closing in that language, and the translation read
  in it; without a translation, the text as written, read by the voice of the language it
  is written in (never Italian words mangled by a Romanian voice). With a recording, only a language given a
  translation gets speech of its own; the others hear the recording.

The decisions are pure functions (``plan_versions``, ``script``); ``VoiceRenderer`` runs
them with the audio functions of gateway.core.audio it is given.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from gateway.core.alerts import AlertRequest, AlertService, compose_sms_text
from gateway.core.audio import (FALLBACK_LANGUAGE, VOICES, AudioError, AudioInfo, confirmation,
                                confirmation_wav, convert_recording, introduction, poll_wav, render_tts,
                                voice_language)
from gateway.core.config import Config
from gateway.core.polls import Poll, spoken_poll_text
from gateway.core.states import Channel


class NoVoice(AudioError):
    """The text's language is one we cannot speak."""

    def __init__(self, language: str) -> None:
        self.language = language
        super().__init__(f"no voice for language {language!r}; supported: {', '.join(sorted(VOICES))}")


class EmptyText(AudioError):
    """There is no text to speak."""

    def __init__(self) -> None:
        super().__init__("the message text is empty")


class RecordingError(AudioError):
    """The recording cannot be used; ``str()`` is gateway.core.audio's reason, naming the file."""


@dataclass(frozen=True)
class Version:
    """One voice message of an alert."""
    language: str | None    # its AlertText language; None: the alert's own message
    listener: str           # the introduction and the closing are spoken in it
    text: str | None        # what is read; None: the recording is played
    text_language: str      # the voice that reads ``text``


@dataclass(frozen=True)
class Script:
    """What one ``render_tts`` call speaks: the arguments, decided before any sound is made."""
    text: str
    listener: str
    intro: str
    text_language: str


def spoken_language(language: str) -> str:
    """The voice for a text written in ``language`` ('en-GB' -> 'en'); NoVoice when we have none."""
    code = voice_language(language)
    if code is None:
        raise NoVoice(language)
    return code


def main_version(text: str, text_language: str, *, recorded: bool = False) -> Version:
    """The alert's own message: for Italian speakers and every language we cannot speak."""
    if recorded:
        return Version(None, FALLBACK_LANGUAGE, None, FALLBACK_LANGUAGE)
    code = spoken_language(text_language)
    if not text.strip():
        raise EmptyText()
    return Version(None, FALLBACK_LANGUAGE, text, code)


def translation_version(language: str, text: str) -> Version:
    """The version of a translation: all of it in ``language``; NoVoice if we cannot speak it."""
    if voice_language(language) != language:
        raise NoVoice(language)
    return Version(language, language, text, language)


def plan_versions(text: str, text_language: str, translations: dict[str, str], recipient_languages: Iterable[str],
                  *, recorded: bool = False) -> list[Version]:
    """Every voice message the alert needs, its own message first (see the module's docstring).

    ``recipient_languages`` are the languages of the numbers it will call
    (AlertService.recipient_languages). A translation into a language we cannot speak still
    goes out by SMS; its listeners hear the alert's own message.
    """
    versions = [main_version(text, text_language, recorded=recorded)]
    wanted = ({voice_language(lang) for lang in recipient_languages}
              | {lang for lang in translations if voice_language(lang) == lang})
    for lang in sorted(wanted - {None, FALLBACK_LANGUAGE}):
        if lang in translations:
            versions.append(translation_version(lang, translations[lang]))
        elif not recorded:
            versions.append(Version(lang, lang, text, versions[0].text_language))
    return versions


def script(version: Version, *, comune: str, drill: bool, drill_prefix: str) -> Script:
    """What ``version`` says; the drill prefix is spoken too, so nobody hears a drill as an emergency."""
    if version.text is None:
        raise ValueError("a recorded version has no script")
    return Script(compose_sms_text(version.text, drill, drill_prefix), version.listener,
                  introduction(version.listener, comune), version.text_language)


class VoiceRenderer:
    """Renders voice messages into Asterisk's sounds directory with the audio functions it is given."""

    def __init__(self, sounds_dir: str | Path, *, comune: str, drill_prefix: str,
                 speak: Callable[..., AudioInfo] = render_tts,
                 convert: Callable[..., AudioInfo] = convert_recording) -> None:
        self.sounds_dir = Path(sounds_dir)
        self.comune = comune
        self.drill_prefix = drill_prefix
        self._speak = speak
        self._convert = convert

    @classmethod
    def from_config(cls, config: Config) -> "VoiceRenderer":
        general = config.general
        return cls(config.sounds_dir, comune=general.comune, drill_prefix=general.drill_prefix)

    def new_name(self, prefix: str = "allerta") -> Path:
        """A fresh file name in the sounds directory, without the extension (as Asterisk's Playback wants)."""
        self.sounds_dir.mkdir(parents=True, exist_ok=True)
        return self.sounds_dir / f"{prefix}-{uuid.uuid4().hex[:12]}"

    def render(self, version: Version, out_wav: str | Path, *, drill: bool,
               recording: str | Path | None = None) -> AudioInfo:
        """``version`` as the 8 kHz WAV a call plays; RecordingError when the recording is unusable."""
        if version.text is None:
            if recording is None:
                raise ValueError("a recorded version needs its recording")
            try:
                return self._convert(recording, out_wav)
            except AudioError as exc:
                raise RecordingError(str(exc)) from exc
        said = script(version, comune=self.comune, drill=drill, drill_prefix=self.drill_prefix)
        return self._speak(said.text, said.listener, out_wav, intro=said.intro, text_lang=said.text_language)

    def render_confirmation(self, message: str | Path, listener: str) -> AudioInfo:
        """The "thank you" the dialplan plays after a 1, beside ``message`` (a path without
        extension), in the listener's language: no Asterisk sounds package needed."""
        return self._speak(confirmation(listener), listener, confirmation_wav(message), closing=False)

    def render_poll(self, message: str | Path, poll: Poll, listener: str) -> AudioInfo:
        """The poll a call asks after ``message`` ("Domanda: ... Premi 1 se ..."), beside it, in the
        listener's language; the question and options are read as the operator wrote them."""
        return self._speak(spoken_poll_text(poll, listener), listener, poll_wav(message), closing=False,
                           fallback=True)

    def render_with_confirmation(self, version: Version, name: Path, *, drill: bool,
                                 recording: str | Path | None = None, poll: Poll | None = None) -> AudioInfo:
        """``version`` into ``name``.wav, its confirmation and its poll (if any) beside it; on an
        AudioError, none of them."""
        try:
            info = self.render(version, name.with_suffix(".wav"), drill=drill, recording=recording)
            self.render_confirmation(name, version.listener)
            if poll is not None:
                self.render_poll(name, poll, version.listener)
        except AudioError:
            remove_message(str(name))
            raise
        return info

    def render_alert(self, request: AlertRequest, alerts: AlertService, *, text_language: str,
                     recording: str | Path | None = None) -> None:
        """Render every version ``request`` needs, and put them into it.

        The alert's own message goes to ``audio_path``; each other version to
        ``translation_audio``, and a recipient language with no translation gets the text
        as written in ``translations`` (an AlertText row is how the engine finds its audio).
        On an AudioError nothing rendered is left behind and ``request`` is unchanged; if
        the alert is not created afterwards, ``discard`` deletes the files.
        """
        versions = plan_versions(request.text, text_language, request.translations,
                                 alerts.recipient_languages(request, Channel.VOICE), recorded=recording is not None)
        names: list[Path] = []
        infos: list[AudioInfo] = []
        try:
            for version in versions:
                names.append(self.new_name())
                infos.append(self.render_with_confirmation(
                    version, names[-1], drill=request.drill,
                    recording=recording if version.language is None else None, poll=request.poll))
        except AudioError:
            # The request is left as it was, so a caller may still fall back (the demo's tone).
            for name in names:
                remove_message(str(name))
            raise
        for version, name, info in zip(versions, names, infos):
            if version.language is None:
                request.audio_path, request.audio_seconds = str(name), info.seconds
                request.audio_source = "tts" if version.text is not None else "recording"
            else:
                request.translation_audio[version.language] = (str(name), info.seconds)
                request.translations.setdefault(version.language, request.text)


def discard(request: AlertRequest) -> None:
    """Delete the voice files rendered for ``request`` (an alert that was not created)."""
    paths = [request.audio_path] + [path for path, _seconds in request.translation_audio.values()]
    for path in filter(None, paths):
        remove_message(path)


def remove_message(path: str) -> None:
    """Delete a rendered message (a path without extension), its confirmation and its poll."""
    Path(path + ".wav").unlink(missing_ok=True)
    confirmation_wav(path).unlink(missing_ok=True)
    poll_wav(path).unlink(missing_ok=True)
