"""The live terminal view of an alert: per-channel progress bars, per-line figures, the ETA.

`allerta alert status ID --watch` and `allerta demo` draw it with rich's ``Live`` on a terminal, in
place, instead of a new 200-character line every second. ``render_status`` is a pure function of the
status figures (``AlertService.status``, the same dict ``alert status --json`` prints), so the view is
tested by rendering it into a ``Console`` over a StringIO. Off a terminal the commands print their plain
lines as before: scripts read those.

Labels are Italian first, as the panel: English when the terminal's locale asks for it
(``cli_language``). Counts take their singular or plural by Babel's rule (gateway/core/plurals.py).
"""
from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from gateway.core.plurals import is_singular
from gateway.core.states import AlertState, Channel, DeliveryState

# Deliveries not final yet: an SMS sent waits for its status report, a call being placed for its end.
OPEN_STATES = {Channel.SMS: (DeliveryState.PENDING, DeliveryState.SUBMITTING, DeliveryState.SENT),
               Channel.VOICE: (DeliveryState.PENDING, DeliveryState.SUBMITTING)}
REACHED = (DeliveryState.DELIVERED, DeliveryState.CONFIRMED, DeliveryState.ANSWERED, DeliveryState.VOICEMAIL)
FINAL_ALERT_STATES = (AlertState.COMPLETED, AlertState.CANCELLED, AlertState.REJECTED)

LABELS = {
    "it": {"alert": "Allerta", "drill": "ESERCITAZIONE", "sms": "SMS", "voice": "Voce", "channel": "canale",
           "progress": "avanzamento", "reached": "raggiunti", "sent": "inviati", "queued": "in coda",
           "in_progress": "in corso", "failed": "falliti", "eta": "fine tra", "done": "finito",
           "no_eta": "nessuna linea attiva: fine non stimabile",
           "no_line": "nessuna linea", "line": "linea", "state": "stato", "figures": "dati",
           "elapsed": "trascorsi", "finished": "Finito.", "interrupt": "Ctrl-C per uscire (l'allerta continua)",
           "recipients": ("%(num)s destinatario", "%(num)s destinatari"),
           "calls_now": ("%(num)s chiamata in corso su %(limit)s", "%(num)s chiamate in corso su %(limit)s"),
           "calls": ("%(num)s chiamata per questa allerta", "%(num)s chiamate per questa allerta"),
           "segments": ("%(num)s segmento inviato", "%(num)s segmenti inviati"),
           "delivered": ("%(num)s consegnato", "%(num)s consegnati"),
           "duplicates": ("%(num)s forse inviato due volte", "%(num)s forse inviati due volte"),
           "up": "attiva", "down": "non attiva", "suspended": "sospesa",
           AlertState.ACTIVE: "in invio", AlertState.COMPLETED: "completata", AlertState.CANCELLED: "annullata",
           AlertState.AWAITING_APPROVAL: "in attesa di approvazione", AlertState.DRAFT: "bozza",
           AlertState.REJECTED: "respinta"},
    "en": {"alert": "Alert", "drill": "DRILL", "sms": "SMS", "voice": "Voice", "channel": "channel",
           "progress": "progress", "reached": "reached", "sent": "sent", "queued": "queued",
           "in_progress": "in progress", "failed": "failed", "eta": "ETA", "done": "done", "no_eta": "no line up: no ETA",
           "no_line": "no line up", "line": "line", "state": "state", "figures": "figures",
           "elapsed": "elapsed", "finished": "Finished.", "interrupt": "Ctrl-C to leave (the alert goes on)",
           "recipients": ("%(num)s recipient", "%(num)s recipients"),
           "calls_now": ("%(num)s call now of %(limit)s", "%(num)s calls now of %(limit)s"),
           "calls": ("%(num)s call for this alert", "%(num)s calls for this alert"),
           "segments": ("%(num)s segment sent", "%(num)s segments sent"),
           "delivered": ("%(num)s delivered", "%(num)s delivered"),
           "duplicates": ("%(num)s possibly sent twice", "%(num)s possibly sent twice"),
           "up": "up", "down": "down", "suspended": "suspended",
           AlertState.ACTIVE: "being sent", AlertState.COMPLETED: "completed", AlertState.CANCELLED: "cancelled",
           AlertState.AWAITING_APPROVAL: "awaiting approval", AlertState.DRAFT: "draft",
           AlertState.REJECTED: "rejected"},
}


def cli_language(environ: Mapping[str, str] = os.environ) -> str:
    """The terminal views' language: English when the locale says so (LC_ALL, LC_MESSAGES, LANG, in the
    order the C library reads them), Italian otherwise, as the panel's default."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name)
        if value:
            return "en" if value.lower().startswith("en") else "it"
    return "it"


def _counted(language: str, key: str, count: int, **values: object) -> str:
    one, other = LABELS[language][key]
    return (one if is_singular(count, language) else other) % {"num": count, **values}


def format_eta(seconds: float | None, language: str) -> str:
    """"2 min 05 s", "finito"/"done" for nothing left, "nessuna linea attiva"/"no line up" for None."""
    words = LABELS[language]
    if seconds is None:
        return words["no_line"]
    if seconds <= 0:
        return words["done"]
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _eta_sentence(seconds: float | None, language: str) -> str:
    """The header's ETA: "fine tra 2 min 05 s", "finito", "nessuna linea attiva: fine non stimabile"."""
    words = LABELS[language]
    if seconds is None:
        return words["no_eta"]
    return words["done"] if seconds <= 0 else f"{words['eta']} {format_eta(seconds, language)}"


def channel_figures(channel: str, by_state: Mapping[str, int]) -> dict[str, int]:
    """What a channel's bar shows: deliveries in all, final ones (the bar), reached, sent, queued, failed."""
    total = sum(by_state.values())
    open_ = sum(by_state.get(state, 0) for state in OPEN_STATES.get(channel, OPEN_STATES[Channel.VOICE]))
    return {"total": total, "done": total - open_,
            "reached": sum(by_state.get(state, 0) for state in REACHED),
            "sent": by_state.get(DeliveryState.SENT, 0),
            "in_progress": by_state.get(DeliveryState.SUBMITTING, 0),
            "queued": by_state.get(DeliveryState.PENDING, 0),
            "failed": by_state.get(DeliveryState.FAILED, 0)}


def nothing_left(status: Mapping[str, Any]) -> bool:
    """Nothing left to do on any channel: every SMS delivered or failed, every number's calls over."""
    return all(channel_figures(channel, info["by_state"])["done"] == sum(info["by_state"].values())
               for channel, info in status["channels"].items())


def finished(status: Mapping[str, Any]) -> bool:
    """The watch ends: the alert is over (completed, cancelled, rejected) or active with nothing left."""
    return status["state"] in FINAL_ALERT_STATES or (status["state"] == AlertState.ACTIVE and nothing_left(status))


def render_status(status: Mapping[str, Any], language: str = "it", elapsed: float | None = None) -> RenderableType:
    """The whole view of one alert's figures, for ``Live`` or a one-off print."""
    words = LABELS[language]
    header = Text()
    header.append(f"{words['alert']} {status['alert']}", style="bold")
    header.append(f" · {words.get(status['state'], status['state'])} · {_counted(language, 'recipients', status['recipients'])}")
    if status.get("drill"):
        header.append(f" · {words['drill']}", style="bold yellow")
    header.append(" · " + _eta_sentence(status.get("eta_seconds"), language))
    if elapsed is not None:
        header.append(f" · {words['elapsed']} {format_eta(elapsed, language) if elapsed > 0 else '0 s'}")

    channels = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
    for column in ("channel", "progress", "", "reached", "sent", "in_progress", "queued", "failed", "eta"):
        channels.add_column(words.get(column, ""), justify="left" if column in ("channel", "progress") else "right")
    for channel, info in status["channels"].items():
        figures = channel_figures(channel, info["by_state"])
        bar = ProgressBar(total=max(figures["total"], 1), completed=figures["done"], width=20)
        percent = 100 * figures["done"] // figures["total"] if figures["total"] else 100
        channels.add_row(words.get(channel, channel), bar, f"{figures['done']}/{figures['total']} {percent:3d}%",
                         str(figures["reached"]), str(figures["sent"]), str(figures["in_progress"]),
                         str(figures["queued"]), str(figures["failed"]), format_eta(info.get("eta_seconds"), language))

    parts: list[RenderableType] = [header, channels]
    if status.get("possible_duplicates"):
        parts.append(Text(_counted(language, "duplicates", status["possible_duplicates"]), style="yellow"))
    if status.get("lines"):
        lines = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        for column in ("line", "state", "figures"):
            lines.add_column(words[column])
        for label, entry in sorted(status["lines"].items()):
            state = entry.get("state") or "?"
            style = "green" if state == "up" else "red"
            if entry.get("channel") == Channel.VOICE:
                figures = (_counted(language, "calls_now", entry.get("in_use") or 0, limit=entry.get("limit") or "-")
                           + " · " + _counted(language, "calls", entry.get("calls", 0)))
            else:
                figures = (_counted(language, "segments", entry.get("segments_sent", 0)) + " · "
                           + _counted(language, "delivered", entry.get("segments_delivered", 0)))
            lines.add_row(label, Text(words.get(state, state), style=style), figures)
        parts.append(lines)
    return Group(*parts)


def watch(fetch: Callable[[], Mapping[str, Any]], console: Console, language: str, *,
          interval: float = 1.0, done: Callable[[Mapping[str, Any]], bool] = finished,
          stop: threading.Event | None = None, sleep: Callable[[float], object] | None = None) -> Mapping[str, Any]:
    """Redraw the view in place every ``interval`` s until ``done`` or ``stop`` is set; the last status."""
    stop = stop or threading.Event()
    sleep = sleep or stop.wait
    started = time.monotonic()
    status = fetch()
    with Live(render_status(status, language, 0.0), console=console, auto_refresh=False,
              redirect_stdout=False, redirect_stderr=False) as live:
        while not done(status) and not stop.is_set():
            sleep(interval)
            if stop.is_set():
                break
            status = fetch()
            live.update(render_status(status, language, time.monotonic() - started), refresh=True)
    return status


@contextmanager
def ctrl_c_sets(stop: threading.Event) -> Iterator[threading.Event]:
    """Ctrl-C sets ``stop`` instead of raising: a KeyboardInterrupt in the middle of a redraw would
    leave rich's output buffered and the terminal's cursor hidden."""
    previous = signal.signal(signal.SIGINT, lambda _signum, _frame: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
