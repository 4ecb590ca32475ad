"""Panel: voice recorded in the browser, and listening to exactly what citizens will hear before sending."""
from __future__ import annotations

import io
import math
import re
import struct
import subprocess
import wave
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.core.audio import audio_info
from gateway.core.models import Alert
from gateway.core.models_panel import AlertText
from tests.support import needs_audio_tools
from tests.web_support import client_for, post


def _form(**overrides) -> dict:
    form = {"text": "Allerta rossa: salire ai piani alti", "zones": "Fregene", "channels": "voice",
            "voice_source": "tts", "voice_language": "it", "action": "send_now", "reason": "prova"}
    form.update(overrides)
    return form


def _browser_wav(seconds: float = 1.2, rate: int = 48000) -> bytes:
    """What allerta-voice.js uploads: mono 16-bit PCM WAV at the AudioContext's rate."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        frames = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
                          for i in range(int(seconds * rate)))
        out.writeframes(frames)
    return buffer.getvalue()


def _is_asterisk_wav(data: bytes, tmp_path: Path) -> float:
    path = tmp_path / "heard.wav"
    path.write_bytes(data)
    info = audio_info(path)
    assert (info.sample_rate, info.channels, info.bits) == (8000, 1, 16)
    return info.seconds


def test_compose_page_loads_the_recorder_without_inline_script(app):
    client = client_for(app, "operator")
    response = client.get("/alerts/new")
    html = response.get_data(as_text=True)
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "media-src 'self' blob:" in response.headers["Content-Security-Policy"]
    assert 'src="/static/allerta-voice.js"' in html
    assert 'data-worklet="/static/allerta-recorder-worklet.js"' in html
    assert 'value="browser"' in html and 'name="recording"' in html and 'id="listen-button"' in html
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script"
    tags = re.sub(r'"[^"]*"', '""', "".join(re.findall(r"<[^>]+>", html)))
    assert not re.search(r"\son[a-z]+=", tags), "inline event handler"
    for name in ("allerta-voice.js", "allerta-recorder-worklet.js"):
        asset = client.get(f"/static/{name}")
        assert asset.status_code == 200 and "javascript" in asset.mimetype
    worklet = client.get("/static/allerta-recorder-worklet.js").get_data(as_text=True)
    assert 'registerProcessor("allerta-recorder"' in worklet


@pytest.mark.integration
@needs_audio_tools
def test_listen_renders_the_speech_exactly_as_a_call_plays_it(app, tmp_path):
    client = client_for(app, "operator")
    response = post(client, "/alerts/voice-preview", _form())
    assert response.status_code == 200 and response.mimetype == "audio/wav", response.get_data()[:300]
    assert response.headers["Cache-Control"] == "no-store"
    seconds = _is_asterisk_wav(response.data, tmp_path)
    assert seconds > 2  # the introduction, the text and "Premi 1 per confermare"
    # Nothing is kept: the preview directory is empty again.
    previews = Path(app.extensions["allerta"].config.general.data_dir) / "previews"
    assert list(previews.iterdir()) == []


@pytest.mark.integration
@needs_audio_tools
def test_listen_to_a_recording_made_in_the_browser_then_send_it(app, panel, tmp_path):
    client = client_for(app, "approver")
    recorded = _browser_wav(1.2)
    data = _form(voice_source="browser", recording=(io.BytesIO(recorded), "registrazione.wav"))
    response = post(client, "/alerts/voice-preview", data, content_type="multipart/form-data")
    assert response.status_code == 200 and response.mimetype == "audio/wav"
    assert 1.1 < _is_asterisk_wav(response.data, tmp_path) < 1.3
    data = _form(voice_source="browser", recording=(io.BytesIO(recorded), "registrazione.wav"))
    response = post(client, "/alerts/new", data, content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    with panel.sessions() as s:
        alert = s.scalar(select(Alert))
    assert alert.audio_source == "recording" and 1.1 < alert.audio_seconds < 1.3
    assert client.get(f"/alerts/{alert.id}/audio.wav").data == Path(alert.audio_path + ".wav").read_bytes()


@pytest.mark.integration
@needs_audio_tools
def test_listen_to_a_version_in_another_language(app, panel, tmp_path):
    client = client_for(app, "approver")
    form = _form(text_ro="Alertă roșie: urcați la etajele superioare", text_uk="Червона тривога")
    response = post(client, "/alerts/voice-preview", {**form, "preview_language": "ro"})
    assert response.status_code == 200 and _is_asterisk_wav(response.data, tmp_path) > 1
    no_voice = post(client, "/alerts/voice-preview", {**form, "preview_language": "uk"})
    assert no_voice.status_code == 400 and "Nessuna voce per questa lingua" in no_voice.get_json()["error"]
    missing = post(client, "/alerts/voice-preview", {**form, "preview_language": "fr"})
    assert missing.status_code == 400
    # Sent: Romanian speech for Romanian speakers; Ukrainian has no voice, so it keeps the main audio.
    alert_id = int(post(client, "/alerts/new", form).location.rsplit("/", 1)[1])
    with panel.sessions() as s:
        versions = {v.language: v for v in s.scalars(select(AlertText).where(AlertText.alert_id == alert_id))}
        alert = s.get(Alert, alert_id)
    assert versions["ro"].audio_path and Path(versions["ro"].audio_path + ".wav").is_file()
    assert versions["uk"].audio_path is None
    heard = client.get(f"/alerts/{alert_id}/audio/ro.wav")
    assert heard.status_code == 200 and heard.mimetype == "audio/wav"
    assert client.get(f"/alerts/{alert_id}/audio/uk.wav").status_code == 404
    claimed = {c.e164: c for c in panel.services.store.claim("voice", 10)}
    assert claimed["+393207654321"].audio_path == versions["ro"].audio_path   # Ion speaks Romanian
    assert claimed["+393470000003"].audio_path == alert.audio_path


def test_listen_refuses_what_cannot_be_played(app):
    client = client_for(app, "operator")
    cases = [
        (_form(voice_source="browser"), "Prima registra il messaggio"),
        (_form(voice_source="upload", audio=(io.BytesIO(b"MZ\x90\x00"), "virus.exe")), "non supportato"),
        (_form(voice_source="upload", audio=(io.BytesIO(b""), "vuoto.wav")), "vuoto"),
        (_form(voice_source="tts", text=""), "Prima scrivi il testo"),
        (_form(voice_source="tts", voice_language="xx"), "Nessuna voce"),
    ]
    for data, expected in cases:
        response = post(client, "/alerts/voice-preview", data, content_type="multipart/form-data")
        assert response.status_code == 400, expected
        assert expected in response.get_json()["error"], (expected, response.get_json())


@pytest.mark.integration
@needs_audio_tools
def test_a_silent_recording_is_refused_in_italian(app, tmp_path):
    silent = tmp_path / "muta.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", str(silent), "trim", "0", "1.0"], check=True)
    client = client_for(app, "operator")
    data = _form(voice_source="browser", recording=(io.BytesIO(silent.read_bytes()), "registrazione.wav"))
    response = post(client, "/alerts/voice-preview", data, content_type="multipart/form-data")
    assert response.status_code == 400 and "la registrazione è muta" in response.get_json()["error"]


def test_listen_needs_an_operator_and_a_csrf_token(app):
    viewer = client_for(app, "viewer")
    assert post(viewer, "/alerts/voice-preview", _form()).status_code == 403
    operator = client_for(app, "operator")
    assert operator.post("/alerts/voice-preview", data=_form()).status_code == 400  # no CSRF token
