"""Messages as sound files Asterisk can play: PCM 16-bit mono 8 kHz WAV.

Text is spoken offline with espeak-ng; uploads (WAV, MP3, OGG) are converted
with sox. Both run as subprocesses under a timeout, write to a temporary
file and rename it into place, so Asterisk never plays half a file.
Every failure is an ``AudioError`` whose message names the file or language.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

# Asterisk plays .wav only as 8 kHz, mono, signed 16-bit PCM (16 kHz is .wav16).
SAMPLE_RATE = 8000
SOX_PCM_ARGS = ("-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", "-e", "signed-integer")
# sox dithers what "norm" changes with a randomly seeded generator: without -R ("repeatable")
# the same message rendered twice differs in every sample, and the CLI, the panel and the
# API could not be shown to make the same file for the same alert.
SOX_REPEATABLE = "-R"
INSTALL_HINT = "install it with: apt-get install espeak-ng sox libsox-fmt-mp3"

# Language -> (espeak-ng voice, the closing instruction in that language).
# A language is supported only when we can also tell the listener how to confirm.
VOICES: Mapping[str, tuple[str, str]] = MappingProxyType({
    "it": ("it", "Premi 1 per confermare, 2 per riascoltare."),
    "en": ("en", "Press 1 to confirm, 2 to listen again."),
    "fr": ("fr", "Appuyez sur 1 pour confirmer, sur 2 pour réécouter."),
    "de": ("de", "Drücken Sie 1 zum Bestätigen, 2 zum erneuten Anhören."),
    "es": ("es", "Pulse 1 para confirmar, 2 para volver a escuchar."),
    "ro": ("ro", "Apăsați 1 pentru a confirma, 2 pentru a asculta din nou."),
    "ar": ("ar", "اضغط 1 للتأكيد، 2 للاستماع مرة أخرى."),
})
FALLBACK_LANGUAGE = "it"
# Language -> the introduction that names who is calling, next to the closings above so a
# language is added in one place. "{comune}" is [general] comune as written ("Comune di
# Fiumicino"): an official name is not translated, only the words around it.
INTRODUCTIONS: Mapping[str, str] = MappingProxyType({
    "it": "Messaggio del {comune}.",
    "en": "Message from the {comune}.",
    "fr": "Message de la mairie, {comune}.",
    "de": "Nachricht der Gemeinde {comune}.",
    "es": "Mensaje del ayuntamiento, {comune}.",
    "ro": "Mesaj de la primăria {comune}.",
    "ar": "رسالة من البلدية، {comune}.",
})

# Language -> what the listener hears after pressing 1 (``<message>-confirmed.wav``, played by
# the dialplan): our own words, so Asterisk needs no sounds package for "auth-thankyou".
CONFIRMATIONS: Mapping[str, str] = MappingProxyType({
    "it": "Grazie, conferma ricevuta.",
    "en": "Thank you, your confirmation has been received.",
    "fr": "Merci, votre confirmation a été reçue.",
    "de": "Danke, Ihre Bestätigung ist eingegangen.",
    "es": "Gracias, su confirmación ha sido recibida.",
    "ro": "Mulțumim, confirmarea a fost primită.",
    "ar": "شكرا، تم استلام تأكيدك.",
})
# Beside each message, what the dialplan plays after a confirmation (asterisk/conf/extensions_allerta.conf).
CONFIRMED_SUFFIX = "-confirmed"
# Beside each message of an alert with a poll, its question and options, asked after the message.
POLL_SUFFIX = "-poll"


class AudioError(Exception):
    """A message could not be rendered or an upload is unusable; ``str()`` says why."""


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    seconds: float
    sample_rate: int
    channels: int
    bits: int | None


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise AudioError(f"{name} is not installed; {INSTALL_HINT}")
    return path


def _run(args: list[str], what: str, timeout: float, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise AudioError(f"{what}: {Path(args[0]).name} took more than {timeout:g} s") from exc
    except OSError as exc:
        raise AudioError(f"{what}: cannot run {args[0]}: {exc}; {INSTALL_HINT}") from exc
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise AudioError(f"{what}: {Path(args[0]).name} failed: {detail[-1] if detail else result.returncode}")
    return result


def audio_info(path: str | Path, timeout: float = 30.0) -> AudioInfo:
    """Format of ``path`` as ``soxi`` reports it; AudioError if sox cannot read it."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    output = _run([_tool("sox"), "--i", str(path)], f"{path}: not a readable audio file",
                  timeout).stdout
    fields = dict(line.split(":", 1) for line in output.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    try:
        rate = int(float(fields["Sample Rate"]))
        channels = int(fields["Channels"])
    except (KeyError, ValueError) as exc:
        raise AudioError(f"{path}: sox could not tell its format") from exc
    samples = re.search(r"=\s*(\d+)\s+samples", fields.get("Duration", ""))
    seconds = int(samples.group(1)) / rate if samples and rate else 0.0
    bits = re.match(r"(\d+)-bit", fields.get("Precision", ""))
    return AudioInfo(path, seconds, rate, channels, int(bits.group(1)) if bits else None)


def _rms_amplitude(path: Path, timeout: float) -> float:
    # "sox FILE -n stat" prints its statistics on stderr.
    result = _run([_tool("sox"), str(path), "-n", "stat"], f"{path}: cannot measure loudness", timeout)
    match = re.search(r"RMS\s+amplitude:\s*([0-9.eE+-]+)", result.stderr)
    if match is None:
        raise AudioError(f"{path}: sox stat gave no RMS amplitude")
    return float(match.group(1))


def _to_pcm(src: Path, out_wav: Path, what: str, timeout: float) -> AudioInfo:
    out_wav.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=".wav", dir=out_wav.parent, prefix=".allerta-")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _run([_tool("sox"), SOX_REPEATABLE, str(src), *SOX_PCM_ARGS, str(tmp), "norm", "-3"], what, timeout)
        # mkstemp makes the file 0600; Asterisk (in group allerta) must be able to play it.
        os.chmod(tmp, 0o640)
        os.replace(tmp, out_wav)
    finally:
        tmp.unlink(missing_ok=True)
    return audio_info(out_wav, timeout)


def voice_language(lang: str) -> str | None:
    """The language of VOICES that speaks ``lang`` ('en-GB' -> 'en'); None when we have no voice for it."""
    code = re.split(r"[-_]", lang.strip().lower(), maxsplit=1)[0]
    return code if code in VOICES else None


def introduction(lang: str, comune: str) -> str:
    """"Messaggio del Comune di ..." in ``lang`` (in Italian for a language we cannot speak)."""
    return INTRODUCTIONS[voice_language(lang) or FALLBACK_LANGUAGE].format(comune=comune.strip())


def confirmation(lang: str) -> str:
    """"Grazie, conferma ricevuta." in ``lang`` (in Italian for a language we cannot speak)."""
    return CONFIRMATIONS[voice_language(lang) or FALLBACK_LANGUAGE]


def confirmation_wav(message: str | Path) -> Path:
    """Where the confirmation of ``message`` (a path without extension) is rendered."""
    message = Path(message)
    return message.with_name(message.name + CONFIRMED_SUFFIX + ".wav")


def poll_wav(message: str | Path) -> Path:
    """Where the spoken poll of ``message`` (a path without extension) is rendered."""
    message = Path(message)
    return message.with_name(message.name + POLL_SUFFIX + ".wav")


def _voice_for(lang: str, fallback: bool) -> tuple[str, str]:
    code = voice_language(lang)
    if code is not None:
        return VOICES[code]
    if fallback:
        return VOICES[FALLBACK_LANGUAGE]
    raise AudioError(f"no voice for language {lang!r}; supported: {', '.join(sorted(VOICES))} "
                     f"(or pass fallback=True to read it in Italian)")


def _sentence(part: str) -> str:
    # A full stop between parts makes espeak pause instead of running them together.
    return part if part[-1] in ".!?؟。" else part + "."


def render_tts(text: str, lang: str, out_wav: str | Path, *, intro: str | None = None,
               closing: bool = True, fallback: bool = False, text_lang: str | None = None,
               words_per_minute: int = 140, timeout: float = 120.0) -> AudioInfo:
    """Speak ``intro``, ``text`` and the closing instruction into ``out_wav``.

    ``lang`` is the listener's language: the intro and the closing are spoken
    in it. ``text_lang``, when given, is the language ``text`` is written in,
    if not the listener's: a Romanian resident then hears who calls and how
    to confirm in Romanian and the Italian text read by the Italian voice,
    rather than Italian words mangled by a Romanian one.

    An unsupported ``lang`` (or ``text_lang``) raises AudioError unless
    ``fallback`` is True, in which case the Italian voice and closing are used:
    an alert read with the wrong accent is better than no alert, but only when
    the caller says so.
    """
    if not text.strip():
        raise AudioError(f"{out_wav}: the message text is empty")
    voice, closing_sentence = _voice_for(lang, fallback)
    text_voice = _voice_for(text_lang, fallback)[0] if text_lang else voice
    parts = [(v, _sentence(p.strip())) for v, p in ((voice, intro), (text_voice, text),
                                                    (voice, closing_sentence if closing else None))
             if p and p.strip()]
    # Neighbouring parts in the same voice are one espeak run, so a message in one
    # language is spoken exactly as a single sentence stream.
    runs: list[tuple[str, str]] = []
    for v, p in parts:
        if runs and runs[-1][0] == v:
            runs[-1] = (v, runs[-1][1] + " " + p)
        else:
            runs.append((v, p))
    out_wav = Path(out_wav)
    out_wav.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_wav.parent, prefix=".allerta-tts-") as tmpdir:
        spoken = []
        for i, (v, script) in enumerate(runs):
            path = Path(tmpdir) / f"spoken-{i}.wav"
            # Text on stdin: a message starting with '-' must not be read as an option.
            _run([_tool("espeak-ng"), "-v", v, "-s", str(words_per_minute), "-b", "1",
                  "-w", str(path)], f"{out_wav}: espeak-ng ({v})", timeout, stdin=script)
            spoken.append(path)
        if len(spoken) > 1:
            # Every espeak-ng voice writes the same format (22050 Hz mono 16-bit), so
            # sox can simply concatenate the runs.
            joined = Path(tmpdir) / "spoken.wav"
            _run([_tool("sox"), *map(str, spoken), str(joined)], f"{out_wav}: sox concatenation", timeout)
            spoken = [joined]
        return _to_pcm(spoken[0], out_wav, f"{out_wav}: sox conversion", timeout)


def convert_recording(src: str | Path, out_wav: str | Path, *, max_seconds: float = 180.0,
                      silence_rms: float = 0.001, timeout: float = 120.0) -> AudioInfo:
    """Convert an uploaded WAV/MP3/OGG to Asterisk's format, refusing unusable files.

    Refused: unreadable or not audio, empty, longer than ``max_seconds``, and
    silent (RMS amplitude below ``silence_rms``, about -60 dBFS by default):
    a silent alert would be counted as "listened" by people who heard nothing.
    """
    src = Path(src)
    info = audio_info(src, timeout)
    if info.seconds <= 0:
        raise AudioError(f"{src}: the recording is empty")
    if info.seconds > max_seconds:
        raise AudioError(f"{src}: the recording lasts {info.seconds:.0f} s, "
                         f"longer than the limit of {max_seconds:.0f} s")
    rms = _rms_amplitude(src, timeout)
    if rms < silence_rms:
        raise AudioError(f"{src}: the recording is silent (RMS amplitude {rms:.6f})")
    return _to_pcm(src, Path(out_wav), f"{src}: sox conversion", timeout)
