"""Plain helpers the tests import (fixtures live in conftest.py): a config file, sample contacts, the data folder."""
from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

DATA = Path(__file__).with_name("data")

CONTACTS_CSV = """nome;cellulare;telefono;zona;gruppi;lingua;fragile
Mario Rossi;333 111 0001;06 6521 1234;Isola Sacra;volontari;it;no
Anna Rossi;333 111 0002;06 6521 1234;Isola Sacra;;it;sì
Ion Popescu;+39 320 765 4321;;Fregene;;romeno;no
Giulia Verdi;0039 347 000 0003;;Fregene;volontari;;si
"""

# Tests that render or convert audio need Debian's sox and espeak-ng (the `audio_tools` fixture).
needs_audio_tools = pytest.mark.usefixtures("audio_tools")


class DatabaseChoice:
    """Which database the configs written for a test use: SQLite in the data_dir (``new_database`` None),
    or, under the ``both_databases`` mark's postgresql parameter, a PostgreSQL database of its own per
    test directory (conftest.py sets ``new_database`` to tests/pg_support.py's factory)."""

    def __init__(self) -> None:
        self.new_database: Callable[[], str] | None = None
        self._urls: dict[Path, str] = {}

    def section(self, directory: Path) -> str:
        if self.new_database is None:
            return ""
        if directory not in self._urls:  # one database per test directory, however often its config is written
            self._urls[directory] = self.new_database()
        return f'\n[database]\nurl = "{self._urls[directory]}"\n'

    def reset(self) -> None:
        self.new_database = None
        self._urls.clear()


DATABASE = DatabaseChoice()


def write_config(tmp_path: Path, extra: str = "", **general) -> Path:
    lines = [f'data_dir = "{tmp_path / "data"}"'] + [f"{k} = {v!r}" for k, v in general.items()]
    path = tmp_path / "allerta.toml"
    path.write_text("[general]\n" + "\n".join(lines) + "\n" + textwrap.dedent(extra) + DATABASE.section(tmp_path),
                    encoding="utf-8")
    return path


class FakeClock:
    """A monotonic clock the test moves by hand (``clock.now += 5``): code with an
    injected clock is tested without sleeping."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
