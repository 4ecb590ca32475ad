"""Plain helpers the tests import (fixtures live in conftest.py): a config file, sample contacts, the data folder."""
from __future__ import annotations

import textwrap
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


def write_config(tmp_path: Path, extra: str = "", **general) -> Path:
    lines = [f'data_dir = "{tmp_path / "data"}"'] + [f"{k} = {v!r}" for k, v in general.items()]
    path = tmp_path / "allerta.toml"
    path.write_text("[general]\n" + "\n".join(lines) + "\n" + textwrap.dedent(extra), encoding="utf-8")
    return path


class FakeClock:
    """A monotonic clock the test moves by hand (``clock.now += 5``): code with an
    injected clock is tested without sleeping."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
