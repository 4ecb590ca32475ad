"""The compose page: recipients and ETA next to the send buttons, a counter per text, a refused form given back."""
from __future__ import annotations

import io
import re

from sqlalchemy import func, select

from gateway.core.models import Alert
from tests.web_support import client_for, post


def test_counts_sit_next_to_the_send_buttons_and_need_no_button(app):
    html = client_for(app, "operator").get("/alerts/new").get_data(as_text=True)
    actions = html.split('<fieldset class="actions">')[1].split("</fieldset>")[0]
    # The page's script fills #preview-result as targets and channels change; nothing to press.
    assert 'id="preview-result"' in actions and actions.index("preview-result") < actions.index('name="action"')
    assert "preview-button" not in html


def test_every_language_version_has_its_own_counter(app):
    html = client_for(app, "operator").get("/alerts/new").get_data(as_text=True)
    versions = re.findall(r'<textarea name="(text_[a-z]{2})" id="(text_[a-z]{2})"', html)
    assert len(versions) == 9 and all(name == id_ for name, id_ in versions)
    for name, _id in versions:
        assert f'data-counter-for="{name}"' in html and f'data-fix-for="{name}"' in html
    assert 'data-counter-for="text"' in html


def test_no_inline_script_or_style(app):
    response = client_for(app, "operator").get("/alerts/new")
    html = response.get_data(as_text=True)
    assert "style-src 'self'" in response.headers["Content-Security-Policy"]
    assert "<style" not in html and not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    tags = re.sub(r'"[^"]*"', '""', "".join(re.findall(r"<[^>]+>", html)))
    assert not re.search(r"\s(style|on[a-z]+)=", tags)


def test_a_refused_form_comes_back_as_it_was_typed(app, panel):
    operator = client_for(app, "operator")
    form = {"text": "Allerta <rossa> & piena", "text_en": "Red alert", "text_ro": "Alertă roșie",
            "zones": ["Fregene", "Atlantide"], "groups": "volontari", "numbers": "+39 333 1234567",
            "channels": "voice_fallback", "voice_source": "tts", "voice_language": "it", "drill": "1",
            "priority": "1", "max_attempts": "4", "voice_interval": "90", "voice_cap": "6",
            "deadline_minutes": "45", "send_at": "", "preview_language": "en", "action": "submit"}
    response = post(operator, "/alerts/new", form)
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and "Atlantide" in html
    assert ">Allerta &lt;rossa&gt; &amp; piena</textarea>" in html
    assert ">Red alert</textarea>" in html and ">Alertă roșie</textarea>" in html
    for checked in ('name="zones" value="Fregene" checked', 'name="groups" value="volontari" checked',
                    'name="channels" value="voice_fallback" checked', 'name="voice_source" value="tts" checked',
                    'name="drill" value="1" id="drill" checked', 'name="priority" value="1" checked'):
        assert checked in html, checked
    assert ">+39 333 1234567</textarea>" in html
    for name, value in (("max_attempts", "4"), ("voice_interval", "90"), ("voice_cap", "6"),
                        ("deadline_minutes", "45")):
        assert re.search(rf'name="{name}"[^>]*value="{value}"', html), name
    assert '<option value="en" selected>' in html
    assert "registrazione non è stata conservata" not in html  # speech: nothing to do again
    with panel.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == 0


def test_a_refused_form_with_a_recording_says_to_give_it_again(app):
    operator = client_for(app, "operator")
    form = {"text": "Prova", "zones": "Atlantide", "channels": "voice", "voice_source": "upload",
            "audio": (io.BytesIO(b"RIFF...."), "sindaco.wav"), "action": "submit"}
    response = post(operator, "/alerts/new", form, content_type="multipart/form-data")
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and "Atlantide" in html
    assert "La registrazione non è stata conservata" in html
    assert 'name="voice_source" value="upload" checked' in html
