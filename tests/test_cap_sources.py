"""The CAP sources other than the API: `allerta cap import`, the watched directory, the feeds."""
from __future__ import annotations

import asyncio
import logging
import os
import urllib.error

from sqlalchemy import func, select

from gateway.core.models import Alert
from gateway.core.models_cap import CapMessage
from gateway.core.config import load_config
from gateway.core.services import build_services
from gateway.shell.cap_watch import CapFeeds, CapInbox
from gateway.shell.composition import cap_tasks
from gateway.shell.cli import main
from tests.cap_support import cap_document, coastal_town, receiver
from tests.support import write_config


def _messages(services) -> int:
    with services.sessions() as s:
        return s.scalar(select(func.count()).select_from(CapMessage))


def test_cap_import_makes_a_draft_and_a_refused_file_stores_nothing(services, config_path, tmp_path, capsys):
    coastal_town(services)
    good = tmp_path / "allerta.xml"
    good.write_bytes(cap_document("allerta_meteo_idraulico.xml"))
    assert main(["--config", str(config_path), "cap", "import", str(good)]) == 0
    assert capsys.readouterr().out.startswith("draft (alert 1): Allerta meteo arancione per rischio idraulico / Severe")
    assert main(["--config", str(config_path), "cap", "import", str(good)]) == 0
    assert capsys.readouterr().out.startswith("seen (alert 1): already received (draft)")
    bad = tmp_path / "big.xml"
    bad.write_bytes(b"<alert>" + b"x" * (50 * 1024 * 1024) + b"</alert>")   # 50 MB: read no further than the limit
    assert main(["--config", str(config_path), "cap", "import", str(bad)]) == 2
    assert "refused, nothing stored: <alert>: the document is 1048577 bytes" in capsys.readouterr().err
    assert _messages(services) == 1


def test_the_watched_directory_moves_each_file_to_done_or_failed_with_the_reason(services, tmp_path):
    coastal_town(services)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a_allerta.xml").write_bytes(cap_document("allerta_meteo_idraulico.xml"))
    (inbox / "b_xxe.xml").write_bytes(b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><alert>&x;</alert>')
    (inbox / "c_nowhere.xml").write_bytes(cap_document("solo_poligono.xml").replace(
        b"41.76,12.22 41.76,12.28 41.80,12.28 41.80,12.22 41.76,12.22", b"45.0,9.0 45.0,9.1 45.1,9.1 45.0,9.0"))
    (inbox / "notes.txt").write_text("not a warning")
    clock = [(inbox / "a_allerta.xml").stat().st_mtime + 60]
    watcher = CapInbox(receiver(services), inbox, clock=lambda: clock[0])
    assert watcher.poll_once() == [("a_allerta.xml", "draft"), ("b_xxe.xml", "refused"), ("c_nowhere.xml", "refused")]
    assert sorted(p.name for p in inbox.iterdir()) == ["done", "failed", "notes.txt"]
    assert [p.name for p in (inbox / "done").iterdir()] == ["a_allerta.xml"]
    assert "<!DOCTYPE>: DTDs, entity declarations and external references are not allowed" in (
        inbox / "failed" / "b_xxe.xml.error").read_text()
    assert "no zone matches its areas" in (inbox / "failed" / "c_nowhere.xml.error").read_text()
    (inbox / "d_again.xml").write_bytes(cap_document("allerta_meteo_idraulico.xml"))
    assert watcher.poll_once() == [("d_again.xml", "seen")]   # the same message from another file: one draft
    with services.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == 1


def test_a_file_still_being_copied_waits_until_it_settles(services, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "arriving.xml").write_bytes(b"<alert xmlns=")
    watcher = CapInbox(receiver(services), inbox, clock=lambda: (inbox / "arriving.xml").stat().st_mtime)
    assert watcher.poll_once() == [] and (inbox / "arriving.xml").exists()


def test_an_unreachable_feed_is_logged_once_and_tried_again(services, caplog):
    attempts = []

    def offline(url: str, limit: int) -> bytes:
        attempts.append(url)
        raise urllib.error.URLError("Network is unreachable")

    feeds = CapFeeds(receiver(services), ("https://allerta.regione.example.it/cap/feed.atom",), fetch=offline)
    with caplog.at_level(logging.INFO, logger="gateway.shell.cap_watch"):
        assert feeds.poll_once() == [] and feeds.poll_once() == []
    assert len(attempts) == 2
    assert [r.message for r in caplog.records].count(
        "CAP feed https://allerta.regione.example.it/cap/feed.atom not read (tried again every interval): "
        "<urlopen error Network is unreachable>") == 1


def test_the_engine_watches_the_inbox_it_is_configured_with(tmp_path, services):
    coastal_town(services)
    inbox = tmp_path / "chiavetta"
    inbox.mkdir()
    dropped = inbox / "allerta.xml"
    dropped.write_bytes(cap_document("allerta_meteo_idraulico.xml"))
    os.utime(dropped, (dropped.stat().st_mtime - 60,) * 2)         # copied a minute ago: settled
    config = load_config(write_config(tmp_path, f'[cap]\ninbox_dir = "{inbox}"\ninbox_interval = 0.05\n'))
    engine_services = build_services(config)

    async def run_until_moved() -> None:
        tasks = cap_tasks(engine_services)
        try:
            for _ in range(200):
                if (inbox / "done" / "allerta.xml").exists():
                    return
                await asyncio.sleep(0.05)
        finally:
            for task in tasks:
                task.cancel()

    asyncio.run(run_until_moved())
    assert (inbox / "done" / "allerta.xml").exists() and _messages(services) == 1
