"""Shared fixtures: a migrated temporary database and the services over it."""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from gateway.core.services import Services, build_services
from gateway.core.config import load_config

DATA = Path(__file__).with_name("data")


@pytest.fixture
def audio_tools() -> None:
    """Tests that render or convert audio need Debian's sox and espeak-ng: they fail, never skip."""
    missing = [tool for tool in ("sox", "espeak-ng") if not shutil.which(tool)]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not installed: apt-get install espeak-ng sox libsox-fmt-mp3")


needs_audio_tools = pytest.mark.usefixtures("audio_tools")


def write_config(tmp_path: Path, extra: str = "", **general) -> Path:
    lines = [f'data_dir = "{tmp_path / "data"}"'] + [f"{k} = {v!r}" for k, v in general.items()]
    path = tmp_path / "allerta.toml"
    path.write_text("[general]\n" + "\n".join(lines) + "\n" + textwrap.dedent(extra), encoding="utf-8")
    return path


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path)


@pytest.fixture
def services(config_path: Path) -> Services:
    return build_services(load_config(config_path))


CONTACTS_CSV = """nome;cellulare;telefono;zona;gruppi;lingua;fragile
Mario Rossi;333 111 0001;06 6521 1234;Isola Sacra;volontari;it;no
Anna Rossi;333 111 0002;06 6521 1234;Isola Sacra;;it;sì
Ion Popescu;+39 320 765 4321;;Fregene;;romeno;no
Giulia Verdi;0039 347 000 0003;;Fregene;volontari;;si
"""


@pytest.fixture
def contacts(services: Services) -> Services:
    from gateway.core.contacts_import import import_contacts
    report = import_contacts(services.sessions, CONTACTS_CSV.encode("utf-8"))
    assert report.imported and not report.rejected, report.rejected
    return services


class FakeClock:
    """A monotonic clock the test moves by hand (``clock.now += 5``): code with an
    injected clock is tested without sleeping."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()
