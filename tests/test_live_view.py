"""The live terminal views (issue 16), rendered from pure status figures into a Console over a StringIO."""
from __future__ import annotations

import re
from io import StringIO

from rich.console import Console

from gateway.core.contacts_import import import_contacts
from gateway.shell.live_view import (channel_figures, cli_language, finished, format_eta, nothing_left,
                                     render_status, watch)
from gateway.shell.progress import counted_steps, phases, stderr_console
from tests.support import CONTACTS_CSV

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _status(**changes) -> dict:
    status = {
        "alert": 7, "state": "active", "recipients": 30, "drill": True, "eta_seconds": 125.0,
        "possible_duplicates": 0,
        "channels": {"sms": {"by_state": {"delivered": 10, "sent": 3, "pending": 6, "submitting": 1},
                             "eta_seconds": 70.0},
                     "voice": {"by_state": {"confirmed": 1, "failed": 1, "submitting": 2, "pending": 6},
                               "eta_seconds": None}},
        "lines": {"tim-1": {"channel": "sms", "state": "up", "segments_sent": 1, "segments_delivered": 1},
                  "voda-1": {"channel": "sms", "state": "down", "segments_sent": 12, "segments_delivered": 9},
                  "pstn": {"channel": "voice", "state": "up", "in_use": 2, "limit": 4, "calls": 4}},
    }
    status.update(changes)
    return status


def _render(status: dict, language: str, elapsed: float | None = 3.0) -> tuple[str, str]:
    console = Console(file=StringIO(), force_terminal=True, width=100)
    console.print(render_status(status, language, elapsed))
    raw = console.file.getvalue()
    return raw, ANSI.sub("", raw)


def test_the_italian_view_shows_bars_counts_lines_and_eta():
    raw, text = _render(_status(), "it")
    assert "\x1b[" in raw and "━" in text  # coloured bars
    assert "Allerta 7 · in invio · 30 destinatari · ESERCITAZIONE · fine tra 2 min 05 s · trascorsi 3 s" in text
    assert re.search(r"canale +avanzamento .* raggiunti +inviati +in corso +in coda +falliti +fine tra", text)
    assert re.search(r"SMS +━+.* 10/20 +50% +10 +3 +1 +6 +0 +1 min 10 s", text), text
    assert re.search(r"Voce +━+.* 2/10 +20% +1 +0 +2 +6 +1 +nessuna linea", text), text
    assert re.search(r"pstn +attiva +2 chiamate in corso su 4 · 4 chiamate per questa allerta", text)
    assert re.search(r"tim-1 +attiva +1 segmento inviato · 1 consegnato", text)       # the singular
    assert re.search(r"voda-1 +non attiva +12 segmenti inviati · 9 consegnati", text)


def test_the_english_view_and_its_singulars():
    _raw, text = _render(_status(recipients=1, possible_duplicates=1, drill=False), "en", elapsed=None)
    assert "Alert 7 · being sent · 1 recipient · ETA 2 min 05 s" in text and "DRILL" not in text
    assert "1 possibly sent twice" in text
    assert re.search(r"channel +progress .* reached +sent +in progress +queued +failed +ETA", text)
    assert re.search(r"Voice +━+.* 2/10 +20% .* no line up", text)
    assert re.search(r"pstn +up +2 calls now of 4 · 4 calls for this alert", text)


def test_a_finished_alert_shows_full_bars_and_done():
    status = _status(state="completed", eta_seconds=0.0,
                     channels={"sms": {"by_state": {"delivered": 19, "failed": 1}, "eta_seconds": 0.0}})
    _raw, text = _render(status, "it")
    assert re.search(r"SMS +━+ +20/20 100% +19 +0 +0 +0 +1 +finito", text), text
    assert "completata" in text and nothing_left(status) and finished(status)


def test_when_a_watch_ends():
    assert not finished(_status())
    assert not nothing_left(_status())
    sent = _status(channels={"sms": {"by_state": {"delivered": 3, "sent": 1}, "eta_seconds": 0.0}})
    assert not nothing_left(sent)                           # an SMS sent still waits for its status report
    assert finished(_status(state="cancelled"))
    assert not finished(_status(state="awaiting_approval", channels={}))
    assert channel_figures("voice", {"answered": 2, "voicemail": 1, "pending": 1}) == {
        "total": 4, "done": 3, "reached": 3, "sent": 0, "in_progress": 0, "queued": 1, "failed": 0}


def test_eta_words():
    assert [format_eta(s, "it") for s in (None, 0.0, 9.4, 125, 3725)] == [
        "nessuna linea", "finito", "9 s", "2 min 05 s", "1 h 02 min"]
    assert format_eta(None, "en") == "no line up" and format_eta(0, "en") == "done"


def test_the_terminal_language_is_italian_unless_the_locale_is_english():
    assert cli_language({}) == "it"
    assert cli_language({"LANG": "C.UTF-8"}) == "it"
    assert cli_language({"LANG": "it_IT.UTF-8"}) == "it"
    assert cli_language({"LANG": "en_GB.UTF-8"}) == "en"
    assert cli_language({"LC_ALL": "it_IT.UTF-8", "LANG": "en_US.UTF-8"}) == "it"


def test_watch_redraws_in_place_until_the_alert_is_finished():
    figures = iter([_status(),
                    _status(channels={"sms": {"by_state": {"delivered": 15, "sent": 5}, "eta_seconds": 10.0}}),
                    _status(state="completed", eta_seconds=0.0,
                            channels={"sms": {"by_state": {"delivered": 20}, "eta_seconds": 0.0}})])
    console = Console(file=StringIO(), force_terminal=True, width=100)
    sleeps = []
    last = watch(lambda: next(figures), console, "it", interval=0.5, sleep=sleeps.append)
    raw = console.file.getvalue()
    assert last["state"] == "completed" and sleeps == [0.5, 0.5]
    assert "\x1b[2K" in raw and re.search(r"\x1b\[\d*A", raw)   # lines erased and the cursor moved up: in place
    assert raw.count("Allerta 7") >= 3                          # redrawn: one view, three readings
    text = ANSI.sub("", raw)
    assert "15/20" in text and re.search(r"20/20 +100%", text)


def test_progress_bars_draw_on_a_terminal_only():
    console = Console(file=StringIO(), force_terminal=True, width=100)
    with counted_steps("Lettura del file", None, console) as update:
        update(50_000, 100_000, "Importazione contatti")
        update(100_000, 100_000)
        update(100_000, 100_000, "Salvataggio")
    text = ANSI.sub("", console.file.getvalue())
    assert "Importazione contatti" in text and "100000/100000" in text and "━" in text and "Salvataggio" in text
    console = Console(file=StringIO(), force_terminal=True, width=100)
    with phases(console) as phase:
        phase("Copia del database")
        phase("Controllo di integrità")
    text = ANSI.sub("", console.file.getvalue())
    assert "Copia del database" in text and "Controllo di integrità" in text
    # Not a terminal: no console, nothing drawn, the updates do nothing.
    piped = StringIO()
    assert stderr_console(piped) is None
    with counted_steps("x", 10, None) as update, phases(None) as phase:
        update(5, 10)
        phase("y")
    assert piped.getvalue() == ""


def test_an_import_reports_its_progress(services):
    calls = []
    report = import_contacts(services.sessions, CONTACTS_CSV.encode("utf-8"),
                             progress=lambda done, total: calls.append((done, total)))
    assert report.imported and calls == [(4, 4)]
