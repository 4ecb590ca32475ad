"""Translations: Italian by default and complete, compiled from the shipped .po files at start."""
from __future__ import annotations

from web.i18n import TRANSLATIONS_DIR, compile_catalogues, extract_messages, missing_translations


def test_italian_catalogue_is_complete():
    assert extract_messages(), "no translatable string found: is the extraction broken?"
    assert missing_translations("it") == []


def test_placeholders_survive_translation():
    italian = compile_catalogues()["it"]
    for message in extract_messages():
        translated = italian.gettext(message)
        for placeholder in ("%(name)s", "%(id)s", "%(count)s", "%(minutes)s", "%(people)s", "%(reason)s"):
            assert (placeholder in message) == (placeholder in translated), (message, translated)


def test_only_text_catalogues_are_shipped():
    assert not list(TRANSLATIONS_DIR.rglob("*.mo"))
    assert {p.parent.parent.name for p in TRANSLATIONS_DIR.rglob("messages.po")} == {"it", "en"}


def test_stored_identifiers_are_shown_in_the_user_language(app, panel):
    from sqlalchemy import select, update

    from gateway.core.models import Delivery
    from tests.web_support import client_for, post
    operator = client_for(app, "operator")
    form = {"text": "Allerta rossa", "zones": "Fregene", "channels": "sms", "action": "submit"}
    waiting = int(post(operator, "/alerts/new", form).location.rsplit("/", 1)[1])
    approver = client_for(app, "approver")
    sent = int(post(approver, "/alerts/new", {**form, "action": "send_now", "reason": "r"}).location.rsplit("/", 1)[1])
    with panel.sessions.begin() as s:
        first = s.scalar(select(Delivery.id).where(Delivery.alert_id == sent).order_by(Delivery.id))
        s.execute(update(Delivery).where(Delivery.id == first).values(state="delivered"))

    html = approver.get(f"/alerts/{waiting}").get_data(as_text=True)
    assert "In attesa di approvazione" in html and "awaiting_approval<" not in html
    assert "In attesa di decisione" in html  # the approval's decision
    html = approver.get(f"/alerts/{sent}").get_data(as_text=True)
    for italian in ("Consegnato", "In coda", "Attiva", "Inviata senza approvazione", "Approvatore"):
        assert italian in html, italian
    for raw in (">delivered<", ">pending<", ">active<", ">bypassed<", ">sms<", "(approver)"):
        assert raw not in html, raw
    assert approver.get(f"/alerts/{sent}/progress.json").get_json()["state_label"] == "Attiva"
    assert "In attesa di approvazione" in approver.get("/").get_data(as_text=True)
    assert "Consegnato" in approver.get(f"/alerts/{sent}/deliveries/{first}").get_data(as_text=True)
    # The preview's channel names, for the page's script.
    preview = post(operator, "/alerts/preview", {"text": "Prova", "zones": "Fregene", "channels": "sms"}).get_json()
    assert preview["channel_labels"] == {"sms": "SMS", "voice": "Voce"}

    post(approver, "/language", {"lang": "en", "next": "/"})
    html = approver.get(f"/alerts/{sent}").get_data(as_text=True)
    assert "Delivered" in html and "Queued" in html and "Sent without approval" in html and "Consegnato" not in html
    assert "Awaiting approval" in approver.get(f"/alerts/{waiting}").get_data(as_text=True)
    english = post(approver, "/alerts/preview", {"text": "Prova", "zones": "Fregene", "channels": "sms"}).get_json()
    assert english["channel_labels"] == {"sms": "SMS", "voice": "Voice"}
