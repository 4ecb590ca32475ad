"""Progress of long commands on a terminal: `contacts import`, `backup`, `bench`.

Drawn on stderr and only when stderr is a terminal, and erased when done (``transient``): what the
commands print on stdout (a summary, bench's JSON) stays exactly what scripts read, and a redirected
or piped run shows nothing more than before. Labels are Italian first, as the live view
(gateway/shell/live_view.py ``cli_language``).
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from gateway.shell.live_view import cli_language

WORDS = {
    "it": {"import": "Importazione contatti", "reading": "Lettura del file", "saving": "Salvataggio",
           "backup_copy": "Copia del database",
           "backup_check": "Controllo di integrità", "bench": "Misura in corso", "rows": "righe"},
    "en": {"import": "Importing contacts", "reading": "Reading the file", "saving": "Saving",
           "backup_copy": "Copying the database",
           "backup_check": "Checking integrity", "bench": "Benchmark running", "rows": "rows"},
}


def label(key: str, language: str | None = None) -> str:
    return WORDS[language or cli_language()][key]


def stderr_console(stream: IO[str] | None = None) -> Console | None:
    """A console on ``stream`` (stderr) when it is a terminal, else None: no progress is drawn."""
    stream = stream or sys.stderr
    isatty = getattr(stream, "isatty", None)
    return Console(file=stream) if isatty and isatty() else None


Update = Callable[..., None]  # update(done, total, description=None)


@contextmanager
def counted_steps(description: str, total: int | None, console: Console | None) -> Iterator[Update]:
    """A bar of ``done``/``total`` with the time spent and left (a moving bar while ``total`` is None, as
    while a file is read); yields ``update(done, total, description=None)``. With no console (not a
    terminal) the update does nothing."""
    if console is None:
        yield lambda done, total, description=None: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(description, total=total)

        def update(done: int, total: int | None, description: str | None = None) -> None:
            progress.update(task, completed=done, total=total, refresh=True,
                            **({"description": description} if description else {}))
        yield update


@contextmanager
def phases(console: Console | None) -> Iterator[Callable[[str], None]]:
    """One line per phase with a spinner and the time spent (a step that cannot say how far it is,
    such as SQLite's one-step backup); yields ``phase(description)`` that starts the next one."""
    if console is None:
        yield lambda description: None
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        current: list[int] = []

        def phase(description: str) -> None:
            if current:
                progress.update(current[-1], completed=1, total=1)
            current.append(progress.add_task(description, total=None))
            progress.refresh()  # drawn at once: a short phase is seen too
        yield phase
