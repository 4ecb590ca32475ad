"""The hotline's spoken prompts: their words, where each is rendered, and rendering them ahead of time.

Every prompt, zone name, digit and language name is a file in ``<sounds_dir>/hotline/``,
spoken by the same TTS as the alerts (gateway.core.audio, espeak-ng), so Asterisk
plays files and nothing is synthesised while a caller waits. ``latest.wav`` and
``call-again.wav`` are what the dialplan plays by itself when the engine cannot answer.
"""
from __future__ import annotations

import re
import shutil
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path

from gateway.core.audio import render_tts
from gateway.core.hotline import Sound
from gateway.core.polls import Poll, spoken_poll_text

HOTLINE_DIR = "hotline"
LATEST = "latest"          # the newest message, for everyone, when the engine does not answer
CALL_AGAIN = "call-again"

PROMPTS: dict[str, dict[str, str]] = {
    "it": {
        "welcome": "Servizio di allerta del Comune.",
        "nothing-in-progress": "Nessuna allerta in corso.",
        "menu-known": "Premi 1 per confermare di aver ricevuto il messaggio, 2 per riascoltarlo, "
                      "3 per cambiare zona, 4 per cambiare lingua, 0 per non ricevere più chiamate.",
        "menu-unknown": "Premi 2 per riascoltare, 3 per iscriverti con questo numero, "
                        "5 per ascoltare i messaggi di una zona.",
        "menu-anonymous": "Premi 2 per riascoltare, 5 per ascoltare i messaggi di una zona. "
                          "Per iscriverti chiama senza nascondere il tuo numero.",
        "invalid": "Scelta non valida.",
        "confirmed": "Grazie, conferma ricevuta. Non riceverai altre chiamate per questa allerta.",
        "nothing-to-confirm": "Non ci sono allerte in corso da confermare.",
        "stop-ask": "Non riceverai più nessuna chiamata né messaggio. Premi di nuovo 0 per confermare, "
                    "un altro tasto per annullare.",
        "stopped": "Fatto. Non riceverai più chiamate da questo servizio.",
        "stop-kept": "Annullato. Continuerai a ricevere le allerte.",
        "zones-intro": "Scegli la tua zona.",
        "press": "premi",
        "zones-more": "Per altre zone premi 9.",
        "zones-first-page": "Per tornare all'inizio dell'elenco premi 9.",
        "no-zones": "Non ci sono zone da scegliere.",
        "languages-intro": "Scegli la lingua.",
        "summary-zone": "Riepilogo. Zona:",
        "summary-language": "Lingua:",
        "summary-confirm": "Premi 1 per confermare, 2 per ricominciare.",
        "registered": "Iscrizione completata. Riceverai le allerte su questo numero.",
        "saved": "Modifica salvata.",
        "vote-recorded": "Risposta registrata, grazie.",
        "vote-needs-number": "Per rispondere chiama senza nascondere il tuo numero.",
        "goodbye": "Arrivederci.",
        CALL_AGAIN: "Il servizio è momentaneamente ridotto. Per confermare, iscriverti o altre scelte, "
                    "richiama tra qualche minuto.",
    },
    "en": {
        "welcome": "Town alert service.",
        "nothing-in-progress": "No alert in progress.",
        "menu-known": "Press 1 to confirm you received the message, 2 to hear it again, 3 to change zone, "
                      "4 to change language, 0 to stop all calls.",
        "menu-unknown": "Press 2 to hear it again, 3 to register this number, 5 to hear one zone's messages.",
        "menu-anonymous": "Press 2 to hear it again, 5 to hear one zone's messages. "
                          "To register, call without hiding your number.",
        "invalid": "Invalid choice.",
        "confirmed": "Thank you, confirmation received. No more calls for this alert.",
        "nothing-to-confirm": "There is no alert in progress to confirm.",
        "stop-ask": "You will receive no more calls or messages. Press 0 again to confirm, any other key to cancel.",
        "stopped": "Done. This service will not call you again.",
        "stop-kept": "Cancelled. You will keep receiving alerts.",
        "zones-intro": "Choose your zone.",
        "press": "press",
        "zones-more": "For more zones press 9.",
        "zones-first-page": "To go back to the start of the list press 9.",
        "no-zones": "There are no zones to choose from.",
        "languages-intro": "Choose the language.",
        "summary-zone": "Summary. Zone:",
        "summary-language": "Language:",
        "summary-confirm": "Press 1 to confirm, 2 to start again.",
        "registered": "Registration complete. You will receive alerts on this number.",
        "saved": "Change saved.",
        "vote-recorded": "Answer recorded, thank you.",
        "vote-needs-number": "To answer, call without hiding your number.",
        "goodbye": "Goodbye.",
        CALL_AGAIN: "The service is running in reduced mode. To confirm, register or choose anything, "
                    "call again in a few minutes.",
    },
}
DIGITS = {"it": ["zero", "uno", "due", "tre", "quattro", "cinque", "sei", "sette", "otto", "nove"],
          "en": ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]}
# Each language names itself, in its own voice, so a caller finds theirs in the list.
LANGUAGE_NAMES = {"it": "Italiano", "en": "English", "fr": "Français", "de": "Deutsch", "es": "Español",
                  "ro": "Română", "ar": "العربية", "zh": "中文"}


def slug(text: str) -> str:
    """A file name for a zone ('Isola Sacra' -> 'isola-sacra'), stable across calls."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", folded).strip("-") or "zone"


def sound_path(sounds_dir: str | Path, sound: Sound, language: str) -> str:
    """Where ``sound`` is, without extension, as Asterisk plays it."""
    base = Path(sounds_dir) / HOTLINE_DIR
    if sound.kind == "file":
        return sound.name
    if sound.kind == "language":
        return str(base / "languages" / sound.name)
    if sound.kind == "zone":
        return str(base / language / f"zone-{slug(sound.name)}")
    if sound.kind == "digit":
        return str(base / language / f"digit-{sound.name}")
    return str(base / language / sound.name)


Renderer = Callable[..., object]


def render_hotline_sounds(sounds_dir: str | Path, zones: Iterable[str], languages: Iterable[str], *,
                          render: Renderer = render_tts, only_missing: bool = True) -> int:
    """Render every prompt, digit, zone name and language name; returns how many files were made."""
    base = Path(sounds_dir) / HOTLINE_DIR
    languages = [language for language in languages if language in PROMPTS]
    wanted: list[tuple[Path, str, str]] = []
    for language in languages:
        wanted += [(base / language / f"{name}.wav", text, language) for name, text in PROMPTS[language].items()]
        wanted += [(base / language / f"digit-{n}.wav", word, language) for n, word in enumerate(DIGITS[language])]
        wanted += [(base / language / f"zone-{slug(zone)}.wav", zone, language) for zone in zones]
        wanted.append((base / "languages" / f"{language}.wav", LANGUAGE_NAMES.get(language, language), language))
    wanted.append((base / f"{CALL_AGAIN}.wav", PROMPTS["it"][CALL_AGAIN], "it"))
    made = 0
    for path, text, language in wanted:
        if only_missing and path.is_file():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        render(text, language, path, intro=None, closing=False, fallback=True)
        made += 1
    return made


def render_poll(out_wav: str | Path, question: str, options: list[str], language: str, *,
                render: Renderer = render_tts) -> None:
    """Render one poll beside its message (``<message>-poll.wav``) when the alert's rendering did
    not (an alert from before polls were spoken): the same words as an outbound call's."""
    render(spoken_poll_text(Poll(question, tuple(options)), language), language, Path(out_wav), intro=None,
           closing=False, fallback=True)


def publish_latest(sounds_dir: str | Path, message_audio: str | None) -> bool:
    """Copy the newest message to ``hotline/latest.wav`` for the dialplan's fallback; True if it changed."""
    target = Path(sounds_dir) / HOTLINE_DIR / f"{LATEST}.wav"
    if not message_audio:
        return False
    source = Path(message_audio if message_audio.endswith(".wav") else message_audio + ".wav")
    if not source.is_file():
        return False
    if target.is_file() and target.read_bytes() == source.read_bytes():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".tmp")
    shutil.copyfile(source, temporary)
    # Replaced in one step: Asterisk never opens half a file.
    temporary.replace(target)
    return True
