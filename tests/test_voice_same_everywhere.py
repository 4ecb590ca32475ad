"""The same alert asked of the CLI, the panel and the API makes the same voice files, byte for byte."""
from __future__ import annotations

import hashlib
import io
import math
import struct
import wave
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.core.alerts import compose_sms_text
from gateway.core.audio import introduction, render_tts
from gateway.core.contacts_import import import_contacts
from gateway.core.models import Alert
from gateway.core.models_panel import AlertText
from gateway.shell.cli import main
from tests.web_support import client_for, make_app, post

pytestmark = [pytest.mark.usefixtures("audio_tools"),  # fails, never skips, without sox and espeak-ng
              pytest.mark.integration]                # espeak-ng and sox run as processes

TEXT = "Allerta rossa: salire ai piani alti."
ROMANIAN = "Alertă roșie: urcați la etajele superioare."
# Fregene already has Ion Popescu (Romanian) and Giulia Verdi (Italian), tests/conftest.py;
# English and German speakers get versions of their own, Chinese ones (no voice) the Italian one.
MORE_CONTACTS = """nome;telefono;zona;lingua
John Smith;06 6521 0002;Fregene;inglese
Hans Müller;06 6521 0004;Fregene;tedesco
Li Wei;06 6521 0005;Fregene;cinese
"""


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path)
    report = import_contacts(app.extensions["allerta"].sessions, MORE_CONTACTS.encode("utf-8"))
    assert report.imported and not report.rejected, report.rejected
    return app


def _voice_files(panel, alert_id: int) -> dict[str | None, str]:
    """Language version (None: the alert's own message) -> SHA-256 of its WAV."""
    with panel.sessions() as s:
        alert = s.get(Alert, alert_id)
        paths = {None: alert.audio_path} | {
            v.language: v.audio_path for v in s.scalars(select(AlertText).where(AlertText.alert_id == alert_id))
            if v.audio_path}
    return {language: hashlib.sha256(Path(path + ".wav").read_bytes()).hexdigest() for language, path in paths.items()}


def _from_cli(tmp_path: Path, capsys, *flags: str) -> int:
    code = main(["--config", str(tmp_path / "allerta.toml"), "alert", "send", "--voice", "--zone", "Fregene",
                 "--text", TEXT, "--drill", "--translation", f"ro={ROMANIAN}", *flags])
    out, err = capsys.readouterr()
    assert code == 0, err
    return int(out.strip().splitlines()[-1])


def _from_panel(app, **form) -> int:
    data = {"text": TEXT, "zones": "Fregene", "channels": "voice", "drill": "1", "text_ro": ROMANIAN,
            "action": "send_now", "reason": "prova", **form}
    response = post(client_for(app, "approver"), "/alerts/new", data, content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    return int(response.location.rsplit("/", 1)[1])


def _from_api(app) -> int:
    admin = client_for(app, "admin")
    html = post(admin, "/admin/tokens", {"name": "sala operativa", "role": "approver"}).get_data(as_text=True)
    token = html.split('<code id="new-token">', 1)[1].split("<", 1)[0]
    response = app.test_client().post(
        "/api/v1/alerts", headers={"Authorization": f"Bearer {token}"},
        json={"text": TEXT, "channels": ["voice"], "target": {"zones": ["Fregene"]}, "drill": True,
              "voice_language": "it", "translations": {"ro": ROMANIAN}, "mode": "send_now", "reason": "prova"})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cli_panel_and_api_make_the_same_spoken_versions(app, tmp_path, capsys):
    panel = app.extensions["allerta"]
    from_cli = _voice_files(panel, _from_cli(tmp_path, capsys, "--lang", "it"))
    from_panel = _voice_files(panel, _from_panel(app, voice_source="tts", voice_language="it"))
    from_api = _voice_files(panel, _from_api(app))
    assert set(from_cli) == {None, "de", "en", "ro"}
    assert from_cli == from_panel == from_api
    # Every version says who calls and how to confirm in its listeners' language (the panel
    # and the API used to introduce only an Italian message).
    comune = panel.config.general.comune
    prefix = panel.config.general.drill_prefix
    spoken = compose_sms_text(TEXT, True, prefix)
    for language, text, text_lang in ((None, spoken, "it"), ("en", spoken, "it"),
                                      ("ro", compose_sms_text(ROMANIAN, True, prefix), "ro")):
        listener = language or "it"
        expected = render_tts(text, listener, tmp_path / f"expected-{listener}.wav",
                              intro=introduction(listener, comune), text_lang=text_lang)
        assert from_api[language] == _sha256(expected.path), language


def _recording(path: Path, seconds: float = 1.5, rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(struct.pack("<h", int(6000 * math.sin(2 * math.pi * 330 * i / rate)))
                                 for i in range(int(seconds * rate))))
    return path


def test_cli_and_panel_make_the_same_files_from_a_recording(app, tmp_path, capsys):
    panel = app.extensions["allerta"]
    recording = _recording(tmp_path / "registrazione.wav")
    from_cli = _voice_files(panel, _from_cli(tmp_path, capsys, "--audio", str(recording)))
    from_panel = _voice_files(panel, _from_panel(
        app, voice_source="upload", audio=(io.BytesIO(recording.read_bytes()), "registrazione.wav")))
    # The recording is every listener's message; only the Romanian translation gets speech of its own.
    assert set(from_cli) == {None, "ro"}
    assert from_cli == from_panel
